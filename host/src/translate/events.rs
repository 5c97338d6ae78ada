//! The loop every stream translator shares: frame the upstream's SSE bytes
//! into events and hand each event's data to the translator, stopping once
//! it has ended the client's stream. Only the per-event step differs.

use crate::provider::TranscodeError;
use crate::stream::sse::Framer;

/// A stream translator, one upstream event at a time.
pub(super) trait Events {
    fn framer(&mut self) -> &mut Framer;
    /// The client's stream is complete: later upstream events are ignored.
    fn ended(&self) -> bool;
    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError>;
}

/// Translate every whole event in `bytes`; an incomplete one waits.
pub(super) fn push(t: &mut impl Events, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
    let mut out = Vec::new();
    t.framer().push(bytes);
    if t.framer().overflowed() {
        return Err(TranscodeError("an upstream event is too large".into()));
    }
    while let Some(ev) = t.framer().next_event() {
        if !t.ended() && !ev.data.is_empty() {
            t.event(&ev.data, &mut out)?;
        }
    }
    Ok(out)
}

/// The upstream stream is over: translate its last, unterminated event.
pub(super) fn last(t: &mut impl Events, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    if let Some(ev) = t.framer().finish() {
        if !t.ended() && !ev.data.is_empty() {
            t.event(&ev.data, out)?;
        }
    }
    Ok(())
}
