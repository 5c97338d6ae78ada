//! Property tests for the SSE framer (untrusted upstream bytes): stable,
//! with proptest; the `fuzz/` crate explores the same space with libFuzzer.

use super::sse::{encode, Framer};
use proptest::prelude::*;

fn frame(chunks: &[&[u8]]) -> Vec<(Option<String>, String, Option<String>)> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for c in chunks {
        f.push(c);
        while let Some(e) = f.next_event() {
            out.push((e.event, e.data, e.id));
        }
    }
    out.extend(f.finish().map(|e| (e.event, e.data, e.id)));
    out
}

fn field() -> impl Strategy<Value = String> {
    // No line breaks inside a field value (they would end the line).
    "[a-zA-Z0-9 {}\":,._-]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encoded events come back as they were, however the bytes are split.
    #[test]
    fn events_survive_any_split(
        events in prop::collection::vec((prop::option::of("[a-z_.]{1,20}"), prop::collection::vec(field(), 1..4), prop::option::of("[0-9]{1,6}")), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        crlf in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (event, lines, id) in &events {
            let data = lines.join("\n");
            let mut bytes = encode(event.as_deref(), &data, id.as_deref()).to_vec();
            if crlf {
                bytes = String::from_utf8(bytes).unwrap().replace('\n', "\r\n").into_bytes();
            }
            wire.extend_from_slice(&bytes);
            want.push((event.clone(), data, id.clone()));
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for p in points {
            chunks.push(&wire[at..p]);
            at = p;
        }
        chunks.push(&wire[at..]);
        prop_assert_eq!(frame(&chunks), want);
    }

    /// Arbitrary bytes: no panic, and splitting never changes the result.
    #[test]
    fn arbitrary_bytes_split_anywhere(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in any::<prop::sample::Index>()) {
        let c = cut.index(bytes.len() + 1);
        prop_assert_eq!(frame(&[&bytes]), frame(&[&bytes[..c], &bytes[c..]]));
    }
}
