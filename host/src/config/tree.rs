//! The marked YAML tree: every node remembers its file:line:column.
//!
//! Exists because `yaml-rust2`'s own `Yaml` type drops positions and silently
//! keeps the *last* duplicate key, while the guide's configs repeat
//! `policies:` inside one route. We build our own tree from the parser's
//! marked events, deep-merge duplicate mapping keys (with one warning per
//! duplicate), expand environment variables in scalar values, and convert
//! plugin-owned subtrees to JSON.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::env::{expand, EnvError};
use super::error::{Diags, Location};

/// A mapping key with its position.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub name: String,
    pub loc: Location,
}

/// A scalar as written (after env expansion).
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: String,
    /// Plain (unquoted, non-block) scalars are typed by the YAML core schema.
    pub plain: bool,
    /// The text came (partly) from an environment variable: never print it.
    pub secret: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub loc: Location,
}

/// A scalar's value under the YAML 1.2 core schema.
#[derive(Debug, PartialEq)]
pub(crate) enum Typed<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

fn parse_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !ok_chars || !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Scalar {
    pub fn typed(&self) -> Typed<'_> {
        if !self.plain || self.secret {
            return Typed::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => Typed::Null,
            "true" | "True" | "TRUE" => Typed::Bool(true),
            "false" | "False" | "FALSE" => Typed::Bool(false),
            _ => {
                if let Some(i) = parse_int(t) {
                    Typed::Int(i)
                } else if let Some(f) = parse_float(t) {
                    Typed::Float(f)
                } else {
                    Typed::Str(t)
                }
            }
        }
    }
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.typed() == Typed::Null)
    }

    /// Human description of the node's type, for "expected X, found Y".
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar(s) => match s.typed() {
                Typed::Null => "nothing (null)",
                Typed::Bool(_) => "a boolean",
                Typed::Int(_) => "an integer",
                Typed::Float(_) => "a number",
                Typed::Str(_) => "a string",
            },
        }
    }

    /// The value for use in a message: secrets are never shown.
    pub fn shown(&self) -> String {
        match &self.kind {
            Kind::Scalar(s) if s.secret => "<redacted>".into(),
            Kind::Scalar(s) => format!("`{}`", s.text),
            _ => self.type_name().into(),
        }
    }

    /// Does this subtree contain a value that came from the environment?
    pub fn has_secret(&self) -> bool {
        match &self.kind {
            Kind::Scalar(s) => s.secret,
            Kind::Seq(items) => items.iter().any(Node::has_secret),
            Kind::Map(entries) => entries.iter().any(|(_, v)| v.has_secret()),
        }
    }

    /// Convert to JSON (plugin-owned subtrees). Plain scalars are typed,
    /// quoted and env-expanded ones stay strings. JSON pointers (relative to
    /// `pointer`) of env-expanded values are appended to `secrets`.
    pub fn to_json(&self, pointer: &str, secrets: &mut Vec<String>) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar(s) => {
                if s.secret {
                    secrets.push(pointer.to_string());
                }
                match s.typed() {
                    Typed::Null => Value::Null,
                    Typed::Bool(b) => Value::Bool(b),
                    Typed::Int(i) => {
                        if let Ok(v) = i64::try_from(i) {
                            Value::from(v)
                        } else if let Ok(v) = u64::try_from(i) {
                            Value::from(v)
                        } else {
                            Value::String(s.text.clone())
                        }
                    }
                    Typed::Float(f) => serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(s.text.clone())),
                    Typed::Str(t) => Value::String(t.to_string()),
                }
            }
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.to_json(&format!("{pointer}/{i}"), secrets))
                    .collect(),
            ),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let p = format!("{pointer}/{}", escape_pointer(&k.name));
                        (k.name.clone(), v.to_json(&p, secrets))
                    })
                    .collect(),
            ),
        }
    }
}

