//! Content-encoding decoders, for reading compressed responses on the side.
//!
//! Clients ask for `gzip, deflate, br, zstd`. When nothing needs to read a body it
//! passes through compressed and untouched. When the host or a policy must read
//! it, these push-style decoders turn each compressed chunk into plain bytes as it
//! arrives, so reading never holds the stream back.

use std::io::Write;

/// Most plain bytes one response may decode to. Compression bombs reach
/// ratios over 1000:1, so a small hostile body could otherwise expand into
/// gigabytes in one chunk; beyond this, decoding stops with an error (the
/// compressed body still reaches the client untouched where it passes).
pub const MAX_DECODED: u64 = 64 << 20;

/// The decoders' output: refuses to grow past [`MAX_DECODED`] in total.
#[derive(Debug, Default)]
pub struct Capped {
    buf: Vec<u8>,
    total: u64,
    cap: u64,
}

impl Capped {
    fn new(cap: u64) -> Self {
        Capped {
            buf: Vec::new(),
            total: 0,
            cap,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.total += data.len() as u64;
        if self.total > self.cap {
            return Err(std::io::Error::other(format!(
                "response decodes to more than {} bytes",
                self.cap
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A streaming decoder for one `content-encoding`.
pub enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Capped>>),
    Deflate(Box<flate2::write::ZlibDecoder<Capped>>),
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Capped>>),
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
                flate2::write::GzDecoder::new(Capped::new(MAX_DECODED)),
            ))),
            "deflate" => Encoding::Known(Decoder::Deflate(Box::new(
                flate2::write::ZlibDecoder::new(Capped::new(MAX_DECODED)),
            ))),
            "br" => Encoding::Known(Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                Capped::new(MAX_DECODED),
                4096,
            )))),
            "zstd" => match zstd::stream::write::Decoder::new(Capped::new(MAX_DECODED)) {
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
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Deflate(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Brotli(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
            Decoder::Zstd(d) => {
                d.write_all(chunk)?;
                d.flush()?;
                Ok(std::mem::take(&mut d.get_mut().buf))
            }
        }
    }

    /// The end of the body: whatever the decoder still holds.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gzip(d) => d.finish().map(|c| c.buf),
            Decoder::Deflate(d) => d.finish().map(|c| c.buf),
            Decoder::Brotli(d) => d.into_inner().map(|c| c.buf).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated brotli stream")
            }),
            Decoder::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner().buf)
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

    #[test]
    fn a_compression_bomb_stops_at_the_cap() {
        // 200 MiB of zeros gzip to ~200 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let hv = http::HeaderValue::from_static("gzip");
        let Encoding::Known(mut d) = Encoding::from_header(Some(&hv)) else {
            panic!()
        };
        let mut out = 0u64;
        let mut failed = false;
        for c in bomb.chunks(64 << 10) {
            match d.push(c) {
                Ok(p) => out += p.len() as u64,
                Err(e) => {
                    assert!(e.to_string().contains("decodes to more than"), "{e}");
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "decoded {out} bytes without hitting the cap");
        assert!(out <= MAX_DECODED);
    }
}
