//! Account enumeration by timing (issue 8, finding 4): over HTTP, recovery for a
//! known and for an unknown address must take the same time, on SQLite and on
//! PostgreSQL. The unknown address gets a decoy token and a decoy mail, written
//! exactly like the real ones. A two-sample Kolmogorov–Smirnov test must not tell
//! the two apart; the bound is loose for a noisy shared machine, and
//! `cargo bench --bench enumeration` reports the real figures (BENCHMARKS.md).

use std::sync::Arc;

use e2e_tests::timing::{ks_two_sample, quantile, recovery_times};
use e2e_tests::{postgres_url, unique_name, Mode, Setup, TestServer};
use host_harness::storage::{HostStore, PostgresStore, SqliteStore};

/// Samples per kind, and the largest KS statistic accepted. With 300 samples each,
/// two draws from one distribution exceed 0.2 with a probability below 1e-5; the
/// leak this guards against gave D ≈ 0.8.
const N: usize = 300;
const MAX_D: f64 = 0.2;

fn check(store: Arc<dyn HostStore>, name: &str) {
    let s = TestServer::start_custom(
        Mode::Cdylib,
        |cfg| {
            // Enough room for every sample; the limits themselves are tested elsewhere.
            e2e_tests::TestHost::edit_stage(
                cfg,
                "recovery-email",
                serde_json::json!({"recovery_max_attempts": 100}),
            );
        },
        Default::default(),
        Setup {
            store,
            system_clock: true,
            ..Default::default()
        },
    );
    let t = recovery_times(&s, N, 30, 7, "t");
    for (what, known, unknown) in [
        ("send", &t.send_known, &t.send_unknown),
        ("resend", &t.resend_known, &t.resend_unknown),
    ] {
        let (d, p) = ks_two_sample(known, unknown);
        eprintln!(
            "{name} {what}: known median {:.0} µs p90 {:.0}, unknown median {:.0} µs p90 {:.0}, D = {d:.3}, p = {p:.3}",
            quantile(known, 0.5),
            quantile(known, 0.9),
            quantile(unknown, 0.5),
            quantile(unknown, 0.9),
        );
        assert!(
            d < MAX_D,
            "{name} {what}: known and unknown addresses differ in time (D = {d:.3}, p = {p:.2e})"
        );
    }
    // Only known addresses get mail: two each (send and resend), and half the
    // warm-up rounds.
    let want = 2 * (N + 15);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.mails().len() < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(s.mails().len(), want, "only known addresses got mail");
}

#[test]
fn recovery_takes_the_same_time_for_known_and_unknown_addresses_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(
        Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap()),
        "sqlite",
    );
}

#[test]
fn recovery_takes_the_same_time_for_known_and_unknown_addresses_on_postgres() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let schema = unique_name("timing");
    check(
        Arc::new(PostgresStore::open(&pg, Some(&schema)).unwrap()),
        "postgres",
    );
}

#[test]
fn decoys_are_stored_like_real_mail_but_never_delivered_or_restored() {
    use host_harness::flow::client::FlowClient;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decoy.db");
    let h = e2e_tests::host_with(
        vec![e2e_tests::email_plugin(Mode::Cdylib)],
        Arc::new(SqliteStore::open(&path).unwrap()),
        |_| {},
    );
    let mut c = FlowClient::open(&h.ex, "recover", "");
    c.get();
    let v = c.post(serde_json::json!({"uid_field": "ghost@example.com"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    assert!(h.mails().is_empty(), "a decoy is never delivered");
    let db = rusqlite::Connection::open(&path).unwrap();
    let (state, raw): (String, Vec<u8>) = db
        .query_row("SELECT state, raw FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(state, "decoy");
    let user: String = db
        .query_row("SELECT user_id FROM flow_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(user, "", "a decoy token belongs to nobody");
    // Even whoever reads the decoy's link from storage cannot use it.
    let text = String::from_utf8_lossy(&raw)
        .replace("=\r\n", "")
        .replace("=3D", "=");
    let start = text.find("https://id.example.test/if/flow/").unwrap();
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let mut b = FlowClient::open_link(&h.ex, &link, Default::default()).unwrap();
    assert_eq!(b.get()["component"], "ak-stage-identification");
}
