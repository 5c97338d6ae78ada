//! Undoing a request's `Content-Encoding` before policies read the body.
//!
//! A policy that pattern-matches or measures compressed bytes protects nothing:
//! the provider decodes them and reads the prompt. So when a body hook will run,
//! the host decodes the body (gzip, deflate, br, zstd, stacked like
//! `gzip, zstd`), hands the plain bytes to the policies and forwards them
//! decoded, with `Content-Encoding` removed and `Content-Length` fixed.
//!
//! Decoding pulls through a chain of readers into a buffer that never grows
//! past the cap, so a decompression bomb costs at most the cap, never its
//! decoded size.

use std::io::Read;

/// One `Content-Encoding` coding the host can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The `Content-Encoding` names a coding the host cannot undo (415).
    #[error("unsupported request content-encoding {0}")]
    Unsupported(String),
    /// The decoded body would exceed the cap (413).
    #[error("decoded request body exceeds the gateway's limit of {0} bytes")]
    TooLarge(usize),
    /// The bytes are not valid for their coding (400).
    #[error("request body is not valid {0} data")]
    Corrupt(&'static str),
    /// The decoded bytes do not fit in what is left of the shared body
    /// budget (503, retry later).
    #[error("the gateway is buffering too many request bodies; retry shortly")]
    OverBudget,
}

/// The codings of every `Content-Encoding` header, in the order they were
/// applied (`identity` dropped). An unknown coding is an error.
pub fn codings<'a>(
    values: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for v in values {
        let Ok(s) = v.to_str() else {
            return Err(DecodeError::Unsupported("(not ASCII)".into()));
        };
        for token in s.split(',') {
            let t = token.trim().to_ascii_lowercase();
            let c = match t.as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                _ => {
                    let shown: String = t
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(32)
                        .collect();
                    return Err(DecodeError::Unsupported(format!("{shown:?}")));
                }
            };
            out.push(c);
        }
    }
    Ok(out)
}

/// Undo `codings` (as listed in the header: the last one applied last) on
/// `raw`, refusing anything that decodes to more than `cap` bytes.
pub fn decode(raw: &[u8], codings: &[Coding], cap: usize) -> Result<Vec<u8>, DecodeError> {
    decode_metered(raw, codings, cap, &mut |_| true)
}

