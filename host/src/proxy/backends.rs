//! A route's backends and the choice of one per attempt: weights between
//! the `backends` entries, priority `groups` inside an `ai` entry, and
//! health (an evicted backend gets no request until its time is up).
//!
//! The choice is the gateway's alone: it reads no request header, so a
//! client cannot steer its request to a backend of its liking.

use super::client::HttpClient;
use super::health::Health;
use super::target::Target;
use crate::config::Eviction;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::Rng;
use std::sync::Arc;
use std::time::Instant;

/// One backend requests can be sent to: a plain `ai`/`host` entry, or one
/// provider of a group.
#[derive(Debug)]
pub struct Candidate {
    pub target: Target,
    pub client: HttpClient,
    /// `backendAuth.passHeaders` that apply to this backend.
    pub pass_headers: Vec<String>,
    /// `health.eviction` for this backend, if any.
    pub eviction: Option<Eviction>,
    pub health: Arc<Health>,
}

/// One `backends` entry: its weight, and its providers in priority groups
/// (a plain backend is one group of one).
#[derive(Debug)]
pub struct Pool {
    pub weight: u32,
    pub groups: Vec<Vec<Arc<Candidate>>>,
}

/// Every backend of a route.
#[derive(Debug)]
pub struct Backends {
    pub pools: Vec<Pool>,
}

/// The outcome of a choice.
pub enum Pick {
    Chosen(Arc<Candidate>),
    /// Every backend that could serve the request is evicted; the first
    /// returns at this moment.
    Evicted(Instant),
    /// No backend can serve the request (none speaks its format).
    NoneFits,
}

impl Backends {
    pub fn all(&self) -> impl Iterator<Item = &Arc<Candidate>> {
        self.pools.iter().flat_map(|p| p.groups.iter().flatten())
    }

    /// The backend before any attempt: what policies are told serves.
    pub fn first(&self) -> &Arc<Candidate> {
        self.all().next().expect("a route has at least one backend")
    }

    /// Choose a backend for the next attempt. `fits` says which backends can
    /// serve this request at all; `tried` are those already called for it,
    /// avoided while an untried one is in rotation. Among the `backends`
    /// entries with a backend in rotation, one is drawn by weight (entries
    /// of weight 0 only when no weighted one is left: a standby); inside it,
    /// the first group with a backend in rotation serves, drawn uniformly.
    pub fn pick(
        &self,
        rng: &mut impl Rng,
        now: Instant,
        fits: impl Fn(&Candidate) -> bool,
        tried: &[Arc<Candidate>],
    ) -> Pick {
        let mut soonest: Option<Instant> = None;
        let mut any_fits = false;
        let mut live = |c: &Candidate| {
            if !fits(c) {
                return false;
            }
            any_fits = true;
            match c.health.evicted_until(now) {
                Some(u) => {
                    soonest = Some(soonest.map_or(u, |s| s.min(u)));
                    false
                }
                None => true,
            }
        };
        let in_rotation: Vec<Vec<Vec<&Arc<Candidate>>>> = self
            .pools
            .iter()
            .map(|p| {
                p.groups
                    .iter()
                    .map(|g| g.iter().filter(|c| live(c)).collect())
                    .collect()
            })
            .collect();
        let untried = |c: &&Arc<Candidate>| !tried.iter().any(|t| Arc::ptr_eq(t, c));
        for avoid_tried in [true, false] {
            let usable: Vec<Vec<Vec<&Arc<Candidate>>>> = in_rotation
                .iter()
                .map(|groups| {
                    groups
                        .iter()
                        .map(|g| {
                            g.iter()
                                .copied()
                                .filter(|c| !avoid_tried || untried(c))
                                .collect()
                        })
                        .collect()
                })
                .collect();
            if let Some(c) = self.draw(rng, &usable) {
                return Pick::Chosen(c.clone());
            }
        }
        match soonest {
            Some(u) if any_fits => Pick::Evicted(u),
            _ => Pick::NoneFits,
        }
    }

