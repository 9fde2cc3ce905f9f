//! The durable outbox against a real SMTP server: faults, retries, dead letters,
//! restarts. Delivery is never mocked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{
    email_plugin, free_port, host_with, smtp_mail, test_mail, Mode, SmtpSink, TestHost,
};
use host_harness::storage::{HostStore, MemoryStore, OutboxCounts, SqliteStore};

const WAIT: Duration = Duration::from_secs(20);

fn smtp_host(port: u16, store: Arc<dyn HostStore>) -> TestHost {
    host_with(vec![email_plugin(Mode::Cdylib)], store, move |cfg| {
        cfg.mail = smtp_mail("127.0.0.1", port);
    })
}

fn by_message_id(sink: &SmtpSink, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sink.wait_for(n, WAIT) {
        *seen.entry(m.message_id).or_insert(0) += 1;
    }
    seen
}

fn counts(h: &TestHost) -> OutboxCounts {
    h.store.outbox_counts().unwrap()
}

/// Advances the host clock past every scheduled retry and waits for the workers.
fn next_round(h: &TestHost) {
    h.clock.advance(10 * 60 * 1000);
    assert!(h.ex.mail.wait_idle(WAIT));
}

#[test]
fn server_down_at_enqueue_then_up_delivers_everything_once() {
    let port = free_port();
    let h = smtp_host(port, Arc::new(MemoryStore::new()));
    for i in 0..10 {
        h.ex.mail
            .enqueue(&test_mail(&format!("down-{i}"), "someone@example.com"))
            .unwrap();
    }
    assert!(h.ex.mail.wait_idle(WAIT));
    let c = counts(&h);
    assert_eq!(
        (c.pending, c.sent),
        (10, 0),
        "connection refused: all wait for a retry"
    );
    let Some(sink) = SmtpSink::start_with(Some(port), &[]) else {
        return;
    };
    next_round(&h);
    let seen = by_message_id(&sink, 10);
    assert_eq!(seen.len(), 10);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(counts(&h).sent, 10);
    assert_eq!(h.events("email_sent").len(), 10);
}

#[test]
fn temporary_4xx_is_retried_and_delivered_once() {
    let Some(sink) = SmtpSink::start_with(None, &["--fail-first", "2", "--fail-code", "451"])
    else {
        return;
    };
    let h = smtp_host(sink.port, Arc::new(MemoryStore::new()));
    h.ex.mail
        .enqueue(&test_mail("busy", "someone@example.com"))
        .unwrap();
    assert!(h.ex.mail.wait_idle(WAIT));
    assert_eq!(counts(&h).pending, 1, "first 451: scheduled again");
    next_round(&h);
    assert_eq!(counts(&h).pending, 1, "second 451: scheduled again");
    next_round(&h);
    let seen = by_message_id(&sink, 1);
    assert_eq!(seen.get("busy@test"), Some(&1));
    assert_eq!(counts(&h).sent, 1);
    assert_eq!(h.events("email_sent")[0]["attempts"], 3);
}

#[test]
fn permanent_5xx_is_a_dead_letter_and_others_go_through() {
    let Some(sink) = SmtpSink::start_with(None, &["--reject-rcpt", "nobody"]) else {
        return;
    };
    let h = smtp_host(sink.port, Arc::new(MemoryStore::new()));
    h.ex.mail
        .enqueue(&test_mail("bad", "nobody@example.com"))
        .unwrap();
    for i in 0..5 {
        h.ex.mail
            .enqueue(&test_mail(&format!("good-{i}"), "someone@example.com"))
            .unwrap();
    }
    assert!(h.ex.mail.wait_idle(WAIT));
    let seen = by_message_id(&sink, 5);
    assert_eq!(seen.len(), 5);
    assert!(!seen.contains_key("bad@test"));
    assert_eq!(
        counts(&h),
        OutboxCounts {
            pending: 0,
            sending: 0,
            sent: 5,
            dead: 1
        }
    );
    let failed = h.events("email_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["message_id"], "<bad@test>");
    assert_eq!(failed[0]["attempts"], 1, "no retry for a permanent failure");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("550"),
        "{failed:?}"
    );
}

#[test]
fn transient_failures_stop_after_the_attempt_limit() {
    let port = free_port();
    let h = smtp_host(port, Arc::new(MemoryStore::new()));
    h.ex.mail
        .enqueue(&test_mail("never", "someone@example.com"))
        .unwrap();
    for _ in 0..8 {
        next_round(&h);
    }
    assert_eq!(counts(&h).dead, 1);
    assert_eq!(h.events("email_failed")[0]["attempts"], 8);
}

#[test]
fn queued_mail_survives_a_host_restart_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.db");
    let port = free_port();
    {
        let h = smtp_host(port, Arc::new(SqliteStore::open(&db).unwrap()));
        for i in 0..20 {
            h.ex.mail
                .enqueue(&test_mail(&format!("durable-{i}"), "someone@example.com"))
                .unwrap();
        }
        // Enqueuing the same Message-ID again adds nothing.
        h.ex.mail
            .enqueue(&test_mail("durable-0", "someone@example.com"))
            .unwrap();
        assert!(h.ex.mail.wait_idle(WAIT));
        assert_eq!(counts(&h).pending, 20);
    } // host stops with the server still down
    let Some(sink) = SmtpSink::start_with(Some(port), &[]) else {
        return;
    };
    let h = smtp_host(port, Arc::new(SqliteStore::open(&db).unwrap()));
    next_round(&h);
    let seen = by_message_id(&sink, 20);
    assert_eq!(seen.len(), 20);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(counts(&h).sent, 20);
}
