//! Failures outside the request path: a delivery worker that panics is resumed, and
//! a PostgreSQL row that does not decode is an error, not a panic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{email_plugin, host_with, postgres_url, smtp_mail, test_mail, unique_name};
use e2e_tests::{Mode, SmtpSink};
use host_harness::mail::QueuedMail;
use host_harness::storage::{
    Claim, Event, Finish, MemoryStore, NewUser, OutboxCounts, OutboxRow, OutboxStore,
    PostgresStore, SessionStore, Store, StoreError, StoredToken,
};
use plugin_api::{FlowToken, User};

/// A store whose first `outbox_claim` calls panic; everything else is `inner`'s.
struct PanicOnClaim {
    inner: MemoryStore,
    panics_left: AtomicUsize,
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for PanicOnClaim {
    delegate! {
        create_user(u: &NewUser) -> Result<User, StoreError>;
        user(id: &str) -> Result<Option<User>, StoreError>;
        find_user(i: &str) -> Result<Option<User>, StoreError>;
        users() -> Result<Vec<User>, StoreError>;
        set_active(id: &str, a: bool) -> Result<bool, StoreError>;
        set_email(id: &str, e: &str) -> Result<bool, StoreError>;
        set_password_hash(id: &str, h: &str) -> Result<bool, StoreError>;
        password_hash(id: &str) -> Result<Option<String>, StoreError>;
        insert_token(t: &StoredToken) -> Result<(), StoreError>;
        token(k: &str, now: i64) -> Result<Option<StoredToken>, StoreError>;
        consume_token(k: &str, now: i64) -> Result<Option<FlowToken>, StoreError>;
        delete_token(k: &str) -> Result<bool, StoreError>;
        revoke_tokens(u: &str, s: &str) -> Result<u64, StoreError>;
        token_count() -> Result<u64, StoreError>;
        token_sweep(now: i64, limit: usize) -> Result<u64, StoreError>;
        add_event(e: &Event) -> Result<(), StoreError>;
        events(a: Option<&str>) -> Result<Vec<Event>, StoreError>;
    }
}

impl OutboxStore for PanicOnClaim {
    delegate! {
        outbox_push(m: &QueuedMail, now: i64, due: i64) -> Result<bool, StoreError>;
        outbox_push_with_token(t: &StoredToken, m: &QueuedMail, now: i64, due: i64) -> Result<bool, StoreError>;
        outbox_finish(done: Finish<'_>) -> Result<(), StoreError>;
        outbox_counts() -> Result<OutboxCounts, StoreError>;
        outbox_next_due() -> Result<Option<i64>, StoreError>;
        outbox_sweep_decoys(before: i64, limit: usize) -> Result<u64, StoreError>;
    }
    fn outbox_claim(&self, claim: Claim) -> Result<Vec<OutboxRow>, StoreError> {
        let left = self.panics_left.load(Ordering::SeqCst);
        if left > 0 && self.panics_left.fetch_sub(1, Ordering::SeqCst) > 0 {
            panic!("deliberate panic in outbox_claim");
        }
        self.inner.outbox_claim(claim)
    }
}

impl SessionStore for PanicOnClaim {
    delegate! {
        session_load(k: &str) -> Result<Option<String>, StoreError>;
        session_save(k: &str, d: &str, now: i64) -> Result<(), StoreError>;
        session_delete(k: &str) -> Result<(), StoreError>;
        session_sweep(before: i64, limit: usize) -> Result<u64, StoreError>;
    }
}

#[test]
fn a_panicking_delivery_worker_is_resumed_and_the_mail_still_goes_out() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let store = Arc::new(PanicOnClaim {
        inner: MemoryStore::new(),
        panics_left: AtomicUsize::new(3),
    });
    let port = sink.port;
    let h = host_with(
        vec![email_plugin(Mode::Cdylib)],
        store.clone(),
        move |cfg| {
            cfg.mail = smtp_mail("127.0.0.1", port);
            // One worker: if it died, nothing would ever be delivered.
            cfg.mail.outbox.workers = 1;
        },
    );
    h.ex.mail
        .enqueue(&test_mail("after-panic", "someone@example.com"))
        .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(
        got.len(),
        1,
        "the mail was delivered after the worker panicked"
    );
    assert!(h.ex.mail.worker_restarts() >= 3);
    // Counted for the operator too (the registry is the process's: at least ours).
    let restarts = host_harness::system::metrics::encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix("host_mail_worker_restarts_total ")?
                .parse::<f64>()
                .ok()
        });
    assert!(restarts.is_some_and(|n| n >= 3.0), "{restarts:?}");
    let ev = h.events("system_exception");
    assert!(
        ev.iter().any(|e| e["stage"] == "mail"
            && e["error"]
                .as_str()
                .is_some_and(|s| s.contains("deliberate panic"))),
        "{ev:?}"
    );
}

#[test]
fn an_undecodable_postgres_row_is_an_error_not_a_panic() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let schema = unique_name("corrupt");
    let store = PostgresStore::open(&pg, Some(&schema)).unwrap();
    let u = store
        .create_user(&NewUser {
            username: "broken".into(),
            ..Default::default()
        })
        .unwrap();
    let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "ALTER TABLE \"{schema}\".users ALTER COLUMN name DROP NOT NULL;
         UPDATE \"{schema}\".users SET name = NULL"
    ))
    .unwrap();
    let id = u.id.unwrap();
    for r in [store.user(&id), store.find_user("broken")] {
        match r {
            Err(StoreError::Corrupt(detail)) => assert!(detail.contains("column 2"), "{detail}"),
            other => panic!("expected corrupt data, got {other:?}"),
        }
    }
    assert!(matches!(store.users(), Err(StoreError::Corrupt(_))));
    drop(store);
    let _ = c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}

/// A row SQLite cannot decode is corrupt data, not an outage: the store says
/// `Corrupt` (not transient), and a plugin gets `HostError::Internal`, not
/// `Unavailable` (which invites a retry that cannot help). An unreachable
/// PostgreSQL stays transient and `Unavailable`.
#[test]
fn a_corrupt_row_is_internal_and_an_outage_is_transient() {
    use host_harness::stages::host::store_error;
    use host_harness::storage::StoreErrorKind;
    use plugin_api::HostError;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = host_harness::storage::SqliteStore::open(&path).unwrap();
    let id = store
        .create_user(&NewUser {
            username: "odd".into(),
            ..Default::default()
        })
        .unwrap()
        .id
        .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE users SET is_active = 'maybe'", [])
        .unwrap();
    let err = store.user(&id).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert!(!err.is_transient());
    assert!(
        matches!(store_error(err), HostError::Internal(_)),
        "corrupt data reaches a plugin as Internal"
    );

    let down = host_harness::storage::PostgresStore::open(
        &format!(
            "postgres://postgres@127.0.0.1:{}/test",
            e2e_tests::free_port()
        ),
        None,
    );
    let err = down.err().expect("nothing listens there");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.is_transient());
    assert!(matches!(store_error(err), HostError::Unavailable(_)));
}
