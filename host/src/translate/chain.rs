//! Two transcoders in a row: a provider's framing (Bedrock's event-stream
//! into Anthropic SSE), then a translation of that into the client's format.

use crate::provider::{Transcode, TranscodeError};

pub struct Chain {
    first: Box<dyn Transcode>,
    second: Box<dyn Transcode>,
}

impl Chain {
    pub fn new(first: Box<dyn Transcode>, second: Box<dyn Transcode>) -> Self {
        Chain { first, second }
    }
}

impl Transcode for Chain {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        let mid = self.first.push(bytes)?;
        if mid.is_empty() {
            return Ok(mid);
        }
        self.second.push(&mid)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        let mid = self.first.finish()?;
        let mut out = self.second.push(&mid)?;
        out.extend(self.second.finish()?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::whole::Whole;

    #[test]
    fn the_second_reads_what_the_first_wrote() {
        let up = Box::new(Whole::new(|b: &[u8]| Ok(b.to_ascii_uppercase())));
        let rev = Box::new(Whole::new(|b: &[u8]| Ok(b.iter().rev().copied().collect())));
        let mut c = Chain::new(up, rev);
        assert!(c.push(b"ab").unwrap().is_empty());
        assert_eq!(c.finish().unwrap(), b"BA");
    }
}
