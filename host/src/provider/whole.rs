//! A transcoder for answers rewritten whole: a provider's error envelope
//! into the family's, or a count-tokens answer into Anthropic's.
//!
//! Why whole: these are small JSON documents that only make sense complete;
//! holding them back costs nothing a client would notice. The cap keeps a
//! misbehaving upstream from growing the gateway's memory.

use super::{Transcode, TranscodeError};

/// Largest answer collected for a rewrite.
pub const MAX_WHOLE: usize = 1 << 20;

pub struct Whole<F> {
    buf: Vec<u8>,
    map: Option<F>,
}

impl<F> Whole<F>
where
    F: FnOnce(&[u8]) -> Result<Vec<u8>, TranscodeError> + Send,
{
    pub fn new(map: F) -> Self {
        Whole {
            buf: Vec::new(),
            map: Some(map),
        }
    }
}

impl<F> Transcode for Whole<F>
where
    F: FnOnce(&[u8]) -> Result<Vec<u8>, TranscodeError> + Send,
{
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        if self.buf.len() + bytes.len() > MAX_WHOLE {
            return Err(TranscodeError(format!(
                "answer over {MAX_WHOLE} bytes where a small JSON document was expected"
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        match self.map.take() {
            Some(f) => f(&std::mem::take(&mut self.buf)),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_once_at_the_end_and_caps_what_it_holds() {
        let mut w = Whole::new(|b: &[u8]| Ok(b.to_ascii_uppercase()));
        assert!(w.push(b"ab").unwrap().is_empty());
        assert!(w.push(b"c").unwrap().is_empty());
        assert_eq!(w.finish().unwrap(), b"ABC");
        let mut w = Whole::new(|b: &[u8]| Ok(b.to_vec()));
        assert!(w.push(&vec![0; MAX_WHOLE + 1]).is_err());
    }
}
