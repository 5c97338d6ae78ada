//! Compile-time check of what a rule reads, so a rule never quietly
//! evaluates to "no" because it names something Sluice does not provide.
//!
//! A rule may read these agentgateway variables:
//!
//! | variable | value |
//! |---|---|
//! | `request.method`, `request.path`, `request.pathAndQuery` | as the client sent them |
//! | `request.host` | the `Host` header |
//! | `request.headers["name"]` | lowercase names, repeats joined with `, ` |
//! | `source.address` | the client IP |
//! | `jwt.<claim>` | the claims `jwtAuth`/`auth.jwt` verified (absent: no token) |
//! | `llm.requestModel`, `llm.streaming`, `llm.provider` | from the request body |
//! | `llmRequest` | the whole JSON request body |
//! | `backend.name` | the route's backend |
//!
//! Any other root or field agentgateway defines (`response`, `proxy`,
//! `source.port`, `llm.inputTokens`, `apiKey`, ...) or a name it does not
//! define is a config error, as is a function outside [`FUNCTIONS`]
//! (agentgateway's own additions such as `cidr()` are not there).

use cel::common::ast::{operators, Expr, LiteralValue};

/// What a rule reads, for the hook plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Uses {
    /// `llm` or `llmRequest`: decided on the body.
    pub body: bool,
    /// `llmRequest`: the whole body is bound (converting it costs in
    /// proportion to its size, so only rules that read it pay).
    pub llm_request: bool,
    /// `request.headers` (or `request` as a whole): every header.
    pub headers: bool,
    /// `request.host`.
    pub host: bool,
}

/// Why a rule reads something it may not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("unknown variable `{0}` (available: request, source, jwt, llm, llmRequest, backend)")]
    UnknownVariable(String),
    #[error("`{0}` is an agentgateway variable Sluice's authorization cannot provide (available: request, source, jwt, llm, llmRequest, backend)")]
    Unavailable(String),
    #[error("`{root}.{field}` is not available (available on `{root}`: {known})")]
    UnknownField {
        root: String,
        field: String,
        known: String,
    },
    #[error("`{0}[...]` needs a literal string key, so the rule can be checked")]
    DynamicKey(String),
    #[error("function `{0}` is not available (Sluice provides CEL's standard library with the strings and lists extensions)")]
    UnknownFunction(String),
}

/// The roots a rule may read and the fields of each (`None`: any field).
const ROOTS: &[(&str, Option<&[&str]>)] = &[
    (
        "request",
        Some(&["method", "path", "pathAndQuery", "host", "headers"]),
    ),
    ("source", Some(&["address"])),
    ("jwt", None),
    ("llm", Some(&["requestModel", "streaming", "provider"])),
    ("llmRequest", None),
    ("backend", Some(&["name"])),
];

/// agentgateway roots that exist there but not here.
const UNAVAILABLE: &[&str] = &[
    "response",
    "proxy",
    "env",
    "destination",
    "apiKey",
    "basicAuth",
    "mcp",
    "extauthz",
    "extproc",
    "mcpGuardrails",
    "metadata",
];

/// CEL's type names, which parse as identifiers (`type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Named functions a rule may call, each with an expression that exercises
/// it (the unit tests evaluate every one, so the list cannot promise a
/// function the environment lacks). Operators (`_==_`, `@in`, ...) and the
/// macros (`has`, `exists`, `all`, `map`, `filter`) are always available.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("size", "size('ab') == 2"),
    ("contains", "'abc'.contains('b')"),
    ("startsWith", "'abc'.startsWith('a')"),
    ("endsWith", "'abc'.endsWith('c')"),
    ("string", "string(1) == '1'"),
    ("int", "int('1') == 1"),
    ("uint", "uint(1) == 1u"),
    ("double", "double(1) == 1.0"),
    ("bool", "bool('true')"),
    ("bytes", "bytes('a') == b'a'"),
    ("dyn", "dyn(1) == 1"),
    ("type", "type(1) == int"),
    ("lowerAscii", "'AB'.lowerAscii() == 'ab'"),
    ("upperAscii", "'ab'.upperAscii() == 'AB'"),
    ("trim", "' a '.trim() == 'a'"),
    ("split", "'a,b'.split(',') == ['a', 'b']"),
    ("join", "['a', 'b'].join(',') == 'a,b'"),
    ("replace", "'aa'.replace('a', 'b') == 'bb'"),
    ("indexOf", "'abc'.indexOf('b') == 1"),
    ("lastIndexOf", "'abcb'.lastIndexOf('b') == 3"),
    ("substring", "'abc'.substring(1) == 'bc'"),
    ("charAt", "'abc'.charAt(1) == 'b'"),
    ("distinct", "[1, 1].distinct() == [1]"),
    ("flatten", "[[1], [2]].flatten() == [1, 2]"),
    ("reverse", "[1, 2].reverse() == [2, 1]"),
    ("sort", "[2, 1].sort() == [1, 2]"),
    ("slice", "[1, 2, 3].slice(1, 2) == [2]"),
];

