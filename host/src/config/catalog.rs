//! `config.modelCatalog`: agentgateway's model price catalog, key for key.
//!
//! ```yaml
//! config:
//!   modelCatalog:                # merged in order, later sources win
//!   - file: prices.json          # relative to the config file; re-read on reload
//!   - inline:
//!       providers:
//!         anthropic:
//!           models:
//!             claude-sonnet-4-5:
//!               rates: {input: "3", output: "15", cacheRead: "0.3", cacheWrite: "3.75"}
//!               tiers:
//!               - contextOver: 200000
//!                 rates: {input: "6", output: "22.5"}
//! ```
//!
//! Rates are US dollars per million tokens, written as decimal strings
//! (agentgateway's `Money`; a YAML number is accepted too). A `file` holds
//! the same `Catalog` as JSON; an `inline` string is JSON. Files
//! are read when the config loads, so a bad file fails the load (or the
//! reload) like any other config error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// The merged catalog and the sources it came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelCatalog {
    /// The files read (for the config dump and reload); inline sources are
    /// only in `catalog`.
    pub files: Vec<PathBuf>,
    /// Every source merged, later over earlier.
    pub catalog: Catalog,
}

/// agentgateway's `Catalog`: provider name → models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderPrices>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPrices {
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrices>,
}

/// agentgateway's `Model`: base rates, context tiers, tags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrices {
    #[serde(default)]
    pub rates: Rates,
    /// Tiers by context length; the highest `contextOver` below the
    /// request's context tokens overlays the base rates.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Freeform tags (kept, unused by Sluice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tier {
    pub context_over: u64,
    pub rates: Rates,
}

/// Dollars per million tokens; `None` is unpriced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rates {
    #[serde(default, deserialize_with = "money")]
    pub input: Option<f64>,
    #[serde(default, deserialize_with = "money")]
    pub output: Option<f64>,
    #[serde(default, deserialize_with = "money")]
    pub cache_read: Option<f64>,
    #[serde(default, deserialize_with = "money")]
    pub cache_write: Option<f64>,
    /// Falls back to `output`.
    #[serde(default, deserialize_with = "money")]
    pub reasoning: Option<f64>,
    /// Accepted for agentgateway configs; providers' usage as Sluice reads
    /// it has no audio split, so these never apply.
    #[serde(default, deserialize_with = "money")]
    pub input_audio: Option<f64>,
    #[serde(default, deserialize_with = "money")]
    pub output_audio: Option<f64>,
}

impl Rates {
    /// `delta`'s rates where set, ours elsewhere.
    pub fn overlay(&self, delta: &Rates) -> Rates {
        let pick = |a: Option<f64>, b: Option<f64>| b.or(a);
        Rates {
            input: pick(self.input, delta.input),
            output: pick(self.output, delta.output),
            cache_read: pick(self.cache_read, delta.cache_read),
            cache_write: pick(self.cache_write, delta.cache_write),
            reasoning: pick(self.reasoning, delta.reasoning),
            input_audio: pick(self.input_audio, delta.input_audio),
            output_audio: pick(self.output_audio, delta.output_audio),
        }
    }
}

/// A `Money`: a non-negative decimal, as a string or a number.
fn money<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(f64),
    }
    let v = match Option::<Raw>::deserialize(d)? {
        None => return Ok(None),
        Some(Raw::N(n)) => n,
        Some(Raw::S(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| serde::de::Error::custom(format!("invalid decimal {s:?}")))?,
    };
    if !v.is_finite() || v < 0.0 {
        return Err(serde::de::Error::custom(format!(
            "a rate must be a non-negative number, got {v}"
        )));
    }
    Ok(Some(v))
}

/// Why a catalog source was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("each source must be `{{file: <path>}}` or `{{inline: <catalog>}}`")]
    Shape,
    #[error("{0}")]
    Invalid(String),
    #[error("reading {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error(
        "{provider}/{model}: tier {index} contextOver {over} is not greater than the one before"
    )]
    TierOrder {
        provider: String,
        model: String,
        index: usize,
        over: u64,
    },
}

impl Catalog {
    fn parse_json(text: &str) -> Result<Catalog, CatalogError> {
        serde_json::from_str(text).map_err(|e| CatalogError::Invalid(e.to_string()))
    }

    fn from_value(v: serde_json::Value) -> Result<Catalog, CatalogError> {
        serde_json::from_value(v).map_err(|e| CatalogError::Invalid(e.to_string()))
    }

    /// agentgateway's check: tiers strictly increasing by `contextOver`.
    fn validate(&self) -> Result<(), CatalogError> {
        for (p, prov) in &self.providers {
            for (m, model) in &prov.models {
                let mut prev: Option<u64> = None;
                for (i, t) in model.tiers.iter().enumerate() {
                    if prev.is_some_and(|p| t.context_over <= p) {
                        return Err(CatalogError::TierOrder {
                            provider: p.clone(),
                            model: m.clone(),
                            index: i,
                            over: t.context_over,
                        });
                    }
                    prev = Some(t.context_over);
                }
            }
        }
        Ok(())
    }

