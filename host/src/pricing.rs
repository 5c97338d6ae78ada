//! Each request's cost in US dollars, from `config.modelCatalog` and the
//! usage the provider reported.
//!
//! The catalog in force is process-wide ([`set`] at startup and on every
//! config reload), so the session computing a cost needs no handle on the
//! config snapshot. Pricing follows agentgateway's catalog:
//!
//! - uncached input, cache reads and cache writes each at their own rate;
//!   cache tokens without a rate of their own are billed as input;
//! - reasoning tokens (part of the output count) at `reasoning`, falling
//!   back to `output`; the rest of the output at `output`;
//! - the tier with the highest `contextOver` below the request's context
//!   tokens (all input: uncached + cache read + cache write) overlays the
//!   base rates.
//!
//! A model is looked up under its provider's catalog name first
//! (`anthropic`, `openai`, `gcp.gemini`, ...), then under any provider; the
//! provider's answered model first, then the model the request was served
//! as. Unpriced models have no cost (absent from logs and metrics, never 0).

use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;

use crate::config::{Catalog, ModelPrices, Rates};
use crate::stream::usage::Usage;

static CURRENT: LazyLock<ArcSwap<Catalog>> =
    LazyLock::new(|| ArcSwap::from_pointee(Catalog::default()));

/// The price catalog `cfg` sets (empty: no request is priced).
pub fn catalog_of(cfg: &crate::config::Config) -> Catalog {
    cfg.global
        .model_catalog
        .as_ref()
        .map(|m| m.catalog.clone())
        .unwrap_or_default()
}

/// Make `catalog` the one new requests are priced with.
pub fn set(catalog: Catalog) {
    CURRENT.store(Arc::new(catalog));
}

/// The cost of `usage` for the first of `models` the catalog prices.
pub fn cost(provider: &str, models: &[Option<&str>], usage: &Usage) -> Option<f64> {
    let catalog = CURRENT.load();
    let model = models
        .iter()
        .flatten()
        .find_map(|m| find(&catalog, provider, m))?;
    Some(price(model, usage))
}

fn find<'a>(c: &'a Catalog, provider: &str, model: &str) -> Option<&'a ModelPrices> {
    c.providers
        .get(provider)
        .and_then(|p| p.models.get(model))
        .or_else(|| c.providers.values().find_map(|p| p.models.get(model)))
}

/// Dollars for `usage` under `model`'s rates.
pub fn price(model: &ModelPrices, usage: &Usage) -> f64 {
    let context = usage.all_input();
    let rates = match model
        .tiers
        .iter()
        .filter(|t| context > t.context_over)
        .max_by_key(|t| t.context_over)
    {
        Some(t) => model.rates.overlay(&t.rates),
        None => model.rates.clone(),
    };
    breakdown(&rates, usage)
}

fn breakdown(r: &Rates, u: &Usage) -> f64 {
    let line = |tokens: u64, rate: Option<f64>| tokens as f64 * rate.unwrap_or(0.0);
    let reasoning = u.reasoning_tokens.min(u.output_tokens);
    let total = line(u.input_tokens, r.input)
        + line(u.cache_read_tokens, r.cache_read.or(r.input))
        + line(u.cache_write_tokens, r.cache_write.or(r.input))
        + line(u.output_tokens - reasoning, r.output)
        + line(reasoning, r.reasoning.or(r.output));
    total / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;

    fn rates(input: f64, output: f64) -> Rates {
        Rates {
            input: Some(input),
            output: Some(output),
            ..Rates::default()
        }
    }

    fn usage(input: u64, read: u64, write: u64, output: u64, reasoning: u64) -> Usage {
        Usage {
            input_tokens: input,
            cache_read_tokens: read,
            cache_write_tokens: write,
            output_tokens: output,
            reasoning_tokens: reasoning,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cache_and_reasoning_tokens_have_their_own_rates() {
        let m = ModelPrices {
            rates: Rates {
                cache_read: Some(0.3),
                cache_write: Some(3.75),
                reasoning: Some(30.0),
                ..rates(3.0, 15.0)
            },
            ..ModelPrices::default()
        };
        // 1M of each: 3 + 0.3 + 3.75 + 15 (1M - 0.5M at 15 = 7.5, 0.5M at 30 = 15)
        let u = usage(1_000_000, 1_000_000, 1_000_000, 1_000_000, 500_000);
        assert!(
            close(price(&m, &u), 3.0 + 0.3 + 3.75 + 7.5 + 15.0),
            "{}",
            price(&m, &u)
        );
    }

    #[test]
    fn missing_rates_fall_back() {
        // Cache tokens at the input rate, reasoning at the output rate.
        let m = ModelPrices {
            rates: rates(2.0, 10.0),
            ..ModelPrices::default()
        };
        let u = usage(100, 200, 300, 400, 100);
        assert!(close(price(&m, &u), (600.0 * 2.0 + 400.0 * 10.0) / 1e6));
    }

    #[test]
    fn tiers_by_context_length() {
        let m = ModelPrices {
            rates: rates(1.25, 10.0),
            tiers: vec![
                Tier {
                    context_over: 200_000,
                    rates: Rates {
                        input: Some(2.5),
                        ..Rates::default()
                    },
                },
                Tier {
                    context_over: 100_000,
                    rates: Rates {
                        input: Some(2.0),
                        ..Rates::default()
                    },
                },
            ],
            ..ModelPrices::default()
        };
        assert!(close(price(&m, &usage(100_000, 0, 0, 0, 0)), 0.125));
        assert!(close(
            price(&m, &usage(100_001, 0, 0, 0, 0)),
            100_001.0 * 2.0 / 1e6
        ));
        // Cache reads count towards the context; output keeps the base rate.
        assert!(close(
            price(&m, &usage(1, 200_000, 0, 1_000_000, 0)),
            (200_001.0 * 2.5) / 1e6 + 10.0
        ));
    }

    #[test]
    fn lookup_by_provider_then_anywhere() {
        let mut c = Catalog::default();
        let m = |r: f64| ModelPrices {
            rates: rates(r, 0.0),
            ..ModelPrices::default()
        };
        c.providers
            .entry("openai".into())
            .or_default()
            .models
            .insert("m".into(), m(1.0));
        c.providers
            .entry("anthropic".into())
            .or_default()
            .models
            .insert("m".into(), m(2.0));
        assert_eq!(find(&c, "anthropic", "m").unwrap().rates.input, Some(2.0));
        assert_eq!(find(&c, "openai", "m").unwrap().rates.input, Some(1.0));
        assert!(find(&c, "bedrock", "m").is_some());
        assert!(find(&c, "openai", "x").is_none());
    }
}
