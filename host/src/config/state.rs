//! Decoding the top-level `state:` section.
//!
//! Accepted forms (every key is checked; unknown ones are refused):
//! ```yaml
//! state: memory                      # the default: one process
//! state:
//!   replicaId: gw-a                  # optional; default: the host name
//!   redis:
//!     url: rediss://user:${REDIS_PASSWORD}@redis:6380/0
//!     keyPrefix: "sluice:"           # default
//!     poolSize: 4                    # multiplexed connections
//!     timeout: 250ms                 # bound on every store call
//!     failureMode: closed            # closed (503) | open (allow)
//! state: {backend: redis, url: redis://127.0.0.1:6379}   # flat form, same keys
//! state:
//!   memory:
//!     path: /var/lib/sluice         # optional: budget spend (budgets.json) and runtime
//!                                   # keys (keys.json) survive a restart; without it, memory only
//! ```

use super::decode::{as_map, check_keys, duration, get, integer, nonempty, one_of, string};
use super::error::Diags;
use super::tree::{join_key, Kind, Node};
use super::types::{RedisState, Secret, StateBackend, StateConfig, StateFailureMode};

const REDIS_KEYS: &[&str] = &["url", "keyPrefix", "poolSize", "timeout", "failureMode"];
const MAX_POOL: i128 = 64;

pub(crate) fn decode_state(d: &mut Diags, node: &Node, path: &str) -> Option<StateConfig> {
    if let Kind::Scalar(_) = &node.kind {
        if !node.is_null() {
            let backend = one_of(d, node, path, &[("memory", true), ("redis", false)])?;
            if !backend {
                d.error(
                    &node.loc,
                    path,
                    "`state: redis` needs settings: `state: {redis: {url: redis://host:6379}}`",
                );
                return None;
            }
            return Some(StateConfig::default());
        }
    }
    let m = as_map(d, node, path)?;
    let mut known = vec!["backend", "replicaId", "memory", "redis"];
    known.extend_from_slice(REDIS_KEYS);
    check_keys(d, m, path, &known);

    let replica_id = match get(m, "replicaId") {
        Some(n) => Some(replica(d, n, &join_key(path, "replicaId"))?),
        None => None,
    };
    let flat: Vec<&str> = REDIS_KEYS
        .iter()
        .copied()
        .filter(|k| get(m, k).is_some())
        .collect();
    let nested_redis = get(m, "redis");
    let nested_memory = get(m, "memory");
    let backend_key = get(m, "backend");

    let chosen = [
        backend_key.is_some(),
        nested_redis.is_some(),
        nested_memory.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        d.error(
            &node.loc,
            path,
            "use one of `backend:`, `memory:` or `redis:`, not several",
        );
        return None;
    }

    let mut memory_path = None;
    let backend = if let Some(r) = nested_redis {
        if let Some(k) = flat.first() {
            let n = get(m, k).expect("listed above");
            d.error(
                &n.loc,
                &join_key(path, k),
                format!("`{k}` belongs under `redis:`"),
            );
            return None;
        }
        let p = join_key(path, "redis");
        let rm = as_map(d, r, &p)?;
        check_keys(d, rm, &p, REDIS_KEYS);
        StateBackend::Redis(decode_redis(d, rm, r, &p)?)
    } else {
        let redis = match backend_key {
            Some(n) => one_of(
                d,
                n,
                &join_key(path, "backend"),
                &[("memory", false), ("redis", true)],
            )?,
            None => false,
        };
        if redis {
            StateBackend::Redis(decode_redis(d, m, node, path)?)
        } else {
            if let Some(k) = flat.first() {
                let n = get(m, k).expect("listed above");
                d.error(
                    &n.loc,
                    &join_key(path, k),
                    format!("`{k}` is only used with the redis backend"),
                );
                return None;
            }
            if let Some(n) = nested_memory {
                let p = join_key(path, "memory");
                let mm = as_map(d, n, &p)?;
                check_keys(d, mm, &p, &["path"]);
                if let Some(pn) = get(mm, "path") {
                    let pp = join_key(&p, "path");
                    memory_path = Some(std::path::PathBuf::from(nonempty(d, pn, &pp)?));
                }
            }
            StateBackend::Memory
        }
    };
    Some(StateConfig {
        backend,
        replica_id,
        memory_path,
    })
}

fn replica(d: &mut Diags, n: &Node, path: &str) -> Option<String> {
    let s = nonempty(d, n, path)?;
    let ok = s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        d.error(
            &n.loc,
            path,
            "use at most 128 letters, digits, `-`, `_` and `.`",
        );
        return None;
    }
    Some(s)
}

fn decode_redis(
    d: &mut Diags,
    m: &[(super::tree::Key, Node)],
    node: &Node,
    path: &str,
) -> Option<RedisState> {
    let Some(n) = get(m, "url") else {
        d.error(
            &node.loc,
            path,
            "the redis backend requires `url` (e.g. `redis://127.0.0.1:6379`)",
        );
        return None;
    };
    let p = join_key(path, "url");
    let u = nonempty(d, n, &p)?;
    if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix://")) {
        d.error(
            &n.loc,
            &p,
            "redis url must start with `redis://`, `rediss://` or `unix://`",
        );
        return None;
    }
    let mut r = RedisState::new(Secret::new(u));
    let mut ok = true;
    if let Some(n) = get(m, "keyPrefix") {
        match string(d, n, &join_key(path, "keyPrefix")) {
            Some(s) => r.key_prefix = s,
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "poolSize") {
        let p = join_key(path, "poolSize");
        match integer(d, n, &p) {
            Some(i) if (1..=MAX_POOL).contains(&i) => r.pool_size = i as u32,
            Some(_) => {
                d.error(&n.loc, &p, format!("must be between 1 and {MAX_POOL}"));
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "timeout") {
        let p = join_key(path, "timeout");
        match duration(d, n, &p) {
            Some(t) if !t.is_zero() && t.as_secs() <= 60 => r.timeout_ms = t.as_millis() as u64,
            Some(_) => {
                d.error(&n.loc, &p, "must be longer than 0 and at most 60s");
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "failureMode") {
        match one_of(
            d,
            n,
            &join_key(path, "failureMode"),
            &[
                ("closed", StateFailureMode::Closed),
                ("open", StateFailureMode::Open),
            ],
        ) {
            Some(f) => r.failure_mode = f,
            None => ok = false,
        }
    }
    ok.then_some(r)
}