/// RFC 6901 escaping of one JSON pointer segment.
pub(crate) fn escape_pointer(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Append a mapping key to a key path: `a.b`, or `a["/v1/x"]` for odd keys.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

pub(crate) fn join_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

enum Frame {
    Seq {
        items: Vec<Node>,
        loc: Location,
        anchor: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
        /// The pending key was not a scalar: drop its value.
        bad_key: bool,
        loc: Location,
        anchor: usize,
    },
}

struct Builder<'a> {
    file: Arc<str>,
    env: &'a dyn Fn(&str) -> Option<String>,
    diags: &'a mut Diags,
    frames: Vec<Frame>,
    /// Anchored nodes and their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    root_prefix: &'static str,
    documents: usize,
    /// Nodes copied in by aliases so far (see [`MAX_ALIAS_NODES`]).
    alias_nodes: usize,
    alias_overflow: bool,
}

/// Most nodes aliases may copy into one file. A few levels of aliases of
/// aliases ("billion laughs") grow exponentially; real configs reuse a
/// handful of small anchors, far below this.
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;

/// Number of nodes in a tree.
fn node_count(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Seq(items) => items.iter().map(node_count).sum(),
        Kind::Map(entries) => entries.iter().map(|(_, v)| 1 + node_count(v)).sum(),
        _ => 0,
    }
}