    /// Weighted draw of an entry, then its first non-empty group, uniformly.
    fn draw<'a>(
        &self,
        rng: &mut impl Rng,
        usable: &[Vec<Vec<&'a Arc<Candidate>>>],
    ) -> Option<&'a Arc<Candidate>> {
        let open: Vec<usize> = (0..usable.len())
            .filter(|&i| usable[i].iter().any(|g| !g.is_empty()))
            .collect();
        let weighted: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| self.pools[i].weight > 0)
            .collect();
        let pool = if !weighted.is_empty() {
            let w = WeightedIndex::new(weighted.iter().map(|&i| self.pools[i].weight)).ok()?;
            weighted[w.sample(rng)]
        } else if !open.is_empty() {
            open[rng.random_range(0..open.len())]
        } else {
            return None;
        };
        let group = usable[pool].iter().find(|g| !g.is_empty())?;
        Some(group[rng.random_range(0..group.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Backend};
    use crate::proxy::health::Reason;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::time::Duration;

    fn candidate(name: &str) -> Arc<Candidate> {
        let target =
            super::super::target::Target::compile(&Backend::Host(format!("{name}.test:80")), false)
                .unwrap();
        let upstreams =
            super::super::client::Upstreams::new(Default::default(), Duration::from_secs(1));
        Arc::new(Candidate {
            target,
            client: upstreams.client(&Default::default()).unwrap(),
            pass_headers: Vec::new(),
            eviction: None,
            health: Arc::new(Health::default()),
        })
    }

    fn route(pools: Vec<(u32, Vec<Vec<&str>>)>) -> Backends {
        Backends {
            pools: pools
                .into_iter()
                .map(|(weight, groups)| Pool {
                    weight,
                    groups: groups
                        .into_iter()
                        .map(|g| g.into_iter().map(candidate).collect())
                        .collect(),
                })
                .collect(),
        }
    }

    fn name(p: Pick) -> String {
        match p {
            Pick::Chosen(c) => c.target.name.clone(),
            Pick::Evicted(_) => "evicted".into(),
            Pick::NoneFits => "none".into(),
        }
    }

    /// 9:1 over 10,000 seeded draws lands within 1% of 90%.
    #[test]
    fn draws_follow_the_weights() {
        let b = route(vec![(9, vec![vec!["a"]]), (1, vec![vec!["b"]])]);
        let mut rng = StdRng::seed_from_u64(7);
        let now = Instant::now();
        let a = (0..10_000)
            .filter(|_| name(b.pick(&mut rng, now, |_| true, &[])) == "a.test:80")
            .count();
        assert!((8_900..=9_100).contains(&a), "{a}");
    }

    #[test]
    fn first_group_in_rotation_serves_and_evicted_ones_are_skipped() {
        let b = route(vec![(1, vec![vec!["p1", "p2"], vec!["s1"]])]);
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        for _ in 0..50 {
            let n = name(b.pick(&mut rng, now, |_| true, &[]));
            assert!(n.starts_with('p'), "{n}");
        }
        let g = &b.pools[0].groups;
        g[0][0]
            .health
            .evict(Duration::from_secs(60), Reason::RateLimited);
        for _ in 0..20 {
            assert_eq!(
                name(b.pick(&mut rng, Instant::now(), |_| true, &[])),
                "p2.test:80"
            );
        }
        g[0][1]
            .health
            .evict(Duration::from_secs(60), Reason::Failures);
        assert_eq!(
            name(b.pick(&mut rng, Instant::now(), |_| true, &[])),
            "s1.test:80"
        );
        g[1][0]
            .health
            .evict(Duration::from_secs(60), Reason::Failures);
        assert_eq!(
            name(b.pick(&mut rng, Instant::now(), |_| true, &[])),
            "evicted"
        );
    }

    #[test]
    fn tried_backends_wait_their_turn_and_unfit_ones_are_never_chosen() {
        let b = route(vec![(100, vec![vec!["a"]]), (1, vec![vec!["b"]])]);
        let mut rng = StdRng::seed_from_u64(3);
        let a = b.pools[0].groups[0][0].clone();
        let now = Instant::now();
        for _ in 0..20 {
            let n = name(b.pick(&mut rng, now, |_| true, std::slice::from_ref(&a)));
            assert_eq!(n, "b.test:80");
        }
        // Everything tried: retry among all again.
        let all: Vec<_> = b.all().cloned().collect();
        assert!(matches!(
            b.pick(&mut rng, now, |_| true, &all),
            Pick::Chosen(_)
        ));
        let only_b = |c: &Candidate| c.target.name.starts_with('b');
        for _ in 0..20 {
            assert_eq!(name(b.pick(&mut rng, now, only_b, &[])), "b.test:80");
        }
        assert_eq!(name(b.pick(&mut rng, now, |_| false, &[])), "none");
    }

    #[test]
    fn zero_weight_is_a_standby() {
        let b = route(vec![(1, vec![vec!["a"]]), (0, vec![vec!["z"]])]);
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..50 {
            assert_eq!(
                name(b.pick(&mut rng, Instant::now(), |_| true, &[])),
                "a.test:80"
            );
        }
        b.pools[0].groups[0][0]
            .health
            .evict(Duration::from_secs(60), Reason::Failures);
        assert_eq!(
            name(b.pick(&mut rng, Instant::now(), |_| true, &[])),
            "z.test:80"
        );
        let _ = config::Provider::Anthropic;
    }
}
