//! Runtime API keys on a real Redis shared by two replicas: a key created on
//! one is accepted by the other, and a key revoked through replica A's admin
//! API is refused by replica B within one second.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_testkit::{FakeUpstream, RedisServer};

use crate::keys_admin::{admin, call, create, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_is_refused_on_the_other_within_a_second() {
    let redis = RedisServer::start();
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let state = |replica: &str| {
        format!(
            "state:\n  replicaId: {replica}\n  redis:\n    url: {}\n    timeout: 500ms\n",
            redis.url()
        )
    };
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let a = start(&da, &up, &state("gw-a")).await;
    let b = start(&db, &up, &state("gw-b")).await;

    let (id, secret) = create(&a, json!({"metadata": {"team": "shared"}})).await;
    // Accepted on the replica that did not create it, and listed there.
    assert_eq!(call(&b, &secret, "claude-sonnet-4-5").await, 200);
    let listed = admin(&b, "GET", &format!("/keys/{id}"), "").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    // The secret is nowhere in Redis.
    let mut c = redis.connect().unwrap();
    for k in redis.keys("*") {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut c).unwrap_or(None);
        let v = String::from_utf8_lossy(&v.unwrap_or_default()).into_owned();
        assert!(!v.contains(&secret) && !k.contains(&secret), "{k}");
    }

    let r = admin(&a, "POST", &format!("/keys/{id}/revoke"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let revoked_at = Instant::now();
    loop {
        let status = call(&b, &secret, "claude-sonnet-4-5").await;
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "replica B still accepts a revoked key ({status})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
}