impl Builder<'_> {
    fn loc(&self, m: Marker) -> Location {
        Location::new(self.file.clone(), m.line(), m.col() + 1)
    }

    /// Key path of the position where the next value will go.
    fn path(&self) -> String {
        let mut p = self.root_prefix.to_string();
        for f in &self.frames {
            match f {
                Frame::Seq { items, .. } => p = join_index(&p, items.len()),
                Frame::Map { key: Some(k), .. } => p = join_key(&p, &k.name),
                Frame::Map { key: None, .. } => {}
            }
        }
        p
    }

    fn in_key_position(&self) -> bool {
        matches!(self.frames.last(), Some(Frame::Map { key: None, .. }))
    }

    fn finish_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.attach(node);
    }

    fn attach(&mut self, node: Node) {
        let path = self.path();
        match self.frames.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                bad_key,
                ..
            }) => match key.take() {
                None => match node.kind {
                    Kind::Scalar(s) => {
                        *key = Some(Key {
                            name: s.text,
                            loc: node.loc,
                        })
                    }
                    _ => {
                        *bad_key = true;
                        *key = Some(Key {
                            name: "?".into(),
                            loc: node.loc.clone(),
                        });
                        self.diags.error(
                            &node.loc,
                            &path,
                            "mapping keys must be plain strings, not lists or mappings",
                        );
                    }
                },
                Some(k) => {
                    if std::mem::take(bad_key) {
                        return;
                    }
                    if let Some(pos) = entries.iter().position(|(e, _)| e.name == k.name) {
                        let first_line = entries[pos].0.loc.line;
                        let both_maps = matches!(entries[pos].1.kind, Kind::Map(_))
                            && matches!(node.kind, Kind::Map(_));
                        let msg = if both_maps {
                            format!(
                                "duplicate key `{}` (first defined at line {first_line}): \
                                 the mappings are merged, later values win",
                                k.name
                            )
                        } else {
                            format!(
                                "duplicate key `{}` (first defined at line {first_line}): \
                                 the later value wins",
                                k.name
                            )
                        };
                        let loc = k.loc.clone();
                        merge_into(&mut entries[pos].1, node);
                        self.diags.warn(&loc, &path, msg);
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
    }
}

/// Deep-merge `new` into `old`: mappings merge key by key, anything else is
/// replaced by the later value.
fn merge_into(old: &mut Node, new: Node) {
    match (&mut old.kind, new.kind) {
        (Kind::Map(old_entries), Kind::Map(new_entries)) => {
            for (k, v) in new_entries {
                if let Some(pos) = old_entries.iter().position(|(e, _)| e.name == k.name) {
                    merge_into(&mut old_entries[pos].1, v);
                } else {
                    old_entries.push((k, v));
                }
            }
        }
        (_, kind) => {
            old.kind = kind;
            old.loc = new.loc;
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let loc = self.loc(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.diags.error(
                        &loc,
                        "",
                        "only one YAML document per file is supported; \
                         pass several files with repeated --config instead",
                    );
                }
            }
            Event::SequenceStart(anchor, _) => {
                if self.frames.is_empty() && self.root.is_none() {
                    self.root_prefix = "routes";
                }
                self.frames.push(Frame::Seq {
                    items: Vec::new(),
                    loc,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => self.frames.push(Frame::Map {
                entries: Vec::new(),
                key: None,
                bad_key: false,
                loc,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.frames.pop() {
                    Some(Frame::Seq { items, loc, anchor }) => (
                        Node {
                            kind: Kind::Seq(items),
                            loc,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        entries,
                        loc,
                        anchor,
                        ..
                    }) => {
                        // The parser marks a block mapping's start after its
                        // first key; the first key's position reads better.
                        let loc = match entries.first() {
                            Some((k, _)) if (k.loc.line, k.loc.column) < (loc.line, loc.column) => {
                                k.loc.clone()
                            }
                            _ => loc,
                        };
                        (
                            Node {
                                kind: Kind::Map(entries),
                                loc,
                            },
                            anchor,
                        )
                    }
                    None => return,
                };
                self.finish_node(node, anchor);
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let mut scalar = Scalar {
                    text,
                    plain,
                    secret: false,
                };
                if !self.in_key_position() {
                    match expand(&scalar.text, self.env) {
                        Ok(e) => {
                            scalar.text = e.text;
                            scalar.secret = e.substituted;
                        }
                        Err(EnvError::Missing(names)) => {
                            let path = self.path();
                            for n in names {
                                self.diags.error(
                                    &loc,
                                    &path,
                                    format!("environment variable `{n}` is not set"),
                                );
                            }
                            scalar.secret = true;
                        }
                        Err(EnvError::Malformed(msg)) => {
                            let path = self.path();
                            self.diags.error(&loc, &path, msg);
                            scalar.secret = true;
                        }
                    }
                }
                self.finish_node(
                    Node {
                        kind: Kind::Scalar(scalar),
                        loc,
                    },
                    anchor,
                );
            }
            Event::Alias(id) => {
                if self.alias_overflow {
                    return;
                }
                let node = match self.anchors.get(&id) {
                    Some((_, size)) if self.alias_nodes + size > MAX_ALIAS_NODES => {
                        self.alias_overflow = true;
                        let path = self.path();
                        self.diags.error(
                            &loc,
                            &path,
                            format!(
                                "YAML aliases expand to more than {MAX_ALIAS_NODES} nodes; \
                                 refusing the file (an alias bomb?)"
                            ),
                        );
                        return;
                    }
                    Some((n, size)) => {
                        self.alias_nodes += size;
                        n.clone()
                    }
                    None => {
                        let path = self.path();
                        self.diags.error(&loc, &path, "unknown YAML alias");
                        return;
                    }
                };
                self.attach(node);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// Parse one file's text into a marked tree. Returns `None` (with errors
/// recorded) on a YAML syntax error; an empty file is a null scalar.
pub(crate) fn parse(
    file: &Arc<str>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diags,
) -> Option<Node> {
    let mut builder = Builder {
        file: file.clone(),
        env,
        diags,
        frames: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        root_prefix: "",
        documents: 0,
        alias_nodes: 0,
        alias_overflow: false,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        let loc = Location::new(file.clone(), m.line(), m.col() + 1);
        builder
            .diags
            .error(&loc, "", format!("YAML syntax error: {}", e.info()));
        return None;
    }
    Some(builder.root.unwrap_or(Node {
        kind: Kind::Scalar(Scalar {
            text: String::new(),
            plain: true,
            secret: false,
        }),
        loc: Location::new(file.clone(), 1, 1),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk-secret".to_string())
    }

    fn parse_ok(text: &str) -> (Node, Diags) {
        let mut d = Diags::default();
        let n = parse(&Arc::from("t.yaml"), text, &env, &mut d).expect("parses");
        (n, d)
    }

    fn map(n: &Node) -> &Vec<(Key, Node)> {
        match &n.kind {
            Kind::Map(m) => m,
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let (n, d) = parse_ok("a:\n  b: 1\n");
        assert!(d.errors.is_empty());
        let (k, v) = &map(&n)[0];
        assert_eq!((k.loc.line, k.loc.column), (1, 1));
        let (k2, v2) = &map(v)[0];
        assert_eq!((k2.loc.line, k2.loc.column), (2, 3));
        assert_eq!((v2.loc.line, v2.loc.column), (2, 6));
    }

    #[test]
    fn duplicate_mappings_merge_with_warning() {
        let text = "r:\n  policies:\n    a: 1\n    c: {x: 1}\n  other: 2\n  policies:\n    b: 2\n    c: {y: 2}\n";
        let (n, d) = parse_ok(text);
        assert_eq!(d.warnings.len(), 1);
        let w = &d.warnings[0];
        assert_eq!(w.location.line, 6);
        assert_eq!(w.key_path, "r.policies");
        assert!(w.message.contains("line 2"), "{}", w.message);
        let r = &map(&n)[0].1;
        let pol = &map(r)[0].1;
        let json = pol.to_json("", &mut Vec::new());
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "c": {"x": 1, "y": 2}, "b": 2})
        );
    }

    #[test]
    fn duplicate_scalars_later_wins() {
        let (n, d) = parse_ok("a: 1\na: 2\n");
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(n.to_json("", &mut Vec::new()), serde_json::json!({"a": 2}));
    }

    #[test]
    fn typing_and_secrets() {
        let (n, d) = parse_ok(
            "i: 429\ns: \"1.2\"\nf: 1.5\nb: true\nz: ~\nsz: 1MB\nk: $KEY\nt: \\\\$(request.id)\n",
        );
        assert!(d.errors.is_empty());
        let mut secrets = Vec::new();
        let j = n.to_json("", &mut secrets);
        assert_eq!(
            j,
            serde_json::json!({"i": 429, "s": "1.2", "f": 1.5, "b": true, "z": null,
                "sz": "1MB", "k": "sk-secret", "t": "\\\\$(request.id)"})
        );
        assert_eq!(secrets, vec!["/k".to_string()]);
    }

    #[test]
    fn missing_env_is_an_error_with_path() {
        let mut d = Diags::default();
        parse(&Arc::from("t.yaml"), "- a:\n    k: $NOPE\n", &env, &mut d);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(
            d.errors[0].to_string(),
            "t.yaml:2:8: routes[0].a.k: environment variable `NOPE` is not set"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let mut d = Diags::default();
        assert!(parse(&Arc::from("t.yaml"), "a: [1, 2\nb: 3\n", &env, &mut d).is_none());
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].location.line >= 1);
        assert!(d.errors[0].message.starts_with("YAML syntax error"));
    }

    #[test]
    fn anchors_and_aliases() {
        let (n, _) = parse_ok("a: &x {p: 1}\nb: *x\n");
        assert_eq!(
            n.to_json("", &mut Vec::new()),
            serde_json::json!({"a": {"p": 1}, "b": {"p": 1}})
        );
    }

    /// "Billion laughs": nine levels of nine aliases would be 9^9 nodes.
    pub(crate) fn alias_bomb() -> String {
        let mut t = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            t.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        t
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut d = Diags::default();
        parse(&Arc::from("t.yaml"), &alias_bomb(), &env, &mut d);
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert!(
            d.errors[0].message.contains("aliases expand"),
            "{}",
            d.errors[0]
        );
        // Modest reuse is fine.
        let (n, d) = parse_ok("a: &x {p: 1}\nb: [*x, *x, *x]\n");
        assert!(d.errors.is_empty());
        assert_eq!(n.to_json("", &mut Vec::new())["b"][2]["p"], 1);
    }
}