    /// `overlay` over `self`: per model, rates field by field and tiers
    /// replaced when the overlay has some (agentgateway's `override_with`).
    pub fn merge(&mut self, overlay: Catalog) {
        for (p, op) in overlay.providers {
            let base = self.providers.entry(p).or_default();
            for (m, om) in op.models {
                match base.models.get_mut(&m) {
                    None => {
                        base.models.insert(m, om);
                    }
                    Some(bm) => {
                        bm.rates = bm.rates.overlay(&om.rates);
                        if !om.tiers.is_empty() {
                            bm.tiers = om.tiers;
                        }
                        if !om.tags.is_empty() {
                            bm.tags = om.tags;
                        }
                    }
                }
            }
        }
    }
}

/// Decode `config.modelCatalog` (already converted to JSON), reading file
/// sources relative to `dir`.
pub(crate) fn load(v: serde_json::Value, dir: &Path) -> Result<ModelCatalog, CatalogError> {
    let sources = match v {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(a) => a,
        _ => return Err(CatalogError::Shape),
    };
    let mut out = ModelCatalog::default();
    for (i, s) in sources.into_iter().enumerate() {
        let serde_json::Value::Object(mut o) = s else {
            return Err(CatalogError::Shape);
        };
        let at = |e: CatalogError| CatalogError::Invalid(format!("[{i}]: {e}"));
        let one = match (o.remove("file"), o.remove("inline"), o.is_empty()) {
            (Some(serde_json::Value::String(f)), None, true) => {
                let path = super::decode::resolve(dir, &f);
                let text = std::fs::read_to_string(&path).map_err(|err| CatalogError::Read {
                    path: path.display().to_string(),
                    err,
                })?;
                out.files.push(path);
                Catalog::parse_json(&text)
                    .map_err(|e| CatalogError::Invalid(format!("{f}: {e}")))?
            }
            (None, Some(serde_json::Value::String(json)), true) => {
                Catalog::parse_json(&json).map_err(at)?
            }
            (None, Some(v @ serde_json::Value::Object(_)), true) => {
                Catalog::from_value(v).map_err(at)?
            }
            _ => return Err(at(CatalogError::Shape)),
        };
        one.validate()?;
        out.catalog.merge(one);
    }
    Ok(out)
}

/// `config.modelCatalog` from the `config:` node (`None`: absent or
/// refused, with the error reported).
pub(crate) fn decode(
    ctx: &mut super::decode::Ctx,
    config: &super::tree::Node,
) -> Option<ModelCatalog> {
    let super::tree::Kind::Map(entries) = &config.kind else {
        return None;
    };
    let (key, node) = entries.iter().find(|(k, _)| k.name == "modelCatalog")?;
    let mut secrets = Vec::new();
    match load(node.to_json("", &mut secrets), &ctx.dir) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.d.error(
                &key.loc,
                "config.modelCatalog",
                format!("`config.modelCatalog`: {e}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sonnet(c: &Catalog) -> &ModelPrices {
        &c.providers["anthropic"].models["claude-sonnet-4-5"]
    }

    #[test]
    fn sources_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.json"),
            r#"{"providers":{"anthropic":{"models":{"claude-sonnet-4-5":{"rates":{"input":"3","output":"15","cacheRead":"0.3"}}}}}}"#,
        )
        .unwrap();
        let c = load(
            json!([
                {"file": "p.json"},
                {"inline": r#"{"providers":{"anthropic":{"models":{"claude-sonnet-4-5":{"rates":{"output":"16"}}}}}}"#},
                {"inline": {"providers": {"anthropic": {"models": {"claude-sonnet-4-5":
                    {"tiers": [{"contextOver": 200000, "rates": {"input": 6}}]}}}}}},
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(c.files, [dir.path().join("p.json")]);
        let m = sonnet(&c.catalog);
        assert_eq!(m.rates.input, Some(3.0));
        assert_eq!(m.rates.output, Some(16.0));
        assert_eq!(m.rates.cache_read, Some(0.3));
        assert_eq!(m.tiers.len(), 1);
        assert_eq!(m.tiers[0].rates.input, Some(6.0));
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |v: serde_json::Value| load(v, dir.path()).unwrap_err().to_string();
        assert!(bad(json!({"inline": {}})).contains("each source"));
        assert!(bad(json!([{"inline": {}, "file": "x"}])).contains("each source"));
        assert!(bad(json!([{"file": "missing.json"}])).contains("missing.json"));
        assert!(bad(
            json!([{"inline": {"providers": {"a": {"models": {"m": {"rates": {"input": "x"}}}}}}}])
        )
        .contains("invalid decimal"));
        assert!(bad(
            json!([{"inline": {"providers": {"a": {"models": {"m": {"rates": {"inptu": "1"}}}}}}}])
        )
        .contains("inptu"));
        let tiers = json!([{"inline": {"providers": {"a": {"models": {"m": {"tiers": [
            {"contextOver": 10, "rates": {}}, {"contextOver": 10, "rates": {}}]}}}}}}]);
        assert!(bad(tiers).contains("tier 1"));
    }
}
