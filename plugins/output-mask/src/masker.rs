//! Finding and replacing PII in text, whole or streamed in pieces.
//!
//! Whole texts are simple: find every accepted match of every rule, keep the
//! earliest (then longest) of overlapping ones, replace.
//!
//! Streams are the hard part: a secret can be split across deltas
//! (`"bob@exam"` + `"ple.com"`), so the end of each piece may have to wait for
//! the next one. [`Masker::step`] holds back only the shortest tail that could
//! still grow into a match: it runs a lazy DFA of every rule's pattern
//! (anchored, "any pattern" match semantics) from each candidate start near
//! the end, and the earliest start from which the DFA is not dead after the
//! last byte is where the held tail begins. Everything before it is final: no
//! match can start there and reach past the end, so more text cannot change
//! how it is masked. The tail is capped at [`MAX_HOLD`] characters so a
//! pathological token cannot stall the stream.

use std::borrow::Cow;
use std::cell::RefCell;

use regex::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input, MatchKind};

use sluice_sdk::pii::Builtin;

/// The most characters a stream may hold back at once (unless a complete
/// match straddles the cut, which is then held whole).
pub const MAX_HOLD: usize = 64;

/// What a rule detects.
#[derive(Debug, Clone)]
pub enum Detector {
    Builtin(Builtin),
    /// A user regex; every non-empty match is replaced.
    Custom,
}

/// One rule: a compiled regex, how to confirm its candidates, what to write.
#[derive(Debug, Clone)]
pub struct Rule {
    pub detector: Detector,
    pub regex: Regex,
    pub replacement: String,
}

impl Rule {
    pub fn builtin(b: Builtin) -> Rule {
        Rule {
            detector: Detector::Builtin(b),
            regex: Regex::new(b.pattern()).expect("built-in patterns compile"),
            replacement: b.mask().to_owned(),
        }
    }

    pub fn custom(pattern: &str, replacement: String) -> Result<Rule, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
        if regex.is_match("") {
            return Err("the regex matches the empty string".into());
        }
        Ok(Rule {
            detector: Detector::Custom,
            regex,
            replacement,
        })
    }

    fn pattern(&self) -> &str {
        self.regex.as_str()
    }
}

/// A span of text to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    /// Index into [`Masker::rules`].
    pub rule: usize,
}

/// A set of rules, ready to mask whole texts and streams.
pub struct Masker {
    pub rules: Vec<Rule>,
    dfa: DFA,
    /// Scratch space of the lazy DFA. Instance-local and request-agnostic
    /// (it only caches automaton states), so it is not per-request state.
    cache: RefCell<Cache>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("rules", &self.rules)
            .finish()
    }
}

/// The result of feeding a piece of a stream to [`Masker::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Masked text that can be sent now.
    pub emit: String,
    /// Raw text held back for the next piece.
    pub held: String,
    /// The last character sent (the boundary context of `held`).
    pub ctx: Option<char>,
}

