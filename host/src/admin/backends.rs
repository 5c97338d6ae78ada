//! `GET /backends`: every route's backends, their weight and priority
//! group, and which are out of rotation on this replica, until when and why.
//!
//! An operator whose traffic moved to the fallback provider needs to see
//! that it did, and when it moves back, without reading logs.

use crate::proxy::health::Status;
use crate::proxy::snapshot::Snapshot;
use serde::Serialize;

#[derive(Serialize)]
pub struct Route {
    pub route: String,
    /// Total calls per client request (`retry.attempts`, 1 without).
    pub attempts: u8,
    pub backends: Vec<Backend>,
}

#[derive(Serialize)]
pub struct Backend {
    pub name: String,
    pub provider: &'static str,
    pub weight: u32,
    /// Priority group inside its `backends` entry (0 serves first).
    pub group: usize,
    #[serde(flatten)]
    pub health: Status,
}

pub fn report(snap: &Snapshot) -> Vec<Route> {
    snap.routes
        .iter()
        .map(|r| Route {
            route: r.name.clone(),
            attempts: r.attempts(),
            backends: r
                .backends
                .pools
                .iter()
                .flat_map(|p| {
                    p.groups.iter().enumerate().flat_map(move |(group, g)| {
                        g.iter().map(move |c| Backend {
                            name: c.target.name.clone(),
                            provider: c
                                .target
                                .api()
                                .map_or("host", |a| a.provider().config_name()),
                            weight: p.weight,
                            group,
                            health: c.health.status(),
                        })
                    })
                })
                .collect(),
        })
        .collect()
}
