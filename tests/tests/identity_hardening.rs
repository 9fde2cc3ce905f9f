//! Who gets mail: username shadowing, rate limits that spelling variants cannot
//! multiply, per-user and per-session caps, and prompts that accept only what the
//! mailer can deliver. Through the loaded cdylib on the reference flows.

use e2e_tests::{host, Mode, TestHost};
use host_harness::flow::client::FlowClient;
use host_harness::flow::Session;
use host_harness::storage::NewUser;
use serde_json::{json, Value};

const MODE: Mode = Mode::Cdylib;

fn enroll(h: &TestHost, username: &str, email: &str) -> Value {
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    c.get();
    c.post(json!({
        "username": username, "name": "Someone", "email": email,
        "password": "pw 123456", "password_repeat": "pw 123456",
    }))
}

fn recover_mails_to(h: &TestHost, uid: &str) -> Vec<String> {
    let before = h.mails().len();
    let mut c = FlowClient::open(&h.ex, "recover", "");
    c.get();
    let v = c.post(json!({"uid_field": uid}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    h.mails()[before..].iter().map(|m| m.to.clone()).collect()
}

#[test]
fn a_username_cannot_shadow_an_earlier_users_email() {
    let h = host(MODE, |_| {});
    h.store
        .create_user(&NewUser {
            username: "victim".into(),
            email: "victim@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let v = enroll(&h, "victim@example.com", "attacker@evil.test");
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(v["error_message"], "This username cannot be used.");
    assert!(h
        .store
        .users()
        .unwrap()
        .iter()
        .all(|u| u.email != "attacker@evil.test"));
    assert_eq!(
        recover_mails_to(&h, "victim@example.com"),
        ["victim@example.com"]
    );
}

#[test]
fn an_email_cannot_take_an_earlier_users_username() {
    let h = host(MODE, |_| {});
    // The attacker comes first, with a username that looks like the victim's address.
    let v = enroll(&h, "victim@example.com", "attacker@evil.test");
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    // The victim cannot then register that address, so no account of theirs is
    // ever identified through the attacker's username.
    let v = enroll(&h, "victim", "Victim@Example.com");
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(v["error_message"], "This email address cannot be used.");
    assert!(h.store.find_user("victim").unwrap().is_none());
    // Nor can an existing user change their email to it.
    let other = h
        .store
        .create_user(&NewUser {
            username: "other".into(),
            email: "other@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let mut c = FlowClient::open(&h.ex, "email-change", "");
    c.session.user_id = other.id.clone();
    c.get();
    let v = c.post(json!({"email": "victim@example.com"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    // The new address is written only after verification: confirm the link.
    let link = h.mails().last().unwrap().link().unwrap();
    let mut b = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    let t = b.get()["token"].clone();
    let v = b.post(json!({"token": t}));
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(v["error_message"], "This email address cannot be used.");
    let u = h.store.user(other.id.as_deref().unwrap()).unwrap().unwrap();
    assert_eq!(u.email, "other@example.com");
}

/// A signed-in user asks for email changes to each of `addresses` in turn; how many
/// mails arrived, and the messages of the last attempt.
fn change_email_to(h: &TestHost, user_id: &str, addresses: &[String]) -> (usize, Vec<String>) {
    let before = h.mails().len();
    let mut session = Session {
        user_id: Some(user_id.to_string()),
        ..Default::default()
    };
    let mut last = Vec::new();
    for a in addresses {
        session.plan = None;
        let mut c = FlowClient::open(&h.ex, "email-change", "");
        c.session = session;
        c.get();
        let v = c.post(json!({"email": a}));
        assert_eq!(v["component"], "ak-stage-email", "{a}: {v}");
        last = v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["message"].as_str().unwrap_or("").to_string())
            .collect();
        session = c.session;
    }
    (h.mails().len() - before, last)
}

fn member(h: &TestHost) -> String {
    h.store
        .create_user(&NewUser {
            username: "member".into(),
            email: "member@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap()
        .id
        .unwrap()
}

#[test]
fn spelling_variants_of_one_mailbox_share_its_limit() {
    let h = host(MODE, |_| {});
    let id = member(&h);
    let variants: Vec<String> = [
        "jane@bücher.example",
        "jane@xn--bcher-kva.example",
        "JANE@BÜCHER.example",
        "\"jane\"@bücher.example",
        "jane+1@bücher.example",
        "jane+2@xn--bcher-kva.example",
        "Jane+news@Bücher.Example",
        "\"jane+3\"@bücher.example",
    ]
    .map(String::from)
    .to_vec();
    let (mails, last) = change_email_to(&h, &id, &variants);
    assert_eq!(mails, 5, "recovery_max_attempts for the one mailbox");
    assert!(
        last[0].starts_with("Too many account verification attempts."),
        "{last:?}"
    );
}

#[test]
fn plus_tags_count_apart_when_folding_is_off() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "email-change-verify",
            json!({"rate_limit_fold_plus_tag": false}),
        )
    });
    let id = member(&h);
    let tagged: Vec<String> = (0..7).map(|i| format!("jane+{i}@example.com")).collect();
    assert_eq!(change_email_to(&h, &id, &tagged).0, 7);
}

#[test]
fn one_user_is_capped_across_addresses() {
    let h = host(MODE, |cfg| {
        cfg.limits.mails_per_session = 0;
        TestHost::edit_stage(
            cfg,
            "email-change-verify",
            json!({"rate_limit_per_user": 4}),
        );
    });
    let id = member(&h);
    let distinct: Vec<String> = (0..6).map(|i| format!("box{i}@example.com")).collect();
    let (mails, last) = change_email_to(&h, &id, &distinct);
    assert_eq!(mails, 4);
    assert!(
        last[0].starts_with("Too many account verification attempts."),
        "{last:?}"
    );
}

#[test]
fn one_browser_session_is_capped_by_the_host() {
    let h = host(MODE, |cfg| {
        cfg.limits.mails_per_session = 3;
        TestHost::edit_stage(
            cfg,
            "email-change-verify",
            json!({"rate_limit_per_user": 0}),
        );
    });
    let id = member(&h);
    let distinct: Vec<String> = (0..5).map(|i| format!("s{i}@example.com")).collect();
    let (mails, last) = change_email_to(&h, &id, &distinct);
    assert_eq!(mails, 3);
    assert!(
        last[0].starts_with("Too many account verification attempts."),
        "{last:?}"
    );
    // A fresh session of the same user may send again.
    let (mails, _) = change_email_to(&h, &id, &["s9@example.com".to_string()]);
    assert_eq!(mails, 1);
}

#[test]
fn prompts_refuse_what_the_mailer_cannot_deliver() {
    let h = host(MODE, |_| {});
    let long = format!("{}@example.com", "a".repeat(250));
    let cases = [
        ("nul", "Nul\u{0}Name", "nul@example.com", "name"),
        ("quoted", "Q", "\"a b\"@example.com", "email"),
        ("literal", "L", "x@[127.0.0.1]", "email"),
        ("unicode", "U", "jöhn@example.com", "email"),
        ("long", "Lo", long.as_str(), "email"),
        ("ctl\u{7}", "C", "ctl@example.com", "username"),
    ];
    for (username, name, email, field) in cases {
        let mut c = FlowClient::open(&h.ex, "enroll", "");
        c.get();
        let v = c.post(json!({
            "username": username, "name": name, "email": email,
            "password": "pw 123456", "password_repeat": "pw 123456",
        }));
        assert_eq!(v["component"], "ak-stage-prompt", "{username}: {v}");
        assert!(
            v["response_errors"][field].is_array(),
            "{username}: {field} refused: {v}"
        );
    }
    assert!(h.store.users().unwrap().is_empty(), "nothing was written");
}