impl Masker {
    pub fn new(rules: Vec<Rule>) -> Result<Masker, String> {
        let patterns: Vec<&str> = rules.iter().map(Rule::pattern).collect();
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    // Custom rules may use `\b`: allowed, at the price of the
                    // DFA giving up (we then hold conservatively) on non-ASCII.
                    .unicode_word_boundary(true),
            )
            .build_many(&patterns)
            .map_err(|e| format!("cannot build the streaming matcher: {e}"))?;
        let cache = RefCell::new(dfa.create_cache());
        Ok(Masker { rules, dfa, cache })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every accepted, non-overlapping match in `text`, in order. `prev` is
    /// the character before `text` (boundary context from a stream).
    pub fn find(&self, text: &str, prev: Option<char>) -> Vec<Match> {
        let mut all = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            let mut pos = 0;
            while pos <= text.len() {
                let Some(m) = rule.regex.find_at(text, pos) else {
                    break;
                };
                let (s, e) = (m.start(), m.end());
                let accepted = match rule.detector {
                    Detector::Custom => (e > s).then_some(e),
                    Detector::Builtin(b) => {
                        let before =
                            text[..s]
                                .chars()
                                .next_back()
                                .or(if s == 0 { prev } else { None });
                        b.accept(text, s, e, before)
                    }
                };
                match accepted {
                    Some(end) if end > s => {
                        all.push(Match {
                            start: s,
                            end,
                            rule: ri,
                        });
                        pos = end;
                    }
                    // Rejected: a real match may start inside the candidate.
                    _ => pos = s + text[s..].chars().next().map_or(1, char::len_utf8),
                }
            }
        }
        // Earliest first, then longest, then config order.
        all.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end), m.rule));
        let mut out: Vec<Match> = Vec::with_capacity(all.len());
        for m in all {
            if out.last().is_none_or(|l| m.start >= l.end) {
                out.push(m);
            }
        }
        out
    }

    /// `text` with `matches` (sorted, non-overlapping, within `text`) replaced.
    fn apply<'t>(&self, text: &'t str, matches: &[Match]) -> Cow<'t, str> {
        if matches.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in matches {
            out.push_str(&text[last..m.start]);
            out.push_str(&self.rules[m.rule].replacement);
            last = m.end;
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }

    /// Mask a whole text.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.mask_after(text, None)
    }

    /// Mask a whole text that follows `prev`.
    pub fn mask_after<'t>(&self, text: &'t str, prev: Option<char>) -> Cow<'t, str> {
        if self.rules.is_empty() || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let m = self.find(text, prev);
        self.apply(text, &m)
    }

    /// Whether some rule matches `text` (for reject actions).
    pub fn is_match(&self, text: &str) -> bool {
        !self.find(text, None).is_empty()
    }

    /// Could a match start at `start` and continue past the end of `text`?
    fn viable(&self, text: &str, start: usize) -> bool {
        let mut cache = self.cache.borrow_mut();
        let input = Input::new(text)
            .span(start..text.len())
            .anchored(Anchored::Yes);
        let Ok(mut sid) = self.dfa.start_state_forward(&mut cache, &input) else {
            return true; // The DFA gave up: hold conservatively.
        };
        for &b in &text.as_bytes()[start..] {
            match self.dfa.next_state(&mut cache, sid, b) {
                Ok(next) => sid = next,
                Err(_) => return true,
            }
            if sid.is_dead() {
                return false;
            }
            if sid.is_quit() {
                return true;
            }
        }
        true
    }

    /// Feed the pending text of a stream (the held tail plus the new piece).
    /// `ctx` is the last character already sent. With `flush`, everything is
    /// emitted (end of the content block).
    pub fn step(&self, ctx: Option<char>, pending: &str, flush: bool) -> Step {
        if flush || self.rules.is_empty() {
            let emit = self.mask_after(pending, ctx).into_owned();
            return Step {
                emit,
                held: String::new(),
                ctx: pending.chars().next_back().or(ctx),
            };
        }
        let len = pending.len();
        // Earliest start, within the last MAX_HOLD characters, from which a
        // match could still grow past the end.
        let window = pending
            .char_indices()
            .rev()
            .nth(MAX_HOLD - 1)
            .map_or(0, |(i, _)| i);
        let mut cut = pending[window..]
            .char_indices()
            .map(|(i, _)| window + i)
            .find(|&s| self.viable(pending, s))
            .unwrap_or(len);
        let matches = self.find(pending, ctx);
        // A complete match that straddles the cut, or ends at the very end
        // (its boundary check depends on the next character), is held whole.
        if let Some(m) = matches
            .iter()
            .find(|m| m.start < cut && (m.end > cut || m.end == len))
        {
            cut = m.start;
        }
        let done: Vec<Match> = matches.into_iter().filter(|m| m.end <= cut).collect();
        let emit = self.apply(&pending[..cut], &done).into_owned();
        Step {
            emit,
            held: pending[cut..].to_owned(),
            ctx: pending[..cut].chars().next_back().or(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(names: &[&str]) -> Masker {
        let rules = names
            .iter()
            .flat_map(|n| Builtin::parse(n).unwrap().iter().map(|b| Rule::builtin(*b)))
            .collect();
        Masker::new(rules).unwrap()
    }

    fn all() -> Masker {
        m(&["email", "phone", "ssn", "creditCard", "ipAddress"])
    }

    #[test]
    fn email() {
        let k = all();
        assert_eq!(k.mask("mail bob@example.com now"), "mail <EMAIL> now");
        assert_eq!(k.mask("a.b+c@mail.co.uk."), "<EMAIL>.");
        assert_eq!(k.mask("<jane_doe@corp.io>"), "<<EMAIL>>");
        assert_eq!(
            k.mask("not an email: bob@localhost"),
            "not an email: bob@localhost"
        );
        assert_eq!(k.mask("@handle and foo@bar"), "@handle and foo@bar");
    }

    #[test]
    fn phone() {
        let k = all();
        for p in [
            "555-123-4567",
            "(555) 123-4567",
            "555.123.4567",
            "+1 555 123 4567",
            "1-800-555-0199",
            "+44 20 7946 0958",
            "+33 1 23 45 67 89",
        ] {
            assert_eq!(k.mask(&format!("call {p} now")), "call <PHONE> now", "{p}");
        }
        // Dates, versions, ids and short numbers are not phones.
        for s in [
            "on 2024-01-15 at 10:30",
            "12/25/2024",
            "version 1.2.3",
            "id 5551234567",
            "555-1234",
            "555-123-45678",
            "x555-123-4567",
            "+1.2.3",
            "ref 555-123-4567-89",
        ] {
            assert_eq!(k.mask(s), s, "{s}");
        }
    }

    #[test]
    fn ssn() {
        let k = all();
        assert_eq!(k.mask("SSN 123-45-6789."), "SSN <SSN>.");
        for s in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert_eq!(k.mask(s), s, "{s}");
        }
        assert_eq!(k.mask("A123-45-6789"), "A123-45-6789");
    }

    #[test]
    fn credit_card() {
        let k = all();
        for c in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0055 5555 5559",
            "3782 822463 10005",
        ] {
            assert_eq!(k.mask(&format!("card {c}.")), "card <CREDIT_CARD>.", "{c}");
        }
        // Luhn failures and non-card prefixes are left alone.
        for s in [
            "4111111111111112",
            "1111111111111117",
            "order 12345678901234",
        ] {
            assert_eq!(k.mask(s), s, "{s}");
        }
        // A card followed by a year: the card is found as a prefix.
        assert_eq!(k.mask("4111 1111 1111 1111 2024"), "<CREDIT_CARD> 2024");
    }

    #[test]
    fn ip_addresses() {
        let k = all();
        assert_eq!(k.mask("host 192.168.1.10:"), "host <IP_ADDRESS>:");
        assert_eq!(k.mask("from 10.0.0.1."), "from <IP_ADDRESS>.");
        assert_eq!(
            k.mask("v6 2001:db8::8a2e:370:7334 ok"),
            "v6 <IP_ADDRESS> ok"
        );
        assert_eq!(k.mask("at fe80::1: done"), "at <IP_ADDRESS>: done");
        assert_eq!(k.mask("::ffff:192.0.2.1"), "<IP_ADDRESS>");
        for s in [
            "v1.2.3.4",
            "1.2.3.4.5",
            "version 1.2.3",
            "999.1.1.1",
            "at 12:30:45",
            "std::io::Result",
            "mac 00:1A:2B:3C:4D:5E",
            "dead::beef",
        ] {
            assert_eq!(k.mask(s), s, "{s}");
        }
    }

    #[test]
    fn custom_rules_and_overlaps() {
        let mut rules = vec![Rule::custom(r"sk-[A-Za-z0-9]{8,}", "<SECRET>".into()).unwrap()];
        rules.push(Rule::builtin(Builtin::Email));
        let k = Masker::new(rules).unwrap();
        assert_eq!(
            k.mask("key sk-abcdef123456 and a@b.io"),
            "key <SECRET> and <EMAIL>"
        );
        assert!(Rule::custom("(", "x".into()).is_err());
        assert!(Rule::custom("a*", "x".into()).is_err());
    }

    #[test]
    fn only_configured_patterns() {
        let k = m(&["email"]);
        assert_eq!(k.mask("bob@x.io 555-123-4567"), "<EMAIL> 555-123-4567");
    }

    /// Feed `pieces` through `step` and return (emitted pieces, final output).
    fn stream(k: &Masker, pieces: &[&str]) -> (Vec<String>, String) {
        let mut held = String::new();
        let mut ctx = None;
        let mut out = Vec::new();
        for p in pieces {
            let s = k.step(ctx, &(held.clone() + p), false);
            out.push(s.emit);
            held = s.held;
            ctx = s.ctx;
        }
        out.push(k.step(ctx, &held, true).emit);
        let all = out.concat();
        (out, all)
    }

    #[test]
    fn split_at_every_position_is_masked() {
        let k = all();
        for secret in [
            "bob@example.com",
            "555-123-4567",
            "(555) 123-4567",
            "123-45-6789",
            "4111 1111 1111 1111",
            "192.168.0.1",
            "2001:db8::1",
        ] {
            let text = format!("Reach {secret} today.");
            let want = k.mask(&text).into_owned();
            assert!(!want.contains(secret));
            // Two pieces.
            for i in 1..text.len() {
                let (_, got) = stream(&k, &[&text[..i], &text[i..]]);
                assert_eq!(got, want, "split at {i}: {:?}", (&text[..i], &text[i..]));
            }
            // Three pieces.
            for i in 1..text.len() {
                for j in i + 1..text.len() {
                    let (_, got) = stream(&k, &[&text[..i], &text[i..j], &text[j..]]);
                    assert_eq!(got, want, "split at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let k = all();
        let text = "Mail bob@example.com or call 555-123-4567, SSN 123-45-6789 now";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (_, got) = stream(&k, &refs);
        assert_eq!(got, "Mail <EMAIL> or call <PHONE>, SSN <SSN> now");
    }

    #[test]
    fn holds_only_a_short_tail() {
        let k = all();
        let s = k.step(None, "Hello there, how are you doing today", false);
        assert_eq!(s.emit, "Hello there, how are you doing ");
        assert_eq!(s.held, "today");
        let s = k.step(None, "It costs 5 dollars. ", false);
        assert_eq!(s.held, "", "text ending in a space is sent whole");
        assert_eq!(s.emit, "It costs 5 dollars. ");
        let s = k.step(None, "Mail bob@exam", false);
        assert_eq!((s.emit.as_str(), s.held.as_str()), ("Mail ", "bob@exam"));
        let s = k.step(None, "call 555-12", false);
        assert_eq!(s.held, "555-12");
        // A complete email at the end is held (it could still grow).
        let s = k.step(None, "mail bob@example.com", false);
        assert_eq!(s.held, "bob@example.com");
        // The cap: a long token holds at most MAX_HOLD characters.
        let long = "x".repeat(500);
        let s = k.step(None, &long, false);
        assert_eq!(s.held.chars().count(), MAX_HOLD);
        assert_eq!(s.emit.len() + s.held.len(), 500);
    }

    #[test]
    fn non_ascii_text_streams() {
        let k = all();
        let text = "Grüße an bob@exämple.com und jean@exemple.fr — 日本語 ok";
        let want = k.mask(text).into_owned();
        assert!(want.contains("<EMAIL>"));
        let idx: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        for i in idx {
            let (_, got) = stream(&k, &[&text[..i], &text[i..]]);
            assert_eq!(got, want, "split at {i}");
        }
    }

    #[test]
    fn custom_word_boundary_rule_streams() {
        let k = Masker::new(vec![Rule::custom(r"\bproject-\d+\b", "<P>".into()).unwrap()]).unwrap();
        let text = "see project-42 and café project-7";
        for i in 1..text.len() {
            if !text.is_char_boundary(i) {
                continue;
            }
            let (_, got) = stream(&k, &[&text[..i], &text[i..]]);
            assert_eq!(got, "see <P> and café <P>", "split at {i}");
        }
    }
}
