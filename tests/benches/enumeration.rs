//! Recovery over HTTP for known and for unknown addresses, interleaved in random
//! order, on SQLite and on PostgreSQL: medians, p90 and the two-sample
//! Kolmogorov–Smirnov test (issue 8, finding 4; figures in BENCHMARKS.md).
//!
//! `cargo bench -p e2e-tests --bench enumeration` (1,000 samples of each kind;
//! `ENUMERATION_SAMPLES=n` for another count, as CI's short run does).

use std::sync::Arc;

use e2e_tests::timing::{ks_two_sample, quantile, recovery_times};
use e2e_tests::{postgres_url, unique_name, Mode, Setup, TestHost, TestServer};
use host_harness::storage::{HostStore, PostgresStore, SqliteStore};

fn run(store: Arc<dyn HostStore>, name: &str, n: usize) {
    let s = TestServer::start_custom(
        Mode::Cdylib,
        |cfg| {
            TestHost::edit_stage(
                cfg,
                "recovery-email",
                serde_json::json!({"recovery_max_attempts": 100}),
            )
        },
        Default::default(),
        Setup {
            store,
            system_clock: true,
            ..Default::default()
        },
    );
    let t = recovery_times(&s, n, 50, 11, "b");
    for (what, known, unknown) in [
        ("first send (POST + GET)", &t.send_known, &t.send_unknown),
        ("resend (POST)", &t.resend_known, &t.resend_unknown),
    ] {
        let (d, p) = ks_two_sample(known, unknown);
        println!(
            "| {name} | {what} | {n} + {n} | {:.0} | {:.0} | {:.0} | {:.0} | {d:.3} | {p:.3} |",
            quantile(known, 0.5),
            quantile(unknown, 0.5),
            quantile(known, 0.9),
            quantile(unknown, 0.9),
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("ENUMERATION_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    println!("| store | request | samples | known median µs | unknown median µs | known p90 µs | unknown p90 µs | KS D | KS p |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().expect("tempdir");
    run(
        Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("sqlite")),
        "SQLite",
        n,
    );
    match postgres_url() {
        Some(pg) => run(
            Arc::new(PostgresStore::open(&pg, Some(&unique_name("enum"))).expect("postgres")),
            "PostgreSQL",
            n,
        ),
        None => println!("PostgreSQL skipped: unreachable"),
    }
}
