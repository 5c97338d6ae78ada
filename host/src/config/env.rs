//! Environment-variable expansion in scalar strings (`$NAME`, `${NAME}`).
//!
//! Exists because the guide writes `key: $ANTHROPIC_API_KEY`. `$(`...`)` is
//! *not* a variable: it is a template the transform plugin evaluates later
//! (e.g. `\\$(request.auth.claims.email)`), so such text is kept byte-for-byte.
//! `$$` is an escape for a literal `$`. Any other `$` is kept as written.

/// Result of expanding one scalar.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub text: String,
    /// True when at least one variable was substituted: the value is a secret.
    pub substituted: bool,
}

/// Why expansion failed; never carries a value, only variable names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvError {
    Missing(Vec<String>),
    Malformed(String),
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Expand `$NAME` / `${NAME}` in `input` using `env`.
pub(crate) fn expand(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, EnvError> {
    if !input.contains('$') {
        return Ok(Expanded {
            text: input.to_string(),
            substituted: false,
        });
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut substituted = false;
    let mut i = 0;
    let mut lit_start = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let (name, end) = match next {
            Some(b'$') => {
                out.push_str(&input[lit_start..i]);
                out.push('$');
                i += 2;
                lit_start = i;
                continue;
            }
            Some(b'{') => {
                let Some(close) = input[i + 2..].find('}') else {
                    return Err(EnvError::Malformed(
                        "unterminated `${` in environment variable reference".into(),
                    ));
                };
                let name = &input[i + 2..i + 2 + close];
                if name.is_empty()
                    || !is_name_start(name.as_bytes()[0])
                    || !name.bytes().all(is_name_char)
                {
                    return Err(EnvError::Malformed(format!(
                        "invalid environment variable name in `${{{name}}}`"
                    )));
                }
                (name, i + 2 + close + 1)
            }
            Some(c) if is_name_start(c) => {
                let mut j = i + 1;
                while j < bytes.len() && is_name_char(bytes[j]) {
                    j += 1;
                }
                (&input[i + 1..j], j)
            }
            // `$(`, a trailing `$`, `$1`, ...: literal.
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&input[lit_start..i]);
        match env(name) {
            Some(v) => {
                out.push_str(&v);
                substituted = true;
            }
            None => {
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_string());
                }
            }
        }
        i = end;
        lit_start = end;
    }
    out.push_str(&input[lit_start..]);
    if !missing.is_empty() {
        return Err(EnvError::Missing(missing));
    }
    Ok(Expanded {
        text: out,
        substituted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "HOST" => Some("example.com".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_both_forms() {
        let e = expand("$KEY", &env).unwrap();
        assert_eq!(e.text, "sk-123");
        assert!(e.substituted);
        let e = expand("https://${HOST}:443/$KEY-x", &env).unwrap();
        assert_eq!(e.text, "https://example.com:443/sk-123-x");
    }

    #[test]
    fn templates_are_kept_verbatim() {
        for s in [
            r"\\$(request.auth.claims.email)",
            "$(request.id)",
            "cost: $5",
            "end$",
            "no dollars",
        ] {
            let e = expand(s, &env).unwrap();
            assert_eq!(e.text, s);
            assert!(!e.substituted);
        }
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(expand("$$KEY", &env).unwrap().text, "$KEY");
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(
            expand("$NOPE and ${ALSO_NOPE} $KEY", &env),
            Err(EnvError::Missing(vec!["NOPE".into(), "ALSO_NOPE".into()]))
        );
        assert!(matches!(expand("${KEY", &env), Err(EnvError::Malformed(_))));
        assert!(matches!(expand("${1A}", &env), Err(EnvError::Malformed(_))));
    }
}
