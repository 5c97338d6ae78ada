//! The path normaliser on any request target hyper would accept: no panic,
//! and a normalised path that is stable (normalising it again changes
//! nothing), rooted, and free of the forms a policy could be walked around
//! with (`//`, `.` and `..` segments, decodable unreserved escapes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::proxy::path::normalize;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fuzz_target!(|data: &[u8]| {
    // Only what survives hyper's URI parser reaches the normaliser.
    let Ok(target) = http::uri::PathAndQuery::try_from(data) else {
        return;
    };
    let path = target.path();
    let Ok(once) = normalize(path) else {
        return;
    };
    assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{path:?}");
    if once == "*" {
        return;
    }
    assert!(once.starts_with('/'), "{path:?} -> {once:?}");
    assert!(!once.contains("//"), "{path:?} -> {once:?}");
    for seg in once.split('/') {
        assert!(seg != "." && seg != "..", "{path:?} -> {once:?}");
    }
    let b = once.as_bytes();
    for (i, _) in once.match_indices('%') {
        let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("escape");
        let v = u8::from_str_radix(hex, 16).expect("hex escape");
        assert!(!unreserved(v) && v != b'/' && v != 0, "{path:?} -> {once:?}");
        assert_eq!(hex, hex.to_ascii_uppercase(), "{path:?} -> {once:?}");
    }
});
