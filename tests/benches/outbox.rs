//! Mail delivery figures for BENCHMARKS.md (not asserted anywhere):
//! throughput to a loopback SMTP sink with one connection per message (how
//! authentik's worker sends) against the outbox's pooled, concurrent workers; the
//! enqueue cost on the request path with SQLite, alone and as 8 concurrent senders
//! storing a token with each mail (a send's write); memory while 100k messages wait.
//!
//! `cargo bench -p e2e-tests --bench outbox` (needs python3-aiosmtpd, or
//! `SINK=host:port` for an already running sink such as Postfix's smtp-sink).

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::{bench_count, free_port, test_mail, SmtpSink};
use host_harness::mail::{smtp_transport, Delivery, MailQueue, OutboxConfig};
use host_harness::storage::{OutboxStore, SqliteStore, StoredToken};
use host_harness::system::clock::SystemClock;
use lettre::address::Envelope;
use lettre::Transport;
use plugin_api::{FlowToken, SmtpSettings};

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        username: String::new(),
        password: String::new(),
        use_tls: false,
        use_ssl: false,
        timeout_secs: 10,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Sends `n` messages, each over a fresh connection. The messages and envelopes are
/// built before the clock starts, as the outbox side's are queued before it starts.
fn per_connection(port: u16, n: usize) -> (f64, Vec<Duration>) {
    let s = settings(port);
    let mails: Vec<_> = (0..n)
        .map(|i| {
            let m = test_mail(&format!("conn-{i}"), "someone@example.com");
            let env = Envelope::new(
                Some(m.envelope_from.parse().unwrap()),
                vec![m.envelope_to[0].parse().unwrap()],
            )
            .unwrap();
            (env, m.raw)
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for (env, raw) in &mails {
        let t0 = Instant::now();
        // A fresh transport: its own connection, closed when dropped.
        let t = smtp_transport(&s, &[], 1).unwrap();
        t.send_raw(env, raw).unwrap();
        drop(t);
        lat.push(t0.elapsed());
    }
    (n as f64 / start.elapsed().as_secs_f64(), lat)
}

fn pooled(port: u16, n: usize, workers: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("o.db")).unwrap());
    for i in 0..n {
        store
            .outbox_push(
                &test_mail(&format!("pool-{workers}-{i}"), "someone@example.com"),
                0,
                0,
            )
            .unwrap();
    }
    let start = Instant::now();
    let q = MailQueue::start(
        Delivery::Smtp(settings(port)),
        Arc::default(),
        store.clone(),
        Arc::new(SystemClock),
        OutboxConfig {
            workers,
            poll: Duration::from_millis(5),
            ..Default::default()
        },
    )
    .unwrap();
    while store.outbox_counts().unwrap().sent < n as u64 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    q.shutdown();
    rate
}

/// `senders` threads each storing `per_sender` tokens with their mails, as sends do
/// (`outbox_push_with_token`), all messages built before the clock starts. Returns
/// the wall time per message and the median time of one call.
fn concurrent_sends(
    store: &Arc<SqliteStore>,
    senders: usize,
    per_sender: usize,
) -> (f64, Duration) {
    let sample = test_mail("sample", "someone@example.com");
    let work: Vec<Vec<_>> = (0..senders)
        .map(|s| {
            (0..per_sender)
                .map(|i| {
                    let mut m = sample.clone();
                    m.message_id = format!("<c-{senders}-{s}-{i}@test>");
                    (bench_token(&format!("{senders}-{s}-{i}")), m)
                })
                .collect()
        })
        .collect();
    let start = std::sync::Barrier::new(senders + 1);
    let (wall, mut calls) = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .iter()
            .map(|mine| {
                let (store, start) = (store.clone(), &start);
                scope.spawn(move || {
                    start.wait();
                    let mut took = Vec::with_capacity(mine.len());
                    for (t, m) in mine {
                        let t0 = Instant::now();
                        assert!(store.outbox_push_with_token(t, m, 0, 0).unwrap());
                        took.push(t0.elapsed());
                    }
                    took
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let calls: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (t0.elapsed(), calls)
    });
    calls.sort();
    let n = (senders * per_sender) as f64;
    (wall.as_secs_f64() * 1e6 / n, calls[calls.len() / 2])
}

/// A flow token like a send's, with a plan snapshot of a few hundred bytes.
fn bench_token(key: &str) -> StoredToken {
    StoredToken {
        key_hash: format!("{key:0>64}"),
        token: FlowToken {
            identifier: format!("ak-email-stage-bench-{key}"),
            user_id: "1".into(),
            flow_slug: "recover".into(),
            stage_name: "recovery-email".into(),
            expires_ms: i64::MAX,
            intent: "verification".into(),
        },
        revoke_on_execution: false,
        plan: serde_json::json!({
            "flow_slug": "recover",
            "stages": ["identify", "recovery-email", "set-password", "login"],
            "context": {"pending_user": {"id": "1", "username": "someone", "email": "someone@example.com", "name": "Some One", "is_active": true, "attributes": {}}},
        }),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut _sink = None;
    let port = match std::env::var("SINK") {
        Ok(addr) => addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("SINK=host:port"),
        Err(_) => {
            let s = SmtpSink::start().expect("aiosmtpd for the benchmark sink");
            let p = s.port;
            _sink = Some(s);
            p
        }
    };
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(bench_count(2000));

    let (rate, lat) = per_connection(port, n);
    println!(
        "one connection per message: {rate:.0} msg/s, median {:?} per message",
        median(lat)
    );
    for workers in [1, 4, 8] {
        println!(
            "outbox, {workers} pooled connection(s): {:.0} msg/s ({n} messages)",
            pooled(port, n, workers)
        );
    }

    // Enqueue cost on the request path: one outbox insert into SQLite (WAL), and the
    // host's memory while 100k messages wait (they live in the SQLite file).
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("e.db")).unwrap();
    let sample = test_mail("sample", "someone@example.com");
    let before = rss_kib();
    let mut spent = Duration::ZERO;
    let queued = bench_count(100_000);
    for i in 0..queued {
        let mut m = sample.clone();
        m.message_id = format!("<q-{i}@test>");
        let t0 = Instant::now();
        store.outbox_push(&m, 0, 0).unwrap();
        spent += t0.elapsed();
    }
    println!(
        "enqueue (SQLite outbox insert): {:.1} µs per message (mean of {queued})",
        spent.as_secs_f64() * 1e6 / queued as f64
    );
    println!(
        "{queued} queued: host RSS {} MiB before, {} MiB after; SQLite file {} MiB",
        before / 1024,
        rss_kib() / 1024,
        std::fs::metadata(dir.path().join("e.db"))
            .map(|m| m.len() / (1 << 20))
            .unwrap_or(0)
    );

    // A send's write (token and mail, one transaction) from 8 concurrent senders.
    let store = Arc::new(SqliteStore::open(&dir.path().join("c.db")).unwrap());
    let per_sender = bench_count(2_000);
    for senders in [1, 8] {
        let (per_msg, call) = concurrent_sends(&store, senders, per_sender / senders.min(4));
        println!(
            "token + mail from {senders} concurrent sender(s): {per_msg:.1} µs per message, median call {:.1} µs",
            call.as_secs_f64() * 1e6
        );
    }
    let _ = free_port();
}