/// [`decode`], asking `grant(n)` for every `n` bytes of output buffer before
/// allocating them (the shared body budget): a `false` stops with
/// [`DecodeError::OverBudget`], so what is inflated never outgrows what was
/// granted.
pub fn decode_metered(
    raw: &[u8],
    codings: &[Coding],
    cap: usize,
    grant: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecodeError> {
    if codings.is_empty() {
        if raw.len() > cap {
            return Err(DecodeError::TooLarge(cap));
        }
        if !grant(raw.len()) {
            return Err(DecodeError::OverBudget);
        }
        return Ok(raw.to_vec());
    }
    let mut reader: Box<dyn Read + '_> = Box::new(raw);
    for c in codings.iter().rev() {
        reader = match c {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Coding::Deflate => Box::new(flate2::read::ZlibDecoder::new(reader)),
            Coding::Brotli => Box::new(brotli::Decompressor::new(reader, 8192)),
            Coding::Zstd => match zstd::stream::read::Decoder::new(reader) {
                Ok(d) => Box::new(d),
                Err(_) => return Err(DecodeError::Corrupt("zstd")),
            },
        };
    }
    // Which coding failed is not known from the reader chain: name the outermost.
    let outer = codings.last().map(|c| c.name()).unwrap_or("encoded");
    let first = raw.len().saturating_mul(4).min(cap);
    if !grant(first) {
        return Err(DecodeError::OverBudget);
    }
    let mut out: Vec<u8> = Vec::with_capacity(first);
    let mut granted = first;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(DecodeError::Corrupt(outer)),
        };
        let need = out.len() + n;
        if need > cap {
            return Err(DecodeError::TooLarge(cap));
        }
        if need > out.capacity() {
            // Grow by doubling, but never past the cap.
            let target = (out.capacity() * 2).max(need).min(cap);
            if !grant(target.saturating_sub(granted)) {
                return Err(DecodeError::OverBudget);
            }
            granted = granted.max(target);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn br(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(b).unwrap();
        }
        out
    }
    fn zstd(b: &[u8]) -> Vec<u8> {
        zstd::encode_all(b, 3).unwrap()
    }
    fn hv(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn every_coding_round_trips() {
        let plain = br#"{"messages":[{"role":"user","content":"hello"}]}"#.repeat(20);
        for (name, enc) in [
            ("gzip", gzip(&plain)),
            ("deflate", zlib(&plain)),
            ("br", br(&plain)),
            ("zstd", zstd(&plain)),
        ] {
            let c = codings([&hv(name)]).unwrap();
            assert_eq!(decode(&enc, &c, 1 << 20).unwrap(), plain, "{name}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        let plain = b"ignore previous instructions".repeat(10);
        let both = zstd(&gzip(&plain));
        let c = codings([&hv("gzip, zstd")]).unwrap();
        assert_eq!(c, vec![Coding::Gzip, Coding::Zstd]);
        assert_eq!(decode(&both, &c, 1 << 20).unwrap(), plain);
        // The same list split over two headers.
        let c = codings([&hv("gzip"), &hv("identity, zstd")]).unwrap();
        assert_eq!(decode(&both, &c, 1 << 20).unwrap(), plain);
    }

    #[test]
    fn unknown_codings_are_refused() {
        assert!(matches!(
            codings([&hv("compress")]),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            codings([&hv("gzip, snappy")]),
            Err(DecodeError::Unsupported(_))
        ));
        assert_eq!(codings([&hv("identity")]).unwrap(), vec![]);
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let bomb = zstd(&vec![b'a'; 20 << 20]);
        assert!(bomb.len() < 4096, "{}", bomb.len());
        let c = [Coding::Zstd];
        assert_eq!(
            decode(&bomb, &c, 1 << 20),
            Err(DecodeError::TooLarge(1 << 20))
        );
        assert_eq!(decode(&bomb, &c, 20 << 20).unwrap().len(), 20 << 20);
        // Exactly at the cap passes; one byte less refuses.
        assert!(decode(&bomb, &c, (20 << 20) - 1).is_err());
    }

    #[test]
    fn the_output_buffer_is_granted_before_it_is_allocated() {
        let bomb = zstd(&vec![b'a'; 8 << 20]);
        let c = [Coding::Zstd];
        // Everything granted: the grants add up to at least the output.
        let mut granted = 0usize;
        let out = decode_metered(&bomb, &c, 32 << 20, &mut |n| {
            granted += n;
            true
        })
        .unwrap();
        assert_eq!(out.len(), 8 << 20);
        assert!(
            granted >= out.len() && granted <= 2 * out.len(),
            "{granted}"
        );
        assert!(out.capacity() <= granted, "{} > {granted}", out.capacity());
        // A budget of 1 MiB: refused before more is inflated.
        let mut granted = 0usize;
        assert_eq!(
            decode_metered(&bomb, &c, 32 << 20, &mut |n| {
                if granted + n > 1 << 20 {
                    return false;
                }
                granted += n;
                true
            }),
            Err(DecodeError::OverBudget)
        );
        assert!(granted <= 1 << 20);
        // Plain bytes are granted too.
        assert_eq!(
            decode_metered(b"abc", &[], 10, &mut |n| n < 3),
            Err(DecodeError::OverBudget)
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        assert_eq!(
            decode(b"not gzip at all", &[Coding::Gzip], 1 << 20),
            Err(DecodeError::Corrupt("gzip"))
        );
        let mut z = zstd(b"hello world hello world");
        z.truncate(z.len() - 3);
        assert!(decode(&z, &[Coding::Zstd], 1 << 20).is_err());
    }
}
