//! The backend conformance suite: one set of checks every storage and cache backend
//! must pass. Each backend's tests call [`check_store`] or [`check_cache`] on a fresh
//! instance, so a new backend is checked by adding one line.

use std::sync::Arc;

use plugin_api::{FlowToken, RateLimit};

use crate::cache::Cache;
use crate::mail::{QueuedMail, RouteRef};
use crate::storage::{
    Claim, Event, Finish, HostStore, NewUser, OutboxCounts, OutboxOutcome, Store, StoreError,
    StoredToken,
};

/// Runs every storage check on a fresh, empty store. Panics on the first failure.
pub fn check_store(s: Arc<dyn HostStore>) {
    exercise(&*s);
    outbox(&*s);
    token_with_mail(&*s);
    sessions(&*s);
    consume_races(s);
}

/// Runs every cache check on a fresh, empty cache. Panics on the first failure.
pub fn check_cache(c: Arc<dyn Cache>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    c.set("k", "v", 150, now).unwrap();
    assert_eq!(c.get("k", now).unwrap().as_deref(), Some("v"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        c.get("k", now + 300).unwrap(),
        None,
        "expired after its TTL"
    );
    c.set("k", "v", 60_000, now).unwrap();
    c.set("k", "v", 0, now).unwrap();
    assert_eq!(c.get("k", now).unwrap(), None, "TTL 0 removes");

    let w = 300_000;
    for t in [0, 10_000, 20_000] {
        assert_eq!(
            c.rate_limit("rl", w, 3, now + t).unwrap(),
            RateLimit::Allowed
        );
    }
    assert_eq!(
        c.rate_limit("rl", w, 3, now + 30_000).unwrap(),
        RateLimit::Limited {
            retry_after_ms: 270_000
        }
    );
    // The first attempt leaves the window strictly after now - W.
    assert_eq!(
        c.rate_limit("rl", w, 3, now + 300_000).unwrap(),
        RateLimit::Allowed
    );
    assert!(matches!(
        c.rate_limit("rl", w, 3, now + 300_001).unwrap(),
        RateLimit::Limited { .. }
    ));
    for t in 0..5 {
        assert_eq!(
            c.rate_limit("sub", 999, 1, now + t).unwrap(),
            RateLimit::Allowed,
            "a window under 1 s keeps nothing"
        );
    }
    let allowed: usize = (0..8)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| c.rate_limit("race", 60_000, 5, now).unwrap() == RateLimit::Allowed)
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(allowed, 5, "concurrent callers never exceed the limit");
}

fn token(hash: &str, user: &str, stage: &str, expires_ms: i64) -> StoredToken {
    StoredToken {
        key_hash: hash.into(),
        token: FlowToken {
            identifier: format!("id-{hash}"),
            user_id: user.into(),
            flow_slug: "f".into(),
            stage_name: stage.into(),
            expires_ms,
            intent: "verification".into(),
        },
        revoke_on_execution: false,
        plan: serde_json::json!({"stages": []}),
    }
}

