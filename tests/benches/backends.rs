//! Per-call latency of the shared backends for BENCHMARKS.md (not asserted): the
//! rate-limit check on the in-process cache and on Redis (one Lua round trip), and a
//! flow-token insert + consume on SQLite and PostgreSQL.
//! `cargo bench -p e2e-tests --bench backends` (Redis and PostgreSQL on loopback).

use std::sync::Arc;
use std::time::Instant;

use e2e_tests::{postgres_url, redis_url, unique_name};
use host_harness::cache::{Cache, MemoryCache, RedisCache};
use host_harness::store::{HostStore, PostgresStore, SqliteStore, StoredToken};
use plugin_api::FlowToken;

fn rate_limit(label: &str, c: &dyn Cache) {
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        // Distinct keys: the allowed path, which writes.
        let _ = c
            .rate_limit(&format!("k{}", i % 1000), 300_000, 1_000_000, i as i64)
            .unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("rate_limit on {label}: {per:.1} µs per check");
}

fn tokens(label: &str, s: &dyn HostStore) {
    let n = 5_000;
    let t = Instant::now();
    for i in 0..n {
        let key_hash = format!("{i:064x}");
        s.insert_token(&StoredToken {
            key_hash: key_hash.clone(),
            token: FlowToken {
                identifier: format!("id-{i}"),
                user_id: "1".into(),
                flow_slug: "f".into(),
                stage_name: "s".into(),
                expires_ms: i64::MAX,
                intent: "verification".into(),
            },
            revoke_on_execution: false,
            plan: serde_json::json!({"stages": [], "context": {}}),
        })
        .unwrap();
        assert!(s.consume_token(&key_hash, 0).unwrap().is_some());
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("token insert + consume on {label}: {per:.1} µs per pair");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    rate_limit("the in-process cache", &MemoryCache::new());
    if let Some(r) = redis_url() {
        rate_limit("Redis", &RedisCache::open(&r, &unique_name("b")).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    tokens(
        "SQLite",
        &SqliteStore::open(&dir.path().join("b.db")).unwrap(),
    );
    if let Some(pg) = postgres_url() {
        let s: Arc<dyn HostStore> =
            Arc::new(PostgresStore::open(&pg, Some(&unique_name("b"))).unwrap());
        tokens("PostgreSQL", &*s);
    }
}
