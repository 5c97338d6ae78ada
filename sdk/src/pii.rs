//! The built-in PII detectors (`email`, `phone`, `ssn`, `creditCard`,
//! `ipAddress`, `caSin`): a candidate regex plus a validator. Shared by every
//! plugin that finds PII (output-mask, input-validation's promptGuard), so a
//! detector means the same thing on both sides of the gateway.
//!
//! The `regex` crate has no look-around, so each detector is split in two: an
//! ASCII-only candidate pattern (a plugin compiles it with its own regex
//! engine, e.g. into a streaming DFA) and a validator [`Builtin::accept`]
//! that checks what a regex cannot: word boundaries against the surrounding
//! text, the Luhn checksum of card numbers, octet ranges, SSN area/group/serial rules, and a real IPv6 parse.

use std::net::Ipv6Addr;
use std::str::FromStr;

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Email,
    Phone,
    Ssn,
    CreditCard,
    Ipv4,
    Ipv6,
    CaSin,
}

/// The names accepted in config, for error messages.
pub const BUILTIN_NAMES: &str =
    "email, phone (phoneNumber), ssn, creditCard, ipAddress (ipv4, ipv6), caSin";

impl Builtin {
    /// Parse a config name (case-insensitive, `_`/`-` ignored): the guide's
    /// `email`/`phone`/`ssn`, agentgateway's `phoneNumber`/`creditCard`/`caSin`
    /// and their Kubernetes spellings (`PhoneNumber`, `CreditCard`, `Ssn`).
    pub fn parse(name: &str) -> Option<&'static [Builtin]> {
        let n: String = name
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match n.as_str() {
            "email" | "emailaddress" => &[Builtin::Email],
            "phone" | "phonenumber" => &[Builtin::Phone],
            "ssn" | "ussocialsecuritynumber" => &[Builtin::Ssn],
            "creditcard" | "creditcardnumber" | "card" => &[Builtin::CreditCard],
            "ipaddress" | "ip" => &[Builtin::Ipv4, Builtin::Ipv6],
            "ipv4" => &[Builtin::Ipv4],
            "ipv6" => &[Builtin::Ipv6],
            "casin" => &[Builtin::CaSin],
            _ => return None,
        })
    }

    /// The replacement text.
    pub fn mask(self) -> &'static str {
        match self {
            Builtin::Email => "<EMAIL>",
            Builtin::Phone => "<PHONE>",
            Builtin::Ssn => "<SSN>",
            Builtin::CreditCard => "<CREDIT_CARD>",
            Builtin::Ipv4 | Builtin::Ipv6 => "<IP_ADDRESS>",
            Builtin::CaSin => "<CA_SIN>",
        }
    }

    /// The candidate pattern (ASCII only, no look-around, no `\b`: boundaries
    /// are checked by [`Builtin::accept`]).
    pub fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}",
            // North American numbers with separators or parentheses (a bare
            // 10-digit run is too often an id or a timestamp), or an
            // international number written with a leading `+`.
            Builtin::Phone => concat!(
                r"(?:\+?1[ .\-]?)?(?:\([0-9]{3}\)[ .\-]?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}",
                r"|\+[0-9]{1,3}(?:[ .\-]?[0-9]{1,4}){2,6}"
            ),
            Builtin::Ssn => r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
            Builtin::CreditCard => r"[0-9](?:[ \-]?[0-9]){12,18}",
            Builtin::Ipv4 => r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
            Builtin::Ipv6 => r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}",
            Builtin::CaSin => r"[0-9]{3}[ \-]?[0-9]{3}[ \-]?[0-9]{3}",
        }
    }

    /// Check a candidate `text[start..end]`; `prev` is the character before
    /// it (from the text, or carried over from an earlier stream chunk).
    /// Returns the accepted end (a card number may be shortened to the
    /// longest prefix that passes Luhn), or `None` to reject.
    pub fn accept(self, text: &str, start: usize, end: usize, prev: Option<char>) -> Option<usize> {
        let cand = &text[start..end];
        let next = text[end..].chars().next();
        let after_next = text[end..].chars().nth(1);
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        // `1.2.3.4.5`, `555-123-4567-89`: a separator followed by a digit
        // continues the number.
        let continues = matches!(next, Some('.' | '-')) && digit(after_next);
        match self {
            Builtin::Email => (!word(prev) && !word(next) && next != Some('@')).then_some(end),
            Builtin::Phone => {
                if word(prev) || matches!(prev, Some('.' | '-' | '+')) || word(next) || continues {
                    return None;
                }
                if cand.starts_with('+') {
                    // International: 8 to 15 digits (E.164).
                    let n = cand.chars().filter(char::is_ascii_digit).count();
                    if !(8..=15).contains(&n) {
                        return None;
                    }
                }
                Some(end)
            }
            Builtin::Ssn => {
                if word(prev) || prev == Some('-') || word(next) || continues {
                    return None;
                }
                let (area, rest) = cand.split_at(3);
                let (group, serial) = (&rest[1..3], &rest[4..]);
                let ok = area != "000"
                    && area != "666"
                    && !area.starts_with('9')
                    && group != "00"
                    && serial != "0000";
                ok.then_some(end)
            }
            Builtin::CreditCard => {
                if word(prev) || matches!(prev, Some('.' | '-')) {
                    return None;
                }
                // Try the whole run, then shorter prefixes ending before a
                // separator (`4111 1111 1111 1111 2024` is a card and a year).
                let mut ends: Vec<usize> = cand
                    .char_indices()
                    .filter(|(_, c)| matches!(c, ' ' | '-'))
                    .map(|(i, _)| start + i)
                    .collect();
                ends.push(end);
                ends.into_iter().rev().find(|&e| {
                    let digits: Vec<u8> = text[start..e]
                        .bytes()
                        .filter(u8::is_ascii_digit)
                        .map(|b| b - b'0')
                        .collect();
                    let next = text[e..].chars().next();
                    let after = text[e..].chars().nth(1);
                    let cont = matches!(next, Some('-' | '.')) && digit(after);
                    (13..=19).contains(&digits.len())
                        && (2..=6).contains(&digits[0])
                        && luhn(&digits)
                        && !word(next)
                        && !(e == end && cont)
                })
            }
            Builtin::Ipv4 => {
                if word(prev) || matches!(prev, Some('.' | '-')) || word(next) || continues {
                    return None;
                }
                cand.split('.')
                    .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255))
                    .then_some(end)
            }
            Builtin::Ipv6 => {
                if word(prev) || matches!(prev, Some(':' | '.')) {
                    return None;
                }
                // A trailing `:` or `.` is punctuation (`at fe80::1: done`).
                let trimmed = cand.trim_end_matches(['.', ':']);
                let e = start + trimmed.len();
                let next = text[e..].chars().next();
                if word(next) || (e == end && next == Some(':')) {
                    return None;
                }
                let groups = trimmed.split([':', '.']).filter(|g| !g.is_empty()).count();
                let ok = Ipv6Addr::from_str(trimmed).is_ok()
                    && groups >= 2
                    && trimmed.bytes().any(|b| b.is_ascii_digit());
                ok.then_some(e)
            }
            Builtin::CaSin => {
                if word(prev) || matches!(prev, Some('.' | '-')) || word(next) || continues {
                    return None;
                }
                let digits: Vec<u8> = cand
                    .bytes()
                    .filter(u8::is_ascii_digit)
                    .map(|b| b - b'0')
                    .collect();
                (digits.len() == 9 && !matches!(digits[0], 0 | 8) && luhn(&digits)).then_some(end)
            }
        }
    }
}

/// The Luhn checksum (ISO/IEC 7812) over decimal digits.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if !i.is_multiple_of(2) {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn luhn_known_numbers() {
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("5500005555555559")));
        assert!(luhn(&digits("378282246310005")));
        assert!(!luhn(&digits("4111111111111112")));
        assert!(!luhn(&[]));
    }

    #[test]
    fn names_parse() {
        assert_eq!(Builtin::parse("PhoneNumber"), Some(&[Builtin::Phone][..]));
        assert_eq!(
            Builtin::parse("credit_card"),
            Some(&[Builtin::CreditCard][..])
        );
        assert_eq!(Builtin::parse("ipAddress").unwrap().len(), 2);
        assert_eq!(Builtin::parse("Ssn"), Some(&[Builtin::Ssn][..]));
        assert!(Builtin::parse("passport").is_none());
    }
}
