//! A host killed with SIGKILL in the middle of delivering, then restarted: every
//! queued message arrives, counted by Message-ID at a real SMTP server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{host_harness_bin, test_mail, SmtpSink};
use host_harness::storage::{OutboxStore, SqliteStore};

const MESSAGES: usize = 300;
const WORKERS: usize = 4;

#[test]
fn sigkill_mid_queue_then_restart_loses_nothing() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.db");
    {
        let store = SqliteStore::open(&db).unwrap();
        for i in 0..MESSAGES {
            assert!(store
                .outbox_push(
                    &test_mail(&format!("crash-{i}"), "someone@example.com"),
                    0,
                    0
                )
                .unwrap());
        }
    }
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"sqlite://{}\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n[mail.outbox]\nworkers = {WORKERS}\nbatch = 8\nlease_secs = 2\n",
            db.display(),
            sink.port
        ),
    )
    .unwrap();
    let bin = host_harness_bin();

    // First run: killed once some messages have arrived.
    let mut first = Command::new(&bin)
        .args(["deliver", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.wait_for(0, Duration::ZERO).len() < MESSAGES / 5 {
        assert!(
            Instant::now() < deadline,
            "the first host delivered nothing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = sink.wait_for(0, Duration::ZERO).len();
    assert!(
        at_kill < MESSAGES,
        "killed before the end ({at_kill} of {MESSAGES} delivered)"
    );

    // Second run: picks up what was queued and what the dead host held (after its lease).
    let out = Command::new(&bin)
        .args(["deliver", "--until-idle", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let received = sink.wait_for(MESSAGES, Duration::from_secs(30));
    let mut per_id = std::collections::HashMap::new();
    for m in &received {
        *per_id.entry(m.message_id.clone()).or_insert(0usize) += 1;
    }
    assert_eq!(per_id.len(), MESSAGES, "every queued message arrived");
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    eprintln!("killed after {at_kill} of {MESSAGES}; duplicates after restart: {duplicates}");
    // Only a message the server accepted in the instant before SIGKILL, before its
    // outcome was written, can arrive twice: at most one per worker.
    assert!(duplicates <= WORKERS, "{duplicates} duplicates");
    let c = SqliteStore::open(&db).unwrap().outbox_counts().unwrap();
    assert_eq!(
        (c.sent, c.pending, c.sending, c.dead),
        (MESSAGES as u64, 0, 0, 0)
    );
}
