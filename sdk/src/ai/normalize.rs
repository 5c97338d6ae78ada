//! Text normalisation before pattern matching, so that look-alike spellings
//! of a phrase cannot slip past a rule.
//!
//! [`normalize`] applies, in order:
//! 1. removal of every format character (Unicode general category `Cf`:
//!    zero-width space/joiners U+200B..U+200D, word joiner U+2060, BOM
//!    U+FEFF, soft hyphen U+00AD, bidi controls...);
//! 2. Unicode NFKC (`unicode-normalization`): fullwidth `ｉｇｎｏｒｅ`,
//!    ligatures, superscripts and compatibility forms become their plain
//!    letters;
//! 3. case folding: `str::to_lowercase` after NFKC (full Unicode lowercase
//!    mapping; it differs from full case folding only for a few characters,
//!    such as `ß`, that no ASCII phrase contains);
//! 4. whitespace runs (any Unicode `White_Space`) collapsed to one space,
//!    leading and trailing whitespace dropped.
//!
//! JSON escapes (`\u0069`) are not a concern here: the walker reads decoded
//! string values. [`normalize_keep_case`] is the same without step 3, for
//! rules whose patterns are case-sensitive as written.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` is a format (`Cf`) character: invisible, and removed.
pub fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// Normalised text for case-insensitive matching (see the module doc).
pub fn normalize(s: &str) -> String {
    if s.is_ascii() {
        return collapse_ascii(s, true);
    }
    collapse(&strip_nfkc(s).to_lowercase())
}

/// Normalised text without case folding.
pub fn normalize_keep_case(s: &str) -> String {
    if s.is_ascii() {
        return collapse_ascii(s, false);
    }
    collapse(&strip_nfkc(s))
}

/// The same steps for ASCII text, in one pass and one allocation: ASCII has
/// no format characters, NFKC leaves it as it is and its lowercase is
/// byte-wise. Most prompts are ASCII, and every request's texts go through
/// here (about 1.5% of the production route's CPU went to the general path).
fn collapse_ascii(s: &str, lower: bool) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut space = false;
    for &b in s.as_bytes() {
        if char::from(b).is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(b' ');
        }
        space = false;
        out.push(if lower { b.to_ascii_lowercase() } else { b });
    }
    String::from_utf8(out).expect("ASCII in, ASCII out")
}

fn strip_nfkc(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    s.chars().filter(|c| !is_format(*c)).nfkc().collect()
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII fast path gives exactly what the general path gives, for
    /// every ASCII character (the C0 controls that are and are not
    /// `White_Space` included) around letters and spaces.
    #[test]
    fn the_ascii_path_is_the_general_path() {
        let general = |s: &str, lower: bool| {
            let n = strip_nfkc(s);
            collapse(&if lower { n.to_lowercase() } else { n })
        };
        for b in 0u8..128 {
            let c = char::from(b);
            for s in [
                format!("{c}"),
                format!(" A{c}b "),
                format!("{c}{c}Ignore  {c}PREVIOUS{c}"),
                format!("x\t\n\u{b}\u{c}\r{c}y"),
            ] {
                assert_eq!(normalize(&s), general(&s, true), "{s:?}");
                assert_eq!(normalize_keep_case(&s), general(&s, false), "{s:?}");
            }
        }
    }

    const PHRASE: &str = "ignore previous instructions";

    #[test]
    fn look_alikes_normalise_to_the_phrase() {
        for s in [
            "ignore previous instructions",
            "IGNORE Previous INSTRUCTIONS",
            "  ignore\tprevious\n\ninstructions ",
            "ｉｇｎｏｒｅ previous instructions",   // fullwidth
            "ＩＧＮＯＲＥ　previous　instructions", // fullwidth caps, ideographic space
            "ig\u{200b}nore pre\u{200c}vious instr\u{200d}uctions", // zero-width
            "ignore\u{2060} previous\u{feff} instruc\u{ad}tions", // word joiner, BOM, soft hyphen
            "ignore\u{202e} previous instructions", // bidi override (Cf)
            "ignore previous\u{a0}instructions",    // no-break space
            "ignore previous\u{2003}instructions",  // em space
        ] {
            assert_eq!(normalize(s), PHRASE, "{s:?}");
        }
        // Compatibility forms: the `ﬁ` ligature, superscripts, circled letters.
        assert_eq!(normalize("\u{fb01}le"), "file");
        assert_eq!(normalize("x²"), "x2");
        assert_eq!(normalize("ⓘgnore"), "ignore");
        assert_eq!(normalize("Straße"), "straße");
    }

    #[test]
    fn keep_case_and_ascii_fast_path() {
        assert_eq!(normalize_keep_case("ＳＳＮ  here"), "SSN here");
        assert_eq!(normalize_keep_case("a\u{200b}b"), "ab");
        assert_eq!(normalize("Plain ASCII"), "plain ascii");
        assert_eq!(normalize(""), "");
        assert!(is_format('\u{200b}') && is_format('\u{feff}') && !is_format('a'));
    }
}
