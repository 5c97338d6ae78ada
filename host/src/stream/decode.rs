//! Content-encoding decoders, for reading compressed responses on the side.
//!
//! Clients ask for `gzip, deflate, br, zstd`. When nothing needs to read a body it
//! passes through compressed and untouched. When the host or a policy must read
//! it, these push-style decoders turn each compressed chunk into plain bytes as it
//! arrives, so reading never holds the stream back.

use std::io::Write;

/// A streaming decoder for one `content-encoding`.
pub enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

/// What to do about a response's `content-encoding`.
pub enum Encoding {
    /// No encoding (or `identity`).
    Identity,
    /// A known encoding, with its decoder.
    Known(Decoder),
    /// An encoding we can't read: leave the body alone.
    Unknown,
}

impl Encoding {
    pub fn from_header(value: Option<&http::HeaderValue>) -> Encoding {
        let Some(v) = value.and_then(|v| v.to_str().ok()) else {
            return Encoding::Identity;
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Encoding::Identity,
            "gzip" | "x-gzip" => Encoding::Known(Decoder::Gzip(Box::new(
                flate2::write::GzDecoder::new(Vec::new()),
            ))),
            "deflate" => Encoding::Known(Decoder::Deflate(Box::new(
                flate2::write::ZlibDecoder::new(Vec::new()),
            ))),
            "br" => Encoding::Known(Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                4096,
            )))),
            "zstd" => match zstd::stream::write::Decoder::new(Vec::new()) {
                Ok(d) => Encoding::Known(Decoder::Zstd(Box::new(d))),
                Err(_) => Encoding::Unknown,
            },
            _ => Encoding::Unknown,
        }
    }
}

impl Decoder {
    /// Decode one chunk, returning the plain bytes it produced so far.
    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Brotli(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zstd(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    /// The end of the body: whatever the decoder still holds.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => d.finish(),
            Decoder::Deflate(d) => d.finish(),
            Decoder::Brotli(d) => d.into_inner().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated brotli stream")
            }),
            Decoder::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(enc: &str, compressed: Vec<u8>, plain: &[u8]) {
        let hv = http::HeaderValue::from_str(enc).unwrap();
        let Encoding::Known(mut d) = Encoding::from_header(Some(&hv)) else {
            panic!("{enc} should be known");
        };
        let mut out = Vec::new();
        for c in compressed.chunks(7) {
            out.extend(d.push(c).unwrap());
        }
        out.extend(d.finish().unwrap());
        assert_eq!(out, plain, "{enc}");
    }

    #[test]
    fn all_encodings_decode_in_small_chunks() {
        let plain = b"data: {\"usage\":{\"input_tokens\":3}}\n\n".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        roundtrip("gzip", gz.finish().unwrap(), &plain);
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&plain).unwrap();
        roundtrip("deflate", zl.finish().unwrap(), &plain);
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&plain).unwrap();
        }
        roundtrip("br", br, &plain);
        roundtrip("zstd", zstd::encode_all(&plain[..], 3).unwrap(), &plain);
    }

    #[test]
    fn unknown_and_identity() {
        assert!(matches!(Encoding::from_header(None), Encoding::Identity));
        let hv = http::HeaderValue::from_static("compress");
        assert!(matches!(
            Encoding::from_header(Some(&hv)),
            Encoding::Unknown
        ));
    }
}