fn exercise(s: &dyn Store) {
    let u = s
        .create_user(&NewUser {
            username: "jane".into(),
            email: "Jane@Example.com".into(),
            ..Default::default()
        })
        .unwrap();
    let id = u.id.clone().unwrap();
    assert!(matches!(
        s.create_user(&NewUser {
            username: "jane".into(),
            ..Default::default()
        }),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.find_user("jane@example.com").unwrap(), Some(u.clone()));
    assert_eq!(s.find_user("jane").unwrap(), Some(u.clone()));
    assert_eq!(s.find_user("nobody").unwrap(), None);
    identities(s, &u);
    assert!(s.set_active(&id, true).unwrap());
    assert!(s.user(&id).unwrap().unwrap().is_active);
    assert!(!s.set_active("999", true).unwrap());
    assert!(s.set_password_hash(&id, "h").unwrap());
    assert_eq!(s.password_hash(&id).unwrap().as_deref(), Some("h"));

    s.insert_token(&token("a", &id, "st", 100)).unwrap();
    s.insert_token(&token("b", &id, "st", 100)).unwrap();
    s.insert_token(&token("c", &id, "other", 100)).unwrap();
    assert!(matches!(
        s.insert_token(&token("a", &id, "st", 1)),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.token("a", 50).unwrap().unwrap().plan["stages"],
        serde_json::json!([])
    );
    assert_eq!(
        s.consume_token("a", 50).unwrap().unwrap().identifier,
        "id-a"
    );
    assert_eq!(s.consume_token("a", 50).unwrap(), None);
    assert_eq!(s.token("b", 101).unwrap(), None, "expired");
    assert_eq!(s.token_count().unwrap(), 1, "expired row deleted on lookup");
    s.insert_token(&token("d", &id, "st", 100)).unwrap();
    assert_eq!(s.revoke_tokens(&id, "st").unwrap(), 1);
    assert_eq!(s.token_count().unwrap(), 1);
    assert_eq!(
        s.token_sweep(100, 10).unwrap(),
        0,
        "not expired at its instant"
    );
    assert_eq!(s.token_sweep(101, 10).unwrap(), 1);
    assert_eq!(s.token_count().unwrap(), 0);

    s.add_event(&Event {
        action: "x".into(),
        context: serde_json::json!({"a": 1}),
        at_ms: 1,
    })
    .unwrap();
    s.add_event(&Event {
        action: "y".into(),
        context: serde_json::json!({}),
        at_ms: 2,
    })
    .unwrap();
    assert_eq!(s.events(Some("x")).unwrap().len(), 1);
    assert_eq!(s.events(None).unwrap().len(), 2);
}

/// Nobody's username may be somebody else's email address, or the reverse; an
/// identifier with `@` finds the user with that email before one with that name.
fn identities(s: &dyn Store, jane: &plugin_api::User) {
    let clash = |r: Result<_, StoreError>| matches!(r, Err(StoreError::IdentityClash { .. }));
    let named = |username: &str, email: &str| NewUser {
        username: username.into(),
        email: email.into(),
        ..Default::default()
    };
    assert!(clash(s.create_user(&named("JANE@example.com", ""))));
    assert!(clash(s.create_user(&named("mallory", "JANE"))));
    let bob = s
        .create_user(&named("bob@example.org", "bob@example.org"))
        .unwrap();
    assert!(clash(s.create_user(&named("carol", "Bob@Example.org"))));
    let carol = s.create_user(&named("carol", "carol@example.org")).unwrap();
    let carol_id = carol.id.clone().unwrap();
    assert!(matches!(
        s.set_email(&carol_id, "bob@example.org"),
        Err(StoreError::IdentityClash { .. })
    ));
    assert!(s.set_email(&carol_id, "carol2@example.org").unwrap());
    assert_eq!(s.find_user("bob@example.org").unwrap(), Some(bob));
    assert_eq!(
        s.find_user("JANE@example.com").unwrap().as_ref(),
        Some(jane)
    );
}

fn consume_races(s: Arc<dyn HostStore>) {
    s.insert_token(&token("race", "1", "st", 100)).unwrap();
    let winners: usize = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.consume_token("race", 1).unwrap().is_some() as usize)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(winners, 1, "exactly one concurrent consumer gets the token");
}

fn mail(id: &str) -> QueuedMail {
    QueuedMail {
        message_id: format!("<{id}@x>"),
        envelope_from: "a@b.c".into(),
        envelope_to: vec!["d@e.f".into()],
        to_display: vec!["d@e.f".into()],
        subject: "s".into(),
        raw: b"raw bytes".to_vec(),
        route: RouteRef::Stage {
            stage: "verify".into(),
        },
        decoy: false,
        locale: String::new(),
    }
}

fn outbox(s: &dyn HostStore) {
    let decoy = QueuedMail {
        decoy: true,
        ..mail("decoy")
    };
    assert!(s.outbox_push(&decoy, 0, 0).unwrap());
    assert!(s.outbox_push(&mail("1"), 0, 0).unwrap());
    assert!(
        !s.outbox_push(&mail("1"), 0, 0).unwrap(),
        "same Message-ID is queued once"
    );
    assert!(s.outbox_push(&mail("2"), 5, 5).unwrap());
    assert_eq!(s.outbox_next_due().unwrap(), Some(0));
    let got = s
        .outbox_claim(Claim {
            now_ms: 10,
            lease_ms: 1000,
            limit: 10,
        })
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].mail, mail("1"), "the body survives the round trip");
    assert_eq!(got[0].attempts, 1);
    assert!(
        s.outbox_claim(Claim {
            now_ms: 10,
            lease_ms: 1000,
            limit: 10
        })
        .unwrap()
        .is_empty(),
        "leased rows are not claimed twice"
    );
    s.outbox_finish(Finish {
        id: got[0].id,
        outcome: &OutboxOutcome::Sent,
        event: None,
    })
    .unwrap();
    let retry = OutboxOutcome::Retry {
        at_ms: 500,
        error: "451".into(),
    };
    s.outbox_finish(Finish {
        id: got[1].id,
        outcome: &retry,
        event: None,
    })
    .unwrap();
    assert!(
        s.outbox_claim(Claim {
            now_ms: 499,
            lease_ms: 1000,
            limit: 10
        })
        .unwrap()
        .is_empty(),
        "not due yet"
    );
    let again = s
        .outbox_claim(Claim {
            now_ms: 500,
            lease_ms: 1000,
            limit: 10,
        })
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    // A worker that died: its lease runs out and the row is claimed again.
    let reclaimed = s
        .outbox_claim(Claim {
            now_ms: 1500,
            lease_ms: 1000,
            limit: 10,
        })
        .unwrap();
    assert_eq!((reclaimed.len(), reclaimed[0].attempts), (1, 3));
    let dead = OutboxOutcome::Dead {
        error: "550".into(),
    };
    let ev = Event {
        action: "email_failed".into(),
        context: serde_json::json!({}),
        at_ms: 1,
    };
    s.outbox_finish(Finish {
        id: reclaimed[0].id,
        outcome: &dead,
        event: Some(&ev),
    })
    .unwrap();
    assert!(
        !s.outbox_push(&mail("1"), 0, 0).unwrap(),
        "a delivered Message-ID is not queued again"
    );
    assert_eq!(
        s.events(Some("email_failed")).unwrap().len(),
        1,
        "event written with the outcome"
    );
    assert_eq!(
        s.outbox_counts().unwrap(),
        OutboxCounts {
            pending: 0,
            sending: 0,
            sent: 1,
            dead: 1
        },
        "decoys are never claimed nor counted"
    );
    assert_eq!(s.outbox_sweep_decoys(0, 10).unwrap(), 0, "not older than 0");
    assert_eq!(s.outbox_sweep_decoys(1, 10).unwrap(), 1);
    assert!(
        s.outbox_push(&decoy, 0, 0).unwrap(),
        "a swept decoy is gone"
    );
}

