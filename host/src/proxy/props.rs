//! Property tests for the request-side parsers of untrusted input: the path
//! normaliser, the body decoder and strict JSON. Stable, with proptest; the
//! `fuzz/` crate explores the same space with libFuzzer.

use super::path::normalize;
use super::request_decode::{decode, decode_metered, Coding, DecodeError};
use super::strict_json::{self, StrictJsonError};
use proptest::prelude::*;
use std::io::Write;

fn path_chars() -> impl Strategy<Value = String> {
    // Segments, dots, slashes and escapes (some malformed, some unreserved).
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9_~-]{1,6}",
            "[é✓ɞ]{1,2}",
            Just("/".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            "%[0-9a-fA-F]{2}",
            "%[0-9a-fA-Fg]{0,1}",
        ],
        0..16,
    )
    .prop_map(|parts| format!("/{}", parts.concat()))
}

fn encode(bytes: &[u8], codings: &[Coding]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for c in codings {
        out = match c {
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&out).unwrap();
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&out).unwrap();
                e.finish().unwrap()
            }
            Coding::Brotli => {
                let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 20);
                w.write_all(&out).unwrap();
                w.into_inner()
            }
            Coding::Zstd => zstd::encode_all(&out[..], 1).unwrap(),
        };
    }
    out
}

fn coding() -> impl Strategy<Value = Coding> {
    prop_oneof![
        Just(Coding::Gzip),
        Just(Coding::Deflate),
        Just(Coding::Brotli),
        Just(Coding::Zstd)
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A normalised path is stable, rooted, and has no `//`, `.` or `..`.
    #[test]
    fn normalised_paths_are_stable_and_plain(path in path_chars()) {
        if let Ok(once) = normalize(&path) {
            prop_assert_eq!(normalize(&once), Ok(once.clone()));
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"), "{} -> {}", path, once);
            prop_assert!(once.split('/').all(|s| s != "." && s != ".."), "{} -> {}", path, once);
        }
    }

    /// The spellings a client would try all read as the plain path.
    #[test]
    fn detours_read_as_the_plain_path(segs in prop::collection::vec("[a-z0-9]{1,5}", 1..5), at in any::<prop::sample::Index>(), detour in 0usize..4) {
        let plain = format!("/{}", segs.join("/"));
        let i = at.index(segs.len());
        let mut twisted: Vec<String> = segs.clone();
        twisted[i] = match detour {
            0 => format!("./{}", segs[i]),
            1 => format!("/{}", segs[i]),
            2 => format!("zz/../{}", segs[i]),
            _ => segs[i].bytes().map(|b| format!("%{b:02x}")).collect(),
        };
        let twisted = format!("/{}", twisted.join("/"));
        prop_assert_eq!(normalize(&twisted), Ok(plain.clone()), "{}", twisted);
    }

    /// Whatever stack of codings a client applies, the policies read the
    /// original bytes.
    #[test]
    fn any_stack_of_codings_decodes_to_the_original(body in prop::collection::vec(any::<u8>(), 0..2048), codings in prop::collection::vec(coding(), 0..4)) {
        let wire = encode(&body, &codings);
        prop_assert_eq!(decode(&wire, &codings, 1 << 20), Ok(body));
    }

    /// Garbage under any codings is refused or decoded within the cap and
    /// within what the budget granted; never a panic.
    #[test]
    fn garbage_never_outgrows_cap_or_budget(body in prop::collection::vec(any::<u8>(), 0..512), codings in prop::collection::vec(coding(), 0..3), budget in 0usize..4096) {
        let mut left = budget;
        let mut granted = 0;
        match decode_metered(&body, &codings, 2048, &mut |n| { if n > left { return false; } left -= n; granted += n; true }) {
            Ok(out) => prop_assert!(out.len() <= 2048 && out.len() <= granted),
            Err(DecodeError::TooLarge(2048) | DecodeError::Corrupt(_) | DecodeError::OverBudget) => {}
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }

    /// Honest JSON passes; the same document with one key repeated does not.
    #[test]
    fn strict_json_passes_honest_json_and_refuses_a_repeated_key(v in json_value(), k in "[a-z]{1,4}") {
        let text = v.to_string();
        prop_assert_eq!(strict_json::check(text.as_bytes()), Ok(()));
        let twice = format!("{{\"{k}\":1,\"x\":{text},\"{k}\":2}}");
        let refused = matches!(strict_json::check(twice.as_bytes()), Err(StrictJsonError::DuplicateKey { .. }));
        prop_assert!(refused, "{}", twice);
    }

    /// Whatever strict JSON accepts, serde_json reads as one value too.
    #[test]
    fn strict_json_accepts_only_json(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if strict_json::check(&bytes).is_ok() {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        }
    }
}
