//! Per-call latency of the shared backends for BENCHMARKS.md (not asserted): the
//! rate-limit check on the in-process cache, on Redis (one Lua round trip) and on
//! PostgreSQL (one function call), a flow-token insert + consume on SQLite and
//! PostgreSQL, and first sends over HTTP on each setup.
//! `cargo bench -p e2e-tests --bench backends` (Redis and PostgreSQL on loopback;
//! `BENCH_QUICK=1` runs a hundredth of it).

use std::sync::Arc;
use std::time::Instant;

use e2e_tests::{bench_count, postgres_url, redis_url, unique_name};
use host_harness::cache::{Cache, MemoryCache, PostgresCache, RedisCache};
use host_harness::storage::{HostStore, PostgresStore, SqliteStore, StoredToken};
use plugin_api::FlowToken;

fn rate_limit(label: &str, c: &dyn Cache) {
    let n = bench_count(20_000);
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
    let n = bench_count(5_000);
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

/// First sends over HTTP: each flow is a fresh browser (GET, then POST of the
/// identifier, whose 302 the client follows into the email stage's first send).
fn first_sends(
    label: &str,
    cfg_edit: impl FnOnce(&mut host_harness::config::HostConfig),
    shared: bool,
) {
    use host_harness::config;
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = config::reference_config(
        &format!("sqlite://{}", dir.path().join("h.db").display()),
        &format!("http://{addr}"),
        None,
        config::MailConfig {
            maildir: Some(dir.path().join("mail")),
            ..Default::default()
        },
    );
    cfg_edit(&mut cfg);
    let b = config::Backends::from_config(&cfg).unwrap();
    let ex = config::build_executor(&cfg, &[e2e_tests::email_plugin(e2e_tests::Mode::Cdylib)], b)
        .unwrap();
    let (threads, per) = (4, bench_count(150));
    for i in 0..threads * per {
        ex.store
            .create_user(&host_harness::storage::NewUser {
                username: format!("u{i}"),
                email: format!("u{i}@example.com"),
                is_active: true,
                ..Default::default()
            })
            .unwrap();
    }
    let server = host_harness::http::RunningServer::start(
        listener,
        host_harness::http::AppState::with_shared_sessions(ex, shared),
    )
    .unwrap();
    let url = format!("http://{addr}/api/v3/flows/executor/recover/?query=");
    let start = Instant::now();
    let mut lat: Vec<f64> = (0..threads)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let a = ureq::AgentBuilder::new().build();
                        a.get(&url).call().unwrap();
                        let t0 = Instant::now();
                        let v: serde_json::Value = a
                            .post(&url)
                            .send_json(
                                serde_json::json!({"uid_field": format!("u{}", t * per + i)}),
                            )
                            .unwrap()
                            .into_json()
                            .unwrap();
                        assert_eq!(v["component"], "ak-stage-email");
                        t0.elapsed().as_secs_f64() * 1e3
                    })
                    .collect::<Vec<f64>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "first send over HTTP on {label}: {rate:.0} flows/s (4 clients), POST+302+GET p50 {:.1} ms, p99 {:.1} ms",
        pct(0.5),
        pct(0.99)
    );
    drop(server);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    rate_limit("the in-process cache", &MemoryCache::new());
    if let Some(r) = redis_url() {
        rate_limit("Redis", &RedisCache::open(&r, &unique_name("b")).unwrap());
    }
    if let Some(pg) = postgres_url() {
        let c = PostgresCache::open(&pg, Some(&unique_name("b")), &unique_name("b"), 4).unwrap();
        rate_limit("PostgreSQL", &c);
    }
    first_sends("SQLite + in-process cache", |_| {}, false);
    if let Some(pg) = postgres_url() {
        let (schema, ns) = (unique_name("b"), unique_name("b"));
        first_sends(
            "PostgreSQL alone",
            move |cfg| {
                cfg.database = pg;
                cfg.database_schema = Some(schema);
                cfg.cache = None;
                cfg.deployment = ns;
            },
            true,
        );
    }
    if let (Some(pg), Some(r)) = (postgres_url(), redis_url()) {
        let (schema, ns) = (unique_name("b"), unique_name("b"));
        first_sends(
            "PostgreSQL + Redis",
            move |cfg| {
                cfg.database = pg;
                cfg.database_schema = Some(schema);
                cfg.cache = Some(r);
                cfg.deployment = ns;
            },
            true,
        );
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