/// A token and its mail are written together, or neither is.
fn token_with_mail(s: &dyn HostStore) {
    let before = s.outbox_counts().unwrap().pending;
    let t = token("with-mail", "1", "st", 100);
    assert!(s
        .outbox_push_with_token(&t, &mail("with-token"), 0, 0)
        .unwrap());
    assert_eq!(s.token("with-mail", 0).unwrap().as_ref(), Some(&t));
    assert_eq!(s.outbox_counts().unwrap().pending, before + 1);
    assert!(
        matches!(
            s.outbox_push_with_token(&t, &mail("with-token-2"), 0, 0),
            Err(StoreError::Conflict(_))
        ),
        "a taken token fails the whole write"
    );
    assert!(
        s.outbox_push(&mail("with-token-2"), 0, 0).unwrap(),
        "the refused write queued nothing"
    );
}

fn sessions(s: &dyn HostStore) {
    assert_eq!(s.session_load("k").unwrap(), None);
    s.session_save("k", "{\"a\":1}", 1).unwrap();
    s.session_save("k", "{\"a\":2}", 2).unwrap();
    assert_eq!(s.session_load("k").unwrap().as_deref(), Some("{\"a\":2}"));
    s.session_save("old", "{}", 1).unwrap();
    assert_eq!(s.session_sweep(2, 10).unwrap(), 1, "only the older one");
    assert_eq!(s.session_load("old").unwrap(), None);
    s.session_delete("k").unwrap();
    assert_eq!(s.session_load("k").unwrap(), None);
}
