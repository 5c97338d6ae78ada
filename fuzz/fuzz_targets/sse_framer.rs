//! The SSE framer on arbitrary upstream bytes split at arbitrary points:
//! no panic, and the same events whatever the split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::stream::sse::Framer;

fn events(chunks: &[&[u8]]) -> Vec<String> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for c in chunks {
        f.push(c);
        while let Some(e) = f.next_event() {
            out.push(format!("{e:?}"));
        }
    }
    if let Some(e) = f.finish() {
        out.push(format!("{e:?}"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len().max(1);
    let body = &data[1..];
    let split = split.min(body.len());
    let whole = events(&[body]);
    let parts = events(&[&body[..split], &body[split..]]);
    assert_eq!(whole, parts);
});
