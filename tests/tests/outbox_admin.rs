//! `host-harness outbox list|show|retry|purge` against the storage of a running
//! `host-harness serve`, on SQLite and on PostgreSQL: mail the real SMTP sink
//! refused is dead, is listed and shown without its body, and once retried is
//! delivered exactly once; old dead letters are purged.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e_tests::{
    free_port, host_harness_bin, plugin_path, postgres_url, unique_name, Served, SmtpSink,
};
use host_harness::storage::OutboxStore;
use serde_json::Value;

/// Where the test's host keeps its data, as `serve` and `outbox` are told.
struct Storage {
    /// `database = …` (and `database_schema = …`) for the host configuration.
    config: String,
    /// `--database …` (and `--database-schema …`) for `host-harness outbox`.
    args: Vec<String>,
    /// The same store, opened by the test to queue mail as another host would.
    open: Box<dyn Fn() -> Box<dyn OutboxStore>>,
}

/// `serve` on `cfg`, once it is ready (its outbox workers run).
fn serve(cfg: &std::path::Path, port: u16) -> Served {
    let served = Served::with_config(cfg, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{}/-/health/ready/", served.base))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

fn outbox(storage: &Storage, args: &[&str]) -> Output {
    Command::new(host_harness_bin())
        .env_remove("RUST_BACKTRACE")
        .arg("outbox")
        .args(&storage.args)
        .args(args)
        .output()
        .unwrap()
}

/// `outbox …` that must succeed; its standard output.
fn outbox_ok(storage: &Storage, args: &[&str]) -> String {
    let out = outbox(storage, args);
    assert!(
        out.status.success(),
        "outbox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn listed(storage: &Storage, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    outbox_ok(storage, &all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_listed(storage: &Storage, args: &[&str], n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = listed(storage, args);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "outbox list {args:?} stayed at {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn delivered(sink: &SmtpSink, message_id: &str) -> usize {
    sink.wait_for(usize::MAX, Duration::ZERO)
        .iter()
        .filter(|m| m.message_id == message_id)
        .count()
}

fn administered_while_serving(storage: Storage) {
    let Some(sink) = SmtpSink::start_with(None, &["--reject-rcpt", "blocked"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("host.toml");
    std::fs::write(
        &cfg,
        format!(
            "base_url = \"http://127.0.0.1:{port}\"\n{}\n[mail]\nfrom = \"id@example.test\"\n\
             [mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n\n[[plugins]]\npath = \"{}\"\n\n{}",
            storage.config,
            sink.port,
            plugin_path("email-stage-plugin").display(),
            include_str!("../../host-harness/flows.toml"),
        ),
    )
    .unwrap();
    let _server = serve(&cfg, port);

    // Another host on the same storage queues three messages; two are refused.
    {
        let store = (storage.open)();
        let now =
            host_harness::system::clock::Clock::now_ms(&host_harness::system::clock::SystemClock);
        for (id, to) in [
            ("dead-1", "blocked-1@example.com"),
            ("dead-2", "blocked-2@example.com"),
            ("fine-1", "fine@example.com"),
        ] {
            assert!(store
                .outbox_push(&e2e_tests::test_mail(id, to), now, now)
                .unwrap());
        }
    }
    let dead = wait_listed(&storage, &["--state", "dead"], 2);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(wait_listed(&storage, &["--state", "sent"], 1).len(), 1);
    assert_eq!(delivered(&sink, "fine-1@test"), 1);
    assert_eq!(listed(&storage, &["--limit", "1"]).len(), 1);
    assert!(listed(&storage, &["--state", "queued"]).is_empty());

    let mine = listed(&storage, &["--to", "BLOCKED-1@example.com"]);
    assert_eq!(mine.len(), 1, "{mine:?}");
    let entry = &mine[0];
    assert_eq!(entry["state"], "dead");
    assert_eq!(entry["to"], serde_json::json!(["blocked-1@example.com"]));
    assert_eq!(entry["route"], "global");
    assert!(entry["attempts"].as_i64().unwrap() >= 1);
    assert!(
        entry["last_error"].as_str().unwrap().contains("550"),
        "{entry}"
    );
    let id = entry["id"].as_i64().unwrap().to_string();

    let shown = outbox_ok(&storage, &["show", &id]);
    let detail: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(detail["message_id"], "<dead-1@test>");
    assert_eq!(detail["subject"], "outbox test");
    assert!(detail["size_bytes"].as_i64().unwrap() > 0);
    // The body (where a stage's link and token would be) is never printed.
    assert!(!shown.contains("message dead-1"), "{shown}");

    // The recipient's server accepts again; the retried dead letter goes out once.
    let sink_port = sink.port;
    drop(sink);
    let sink = SmtpSink::start_with(Some(sink_port), &[]).unwrap();
    assert_eq!(outbox_ok(&storage, &["retry", &id]).trim(), "requeued 1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(&sink, "dead-1@test") == 0 {
        assert!(
            Instant::now() < deadline,
            "the retried mail was not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(delivered(&sink, "dead-1@test"), 1);
    assert_eq!(delivered(&sink, "dead-2@test"), 0, "only the one retried");
    assert_eq!(wait_listed(&storage, &["--state", "sent"], 2).len(), 2);

    // A fresh dead letter is kept by an age limit; with none left to wait, it goes.
    assert!(
        outbox_ok(&storage, &["purge", "--dead", "--older-than", "30d"]).starts_with("purged 0")
    );
    assert!(
        outbox_ok(&storage, &["purge", "--dead", "--older-than", "0s"]).starts_with("purged 1")
    );
    assert!(listed(&storage, &["--state", "dead"]).is_empty());
    assert_eq!(listed(&storage, &[]).len(), 2, "sent mail is not purged");

    for (args, says) in [
        (vec!["show", "999999"], "no outbox entry 999999"),
        (
            vec!["retry", "999999"],
            "no dead or waiting outbox entry 999999",
        ),
        (vec!["list", "--state", "lost"], "lost"),
    ] {
        let out = outbox(&storage, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn outbox_commands_work_on_sqlite_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.db");
    let url = format!("sqlite://{}", db.display());
    administered_while_serving(Storage {
        config: format!("database = \"{url}\""),
        args: vec!["--database".into(), url],
        open: Box::new(move || Box::new(host_harness::storage::SqliteStore::open(&db).unwrap())),
    });
}

#[test]
fn outbox_commands_work_on_postgres_while_serve_runs() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = unique_name("outbox_admin");
    let (u, s) = (url.clone(), schema.clone());
    administered_while_serving(Storage {
        config: format!("database = \"{url}\"\ndatabase_schema = \"{schema}\""),
        args: vec![
            "--database".into(),
            url.clone(),
            "--database-schema".into(),
            schema.clone(),
        ],
        open: Box::new(move || {
            Box::new(host_harness::storage::PostgresStore::open(&u, Some(&s)).unwrap())
        }),
    });
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
}

#[test]
fn outbox_refuses_a_store_it_cannot_reach_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in [
        (
            format!("sqlite://{}", dir.path().join("none.db").display()),
            "does not exist",
        ),
        (
            "memory://".to_string(),
            "cannot be administered from another process",
        ),
    ] {
        let out = Command::new(host_harness_bin())
            .env_remove("RUST_BACKTRACE")
            .args(["outbox", "--database", &url, "list"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
        assert!(err.lines().count() <= 2, "{err}");
    }
    assert!(!dir.path().join("none.db").exists(), "list created a store");
}
