//! The request-body decoder and the strict JSON check on arbitrary bytes and
//! any stack of codings: no panic, never more than the cap (or the budget)
//! in memory, and strict JSON accepts only what serde_json reads the same way
//! (one value, no repeated key).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::proxy::request_decode::{decode, decode_metered, Coding, DecodeError};
use sluice::proxy::strict_json;

const CAP: usize = 1 << 20;
const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

/// Up to three codings, chosen by the first byte (0 = none).
fn codings(sel: u8) -> Vec<Coding> {
    let n = (sel % 4) as usize;
    (0..n)
        .map(|i| ALL[((sel >> (2 + 2 * i)) & 3) as usize])
        .collect()
}

/// `v` with every number replaced by `null`.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(_) => Value::Null,
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        other => other.clone(),
    }
}

fn strict_agrees_with_serde(bytes: &[u8]) {
    if strict_json::check(bytes).is_ok() {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).expect("strict JSON that serde_json refuses");
        // No key was repeated: re-serialising keeps every key once, so the
        // value round-trips to the same shape (numbers aside: serde_json's
        // float parsing is not exact without `float_roundtrip`, and the
        // gateway forwards the client's bytes, never a re-serialisation).
        let again: serde_json::Value =
            serde_json::from_str(&v.to_string()).expect("round trip");
        assert_eq!(shape(&v), shape(&again));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let cs = codings(sel);
    strict_agrees_with_serde(body);
    match decode(body, &cs, CAP) {
        Ok(out) => {
            assert!(out.len() <= CAP);
            strict_agrees_with_serde(&out);
        }
        Err(DecodeError::TooLarge(cap)) => assert_eq!(cap, CAP),
        Err(DecodeError::Corrupt(_)) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
    // A small budget: what is granted is never exceeded.
    let mut left = 64usize << 10;
    let mut granted = 0usize;
    let r = decode_metered(body, &cs, CAP, &mut |n| {
        if n > left {
            return false;
        }
        left -= n;
        granted += n;
        true
    });
    if let Ok(out) = r {
        assert!(out.len() <= granted, "{} > {granted}", out.len());
    }
});