/// Check every variable and function `expr` reads; return what it uses.
pub fn check(expr: &Expr) -> Result<Uses, CheckError> {
    let mut w = Walker {
        bound: Vec::new(),
        uses: Uses::default(),
    };
    w.walk(expr)?;
    Ok(w.uses)
}

struct Walker {
    /// Comprehension variables in scope (`exists(g, ...)` binds `g`).
    bound: Vec<String>,
    uses: Uses,
}

impl Walker {
    fn walk(&mut self, e: &Expr) -> Result<(), CheckError> {
        match e {
            Expr::Ident(name) => self.root(name, None),
            Expr::Select(s) => match &s.operand.expr {
                Expr::Ident(name) => self.root(name, Some(&s.field)),
                other => self.walk(other),
            },
            Expr::Call(c) => {
                if c.func_name == operators::INDEX || c.func_name == operators::OPT_INDEX {
                    if let (Some(Expr::Ident(name)), Some(key)) =
                        (c.args.first().map(|a| &a.expr), c.args.get(1))
                    {
                        match &key.expr {
                            Expr::Literal(LiteralValue::String(k)) => {
                                self.root(name, Some(k.inner()))?
                            }
                            _ => {
                                self.dynamic(name)?;
                                self.walk(&key.expr)?;
                            }
                        }
                        return Ok(());
                    }
                } else if !is_operator(&c.func_name)
                    && !FUNCTIONS.iter().any(|(f, _)| *f == c.func_name)
                {
                    return Err(CheckError::UnknownFunction(c.func_name.clone()));
                }
                if let Some(t) = &c.target {
                    self.walk(&t.expr)?;
                }
                c.args.iter().try_for_each(|a| self.walk(&a.expr))
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range.expr)?;
                self.walk(&c.accu_init.expr)?;
                let n = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                let r = [&c.loop_cond, &c.loop_step, &c.result]
                    .iter()
                    .try_for_each(|x| self.walk(&x.expr));
                self.bound.truncate(n);
                r
            }
            Expr::List(l) => l.elements.iter().try_for_each(|x| self.walk(&x.expr)),
            Expr::Map(m) => m.entries.iter().try_for_each(|x| match &x.expr {
                cel::common::ast::EntryExpr::MapEntry(me) => {
                    self.walk(&me.key.expr)?;
                    self.walk(&me.value.expr)
                }
                cel::common::ast::EntryExpr::StructField(sf) => self.walk(&sf.value.expr),
            }),
            Expr::Struct(s) => s.entries.iter().try_for_each(|x| match &x.expr {
                cel::common::ast::EntryExpr::MapEntry(me) => {
                    self.walk(&me.key.expr)?;
                    self.walk(&me.value.expr)
                }
                cel::common::ast::EntryExpr::StructField(sf) => self.walk(&sf.value.expr),
            }),
            Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    /// A read of `name` (a variable), or of its `field`.
    fn root(&mut self, name: &str, field: Option<&str>) -> Result<(), CheckError> {
        if self.bound.iter().any(|b| b == name) || (field.is_none() && TYPE_NAMES.contains(&name)) {
            return Ok(());
        }
        let Some((_, fields)) = ROOTS.iter().find(|(r, _)| *r == name) else {
            return Err(if UNAVAILABLE.contains(&name) {
                CheckError::Unavailable(name.to_owned())
            } else {
                CheckError::UnknownVariable(name.to_owned())
            });
        };
        match name {
            "llm" => self.uses.body = true,
            "llmRequest" => {
                self.uses.body = true;
                self.uses.llm_request = true;
            }
            "request" => match field {
                None | Some("headers") => self.uses.headers = true,
                Some("host") => self.uses.host = true,
                _ => {}
            },
            _ => {}
        }
        if let (Some(field), Some(fields)) = (field, fields) {
            if !fields.contains(&field) {
                return Err(CheckError::UnknownField {
                    root: name.to_owned(),
                    field: field.to_owned(),
                    known: fields.join(", "),
                });
            }
        }
        Ok(())
    }

    /// `name[<expression>]`: fine where any key is (`jwt`, `llmRequest`, a
    /// comprehension variable), refused on a root with fixed fields.
    fn dynamic(&mut self, name: &str) -> Result<(), CheckError> {
        self.root(name, None)?;
        if self.bound.iter().any(|b| b == name) {
            return Ok(());
        }
        match ROOTS.iter().find(|(r, _)| *r == name) {
            Some((_, None)) => Ok(()),
            _ => Err(CheckError::DynamicKey(name.to_owned())),
        }
    }
}

/// Operators and internal functions: `_==_`, `!_`, `-_`, `@in`, ...
fn is_operator(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with('@')
        || name == operators::LOGICAL_NOT
        || name == operators::NEGATE
}
