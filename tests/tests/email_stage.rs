//! The email stage's outcome matrix (spec §12) and scenarios (§7, §8, §13), run
//! through the loaded cdylib on the reference host.

use std::sync::Arc;

use e2e_tests::{email_plugin, host, host_with, Mode, TestHost, BASE_URL};
use host_harness::flow::client::FlowClient;
use host_harness::flow::Session;
use host_harness::plan::{Plan, PlanEntry};
use host_harness::stages::InvalidResponseAction;
use host_harness::storage::{MemoryStore, NewUser};
use plugin_api::token::hash_key;
use serde_json::{json, Value};

const MODE: Mode = Mode::Cdylib;
const MINUTE: i64 = 60_000;

fn jane(h: &TestHost) -> plugin_api::User {
    h.store
        .create_user(&NewUser {
            username: "jane".into(),
            name: "Jane Doe".into(),
            email: "jane@example.com".into(),
            is_active: true,
            password_hash: None,
            locale: String::new(),
        })
        .unwrap()
}

fn messages(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["message"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("messages");
    v
}

/// Recovery flow up to the email stage for `uid`.
fn recover<'a>(h: &'a TestHost, uid: &str, query: &str) -> (FlowClient<'a>, Value) {
    let mut c = FlowClient::open(&h.ex, "recover", query);
    assert_eq!(c.get()["component"], "ak-stage-identification");
    let v = c.post(json!({"component": "ak-stage-identification", "uid_field": uid}));
    (c, v)
}

fn resend(c: &mut FlowClient<'_>) -> Value {
    c.post(json!({"component": "ak-stage-email"}))
}

fn post_challenge() -> Value {
    json!({
        "component": "ak-stage-email",
        "flow_info": {"title": "Reset your password", "background": "", "cancel_url": "/flows/-/cancel/", "layout": "stacked"},
        "response_errors": {"non_field_errors": [{"string": "email-sent", "code": "email-sent"}]}
    })
}

/// Opens `link` in a new browser and confirms; returns the client and the answer.
fn confirm<'a>(h: &'a TestHost, link: &str) -> (FlowClient<'a>, Value) {
    let mut b = FlowClient::open_link(&h.ex, link, Session::default()).unwrap();
    let v = b.get();
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    assert_eq!(v["header_text"], "Continue to confirm this email address.");
    assert_eq!(v["permissions"], json!([]));
    let token = v["token"].as_str().unwrap().to_string();
    let v = b.post(json!({"component": "ak-stage-consent", "token": token}));
    (b, v)
}

#[test]
fn real_user_first_get_sends_once_and_repeat_get_sends_nothing() {
    let h = host(MODE, |_| {});
    jane(&h);
    let (mut c, v) = recover(&h, "jane", "");
    assert_eq!(
        v,
        json!({"component": "ak-stage-email", "flow_info": {"title": "Reset your password", "background": "", "cancel_url": "/flows/-/cancel/", "layout": "stacked"}})
    );
    assert_eq!(c.session.plan.as_ref().unwrap().context["email_sent"], true);
    assert_eq!(h.tokens(), 1);
    let again = c.get();
    assert_eq!(again, v, "repeat GET shows the same challenge");
    assert_eq!(h.tokens(), 1, "repeat GET issues nothing");
    let mails = h.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.to, "\"Jane Doe\" <jane@example.com>");
    assert_eq!(
        m.subject, "Reset your Identity password",
        "the catalog's, default brand"
    );
    assert!(
        m.content_type.starts_with("multipart/alternative"),
        "{}",
        m.content_type
    );
    assert!(m.text.as_deref().unwrap().contains("Hi jane,"));
    assert!(m.html.as_deref().unwrap().contains("Reset Password"));
    let link = m.link().unwrap();
    assert!(
        link.starts_with(&format!("{BASE_URL}/if/flow/recover/?flow_token=")),
        "{link}"
    );
    let key = link.rsplit_once("flow_token=").unwrap().1;
    assert_eq!(key.len(), 60, "authentik's default token length");
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn post_under_the_limit_resends_with_a_new_token() {
    let h = host(MODE, |_| {});
    jane(&h);
    let (mut c, _) = recover(&h, "jane", "");
    let v = resend(&mut c);
    assert_eq!(strip(&v), post_challenge());
    assert_eq!(messages(&v), ["Email Successfully sent."]);
    assert_eq!(h.tokens(), 2);
    let mails = h.mails();
    assert_eq!(mails.len(), 2);
    assert_ne!(
        mails[0].link(),
        mails[1].link(),
        "every send has its own link"
    );
    // Messages are delivered once.
    assert!(messages(&c.get()).is_empty());
}

#[test]
fn post_over_the_limit_sends_nothing_and_says_when_to_retry() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(cfg, "recovery-email", json!({"recovery_max_attempts": 3}))
    });
    jane(&h);
    let (mut c, _) = recover(&h, "jane", ""); // send 1 (the initial send counts)
    h.clock.advance(MINUTE);
    resend(&mut c); // 2
    resend(&mut c); // 3
    let v = resend(&mut c);
    assert_eq!(strip(&v), post_challenge(), "same JSON when limited");
    assert_eq!(
        messages(&v),
        ["Too many account verification attempts. Please try again after 4 minutes."]
    );
    assert_eq!(h.tokens(), 3);
    assert_eq!(h.mails().len(), 3);
    // The oldest send leaves the 5-minute window strictly after W.
    h.clock.advance(4 * MINUTE);
    assert_eq!(messages(&resend(&mut c)), ["Email Successfully sent."]);
    assert_eq!(h.tokens(), 4);
}

#[test]
fn minutes_are_rounded_up_with_a_minimum_of_one() {
    for (window, expected) in [
        ("seconds=120", 2),
        ("seconds=299", 5),
        ("minutes=5", 5),
        ("seconds=30", 1),
    ] {
        let h = host(MODE, |cfg| {
            TestHost::edit_stage(
                cfg,
                "recovery-email",
                json!({"recovery_max_attempts": 1, "recovery_cache_timeout": window}),
            )
        });
        jane(&h);
        let (mut c, _) = recover(&h, "jane", "");
        assert_eq!(
            messages(&resend(&mut c)),
            [format!("Too many account verification attempts. Please try again after {expected} minutes.")],
            "{window}"
        );
    }
}

#[test]
fn authentik_mode_counts_resends_only_and_keys_on_the_users_email() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "recovery-email",
            json!({"recovery_max_attempts": 2, "rate_limit_initial_send": false, "rate_limit_key": "pending_user_email"}),
        )
    });
    jane(&h);
    for _ in 0..3 {
        recover(&h, "jane", ""); // restarting the flow sends every time (quirk 15.6)
    }
    let (mut c, _) = recover(&h, "jane", "");
    assert_eq!(messages(&resend(&mut c)), ["Email Successfully sent."]);
    assert_eq!(messages(&resend(&mut c)), ["Email Successfully sent."]);
    assert!(messages(&resend(&mut c))[0].starts_with("Too many"));
    assert_eq!(h.mails().len(), 6);
}

#[test]
fn restarting_the_flow_does_not_bypass_the_limit() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(cfg, "recovery-email", json!({"recovery_max_attempts": 2}))
    });
    jane(&h);
    recover(&h, "jane", "");
    recover(&h, "jane@example.com", "");
    let (c, v) = recover(&h, "JANE@example.com", "");
    assert_eq!(v["component"], "ak-stage-email");
    assert!(
        messages(&v)[0].starts_with("Too many account verification attempts."),
        "{v}"
    );
    assert_eq!(c.session.plan.as_ref().unwrap().context["email_sent"], true);
    assert_eq!(h.mails().len(), 2);
}

#[test]
fn placeholder_user_in_recovery_looks_exactly_like_a_real_one() {
    let h = host(MODE, |_| {});
    jane(&h);
    let (mut real, real_get) = recover(&h, "jane@example.com", "");
    let real_post = resend(&mut real);
    let tokens = h.tokens();
    let mails = h.mails().len();
    let (mut fake, fake_get) = recover(&h, "nobody@example.com", "");
    let fake_post = resend(&mut fake);
    assert_eq!(fake_get, real_get);
    assert_eq!(fake_post, real_post);
    assert_eq!(messages(&fake_post), ["Email Successfully sent."]);
    // The same durable work as a real send: a token and a queued mail, both decoys
    // that belong to nobody and are never delivered.
    assert_eq!(h.tokens(), tokens + 2, "a decoy token per send");
    assert_eq!(h.mails().len(), mails, "no mail for a placeholder");
    // Placeholder buckets count too (same rate limiting as a real user).
    for _ in 0..3 {
        resend(&mut fake);
    }
    assert!(messages(&resend(&mut fake))[0].starts_with("Too many"));
}

#[test]
fn placeholder_user_outside_recovery_is_a_flow_error_and_still_counted() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "recovery-email",
            json!({"recovery_max_attempts": 1, "rate_limit_initial_send": false}),
        );
        cfg.flows.push(host_harness::flow::FlowDef {
            brand: None,
            slug: "login".into(),
            title: "Log in".into(),
            designation: "authentication".into(),
            stages: vec!["recovery-identify".into(), "recovery-email".into()],
        });
    });
    let mut c = FlowClient::open(&h.ex, "login", "");
    c.get();
    let v = c.post(json!({"uid_field": "ghost"}));
    assert_eq!(v["component"], "ak-stage-flow-error");
    assert!(v["request_id"].is_string());
    assert_eq!(resend(&mut c)["component"], "ak-stage-flow-error");
    // The attempt was counted before the failure: the next POST is limited.
    let v = resend(&mut c);
    assert!(messages(&v)[0].starts_with("Too many"), "{v}");
    assert_eq!(h.tokens(), 0);
    assert_eq!(h.events("system_exception").len(), 2);
}

fn only_email_flow(cfg: &mut host_harness::config::HostConfig) {
    cfg.flows.push(host_harness::flow::FlowDef {
        brand: None,
        slug: "verify".into(),
        title: "Verify".into(),
        designation: "stage_configuration".into(),
        stages: vec!["recovery-email".into()],
    });
}

#[test]
fn no_pending_user_get_denies_and_cancels() {
    let h = host(MODE, only_email_flow);
    let mut c = FlowClient::open(&h.ex, "verify", "");
    let v = c.get();
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(v["error_message"], "Unknown error");
    assert_eq!(messages(&v), ["No pending user."]);
    assert!(c.session.plan.is_none(), "flow cancelled");
}

#[test]
fn no_pending_user_post_anonymous_is_a_flow_error() {
    let h = host(MODE, only_email_flow);
    let mut c = FlowClient::open(&h.ex, "verify", "");
    let v = resend(&mut c);
    assert_eq!(v["component"], "ak-stage-flow-error");
}

#[test]
fn no_pending_user_post_signed_in_counts_under_the_requester() {
    let h = host(MODE, |cfg| {
        only_email_flow(cfg);
        TestHost::edit_stage(cfg, "recovery-email", json!({"recovery_max_attempts": 1}));
    });
    let u = jane(&h);
    let mut s = Session {
        user_id: u.id.clone(),
        ..Default::default()
    };
    s.plan = Some(Plan {
        flow_slug: "verify".into(),
        stages: vec![PlanEntry::Stage {
            name: "recovery-email".into(),
        }],
        context: Default::default(),
    });
    let mut c = FlowClient::open_link(&h.ex, &format!("{BASE_URL}/if/flow/verify/"), s).unwrap();
    let v = resend(&mut c);
    assert_eq!(v["component"], "ak-stage-email");
    assert_eq!(messages(&v), ["No pending user."]);
    assert!(
        messages(&resend(&mut c))[0].starts_with("Too many"),
        "counted under jane's email"
    );
    assert_eq!(h.tokens(), 0);
}

#[test]
fn pending_user_without_email_is_a_flow_error_without_orphan_token() {
    let h = host(MODE, |_| {});
    h.store
        .create_user(&NewUser {
            username: "noemail".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let (mut c, v) = recover(&h, "noemail", "");
    assert_eq!(v["component"], "ak-stage-flow-error");
    assert_eq!(resend(&mut c)["component"], "ak-stage-flow-error");
    assert_eq!(h.tokens(), 0, "no orphan token (authentik leaves one)");
    assert_eq!(h.mails().len(), 0);
}

#[test]
fn template_syntax_error_is_a_configuration_error_event_and_access_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.html"), "<p>fine at start</p>").unwrap();
    let d = dir.path().to_string_lossy().to_string();
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "recovery-email",
            json!({"custom_templates_dir": d, "template": "broken.html"}),
        )
    });
    // Broken after the host started (a broken file at start is refused: see
    // `a_broken_custom_template_is_refused_at_check_naming_file_and_line`).
    std::fs::write(dir.path().join("broken.html"), "<p>\n{% if %}</p>").unwrap();
    jane(&h);
    let (mut c, v) = recover(&h, "jane", "next=%2Fapp");
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(v["error_message"], "Unknown error");
    assert!(c.session.plan.is_none());
    let ev = h.events("configuration_error");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["message"],
        "Exception occurred while rendering E-mail template"
    );
    assert_eq!(ev[0]["template"], "broken.html");
    assert_eq!(ev[0]["line"], 2);
    assert_eq!(ev[0]["exception"]["type"], "TemplateSyntaxError");
    assert_eq!(ev[0]["http_request"]["args"]["next"], "/app");
    assert_eq!(h.tokens(), 0, "no orphan token");
    // On POST the same error is a flow error (spec [U]).
    let mut ctx = serde_json::Map::new();
    ctx.insert(
        "pending_user".into(),
        serde_json::to_value(h.store.find_user("jane").unwrap()).unwrap(),
    );
    ctx.insert("email_sent".into(), json!(true));
    c.session.plan = Some(Plan {
        flow_slug: "recover".into(),
        stages: vec![PlanEntry::Stage {
            name: "recovery-email".into(),
        }],
        context: ctx,
    });
    assert_eq!(resend(&mut c)["component"], "ak-stage-flow-error");
    assert_eq!(h.events("configuration_error").len(), 2);
    assert_eq!(h.tokens(), 0);
}

#[test]
fn restart_action_restarts_the_flow_instead_of_resending() {
    let h = host(MODE, |cfg| {
        let s = cfg
            .stages
            .iter_mut()
            .find(|s| s.name == "recovery-email")
            .unwrap();
        s.invalid_response_action = InvalidResponseAction::Restart;
    });
    jane(&h);
    let (mut c, _) = recover(&h, "jane", "");
    let v = resend(&mut c);
    assert_eq!(v["component"], "ak-stage-identification");
    assert_eq!(h.tokens(), 1, "nothing sent by the POST");
}

#[test]
fn smtp_failure_still_says_sent_and_keeps_the_mail_for_a_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "recovery-email",
            json!({"use_global_settings": false, "host": "127.0.0.1", "port": port, "timeout": 2}),
        )
    });
    jane(&h);
    let (mut c, v) = recover(&h, "jane", "");
    assert_eq!(v["component"], "ak-stage-email");
    assert_eq!(messages(&resend(&mut c)), ["Email Successfully sent."]);
    assert!(h.ex.mail.wait_idle(std::time::Duration::from_secs(30)));
    assert!(h.events("email_sent").is_empty());
    let c = h.store.outbox_counts().unwrap();
    assert_eq!(
        (c.pending, c.dead),
        (2, 0),
        "connection refused is transient: both wait for a retry"
    );
}

#[test]
fn valid_link_confirms_activates_and_revokes_older_links() {
    let h = host(MODE, |_| {});
    let mut c = FlowClient::open(&h.ex, "enroll", "next=%2Fwelcome");
    c.get();
    let v = c.post(json!({"username": "sam", "name": "Sam", "email": "sam@example.com", "password": "pw-123456", "password_repeat": "pw-123456"}));
    assert_eq!(v["component"], "ak-stage-email");
    assert!(!h.store.find_user("sam").unwrap().unwrap().is_active);
    resend(&mut c);
    let mails = h.mails();
    let (old, new) = (mails[0].link().unwrap(), mails[1].link().unwrap());
    assert!(new.contains("next=%2Fwelcome&flow_token="), "{new}");
    let (b, v) = confirm(&h, &new);
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    assert_eq!(v["to"], "/welcome");
    assert_eq!(
        messages(&v),
        ["Successfully verified Email.", "Successfully logged in!"]
    );
    let sam = h.store.find_user("sam").unwrap().unwrap();
    assert!(sam.is_active, "activated in the database");
    assert_eq!(b.session.user_id, sam.id);
    assert_eq!(h.tokens(), 0, "used token deleted, the older one revoked");
    // The older link now starts the flow normally, with no message.
    let v = FlowClient::open_link(&h.ex, &old, Session::default())
        .unwrap()
        .get();
    assert_eq!(v["component"], "ak-stage-prompt");
    assert!(messages(&v).is_empty());
}

#[test]
fn authentik_mode_keeps_older_links_valid() {
    let h = host(MODE, |cfg| {
        TestHost::edit_stage(
            cfg,
            "recovery-email",
            json!({"revoke_previous_tokens": false}),
        )
    });
    jane(&h);
    let (mut c, _) = recover(&h, "jane", "");
    resend(&mut c);
    let mails = h.mails();
    let (_, v) = confirm(&h, &mails[1].link().unwrap());
    assert_eq!(v["component"], "ak-stage-prompt");
    let (_, v) = confirm(&h, &mails[0].link().unwrap());
    assert_eq!(
        v["component"], "ak-stage-prompt",
        "quirk 15.4: link 1 still runs the flow"
    );
}

#[test]
fn unknown_and_expired_links_start_the_flow_normally() {
    let h = host(MODE, |_| {});
    jane(&h);
    recover(&h, "jane", "");
    let link = h.mails()[0].link().unwrap();
    let bogus = format!("{BASE_URL}/if/flow/recover/?flow_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let v = FlowClient::open_link(&h.ex, &bogus, Session::default())
        .unwrap()
        .get();
    assert_eq!(v["component"], "ak-stage-identification");
    assert!(messages(&v).is_empty());
    // Valid until token_expiry + 1 minute.
    h.clock.advance(31 * MINUTE - 1000);
    let v = FlowClient::open_link(&h.ex, &link, Session::default())
        .unwrap()
        .get();
    assert_eq!(v["component"], "ak-stage-consent");
    h.clock.advance(2000);
    let v = FlowClient::open_link(&h.ex, &link, Session::default())
        .unwrap()
        .get();
    assert_eq!(v["component"], "ak-stage-identification");
    assert_eq!(h.tokens(), 0, "expired row deleted on lookup");
}

#[test]
fn link_consumed_elsewhere_then_reloaded_says_already_used() {
    let h = host(MODE, |_| {});
    jane(&h);
    recover(&h, "jane", "");
    let link = h.mails()[0].link().unwrap();
    let mut a = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    assert_eq!(a.get()["component"], "ak-stage-consent");
    let (_, v) = confirm(&h, &link);
    assert_eq!(v["component"], "ak-stage-prompt");
    let v = a.get();
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(
        v["error_message"],
        "Link was already used, please request a new link."
    );
    assert!(a.session.plan.is_none());
}

#[test]
fn two_browsers_confirming_the_same_link_only_one_proceeds() {
    let h = host(MODE, |_| {});
    jane(&h);
    recover(&h, "jane", "");
    let link = h.mails()[0].link().unwrap();
    let mut a = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    let mut b = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    let ta = a.get()["token"].as_str().unwrap().to_string();
    let tb = b.get()["token"].as_str().unwrap().to_string();
    let va = a.post(json!({"token": ta}));
    let vb = b.post(json!({"token": tb}));
    assert_eq!(va["component"], "ak-stage-prompt");
    assert_eq!(
        vb["error_message"],
        "Link was already used, please request a new link."
    );
}

#[test]
fn wrong_confirmation_token_shows_the_prompt_again() {
    let h = host(MODE, |_| {});
    jane(&h);
    recover(&h, "jane", "");
    let link = h.mails()[0].link().unwrap();
    let mut a = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    a.get();
    let v = a.post(json!({"token": "not-it"}));
    assert_eq!(v["component"], "ak-stage-consent");
    assert_eq!(h.tokens(), 1, "not consumed");
}

#[test]
fn token_user_different_from_pending_user_is_denied() {
    let h = host(MODE, |_| {});
    jane(&h);
    let other = h
        .store
        .create_user(&NewUser {
            username: "eve".into(),
            email: "eve@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    recover(&h, "jane", "");
    let link = h.mails()[0].link().unwrap();
    let key = link.rsplit_once("flow_token=").unwrap().1;
    let mut t = h.store.token(&hash_key(key), 0).unwrap().unwrap();
    h.store.delete_token(&t.key_hash).unwrap();
    t.token.user_id = other.id.unwrap();
    h.store.insert_token(&t).unwrap();
    let (_, v) = confirm(&h, &link);
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(v["error_message"], "Unknown error");
}

#[test]
fn restore_is_bound_to_the_issuing_stage() {
    for (any, expected) in [(false, "ak-stage-email"), (true, "ak-stage-prompt")] {
        let h = host(MODE, |cfg| {
            let mut second = cfg
                .stages
                .iter()
                .find(|s| s.name == "recovery-email")
                .unwrap()
                .clone();
            second.name = "second-email".into();
            second.config["restore_any_stage"] = json!(any);
            cfg.stages.push(second);
            let f = cfg.flows.iter_mut().find(|f| f.slug == "recover").unwrap();
            f.stages.insert(2, "second-email".into());
        });
        jane(&h);
        recover(&h, "jane", "");
        let link = h.mails()[0].link().unwrap();
        let (_, v) = confirm(&h, &link);
        assert_eq!(v["component"], expected, "restore_any_stage={any}: {v}");
        let sent = if any { 1 } else { 2 };
        assert_eq!(h.mails().len(), sent);
    }
}

#[test]
fn email_override_sends_to_the_new_address_and_writes_it_on_success() {
    let h = host(MODE, |_| {});
    let u = jane(&h);
    let mut c = FlowClient::open_link(
        &h.ex,
        &format!("{BASE_URL}/if/flow/email-change/"),
        Session {
            user_id: u.id.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.get()["component"], "ak-stage-prompt");
    let v = c.post(json!({"email": "jane.new@example.org"}));
    assert_eq!(v["component"], "ak-stage-email");
    let mails = h.mails();
    assert_eq!(mails[0].to, "\"Jane Doe\" <jane.new@example.org>");
    let (_, v) = confirm(&h, &mails[0].link().unwrap());
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    assert_eq!(
        h.store
            .user(u.id.as_deref().unwrap())
            .unwrap()
            .unwrap()
            .email,
        "jane.new@example.org"
    );
}

#[test]
fn secrets_stay_out_of_storage_events_and_logs() {
    let h = host(MODE, |_| {});
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    c.get();
    c.post(json!({"username": "kim", "name": "Kim", "email": "kim@example.com", "password": "hunter2-long", "password_repeat": "hunter2-long"}));
    let link = h.mails()[0].link().unwrap();
    let key = link.rsplit_once("flow_token=").unwrap().1.to_string();
    let t = h
        .store
        .token(&hash_key(&key), 0)
        .unwrap()
        .expect("stored by hash");
    let stored = serde_json::to_string(&t.plan).unwrap();
    assert!(!stored.contains(&key), "the key is not in the snapshot");
    assert!(
        !stored.contains("hunter2-long"),
        "written passwords are not in the snapshot"
    );
    let sent = h.events("email_sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["message"], "Email to Kim <kim@example.com> sent");
    let all = serde_json::to_string(
        &h.store
            .events(None)
            .unwrap()
            .iter()
            .map(|e| e.context.clone())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!all.contains(&key) && !all.contains("flow_token"), "{all}");
}

#[test]
fn a_host_without_the_rlib_runs_the_same_as_with_it() {
    // Parity: the same scenario in-process and through the ABI gives the same JSON.
    let run = |mode| {
        let h = host(mode, |_| {});
        jane(&h);
        let (mut c, v1) = recover(&h, "jane", "a=1");
        let v2 = resend(&mut c);
        (v1, v2, h.tokens(), h.mails().len())
    };
    assert_eq!(run(Mode::Cdylib), run(Mode::Rlib));
}

#[test]
fn malformed_plan_context_is_a_clear_flow_error() {
    let h = host(MODE, only_email_flow);
    let mut ctx = serde_json::Map::new();
    ctx.insert("pending_user".into(), json!("not a user object"));
    let s = Session {
        plan: Some(Plan {
            flow_slug: "verify".into(),
            stages: vec![PlanEntry::Stage {
                name: "recovery-email".into(),
            }],
            context: ctx,
        }),
        ..Default::default()
    };
    let mut c = FlowClient::open_link(&h.ex, &format!("{BASE_URL}/if/flow/verify/"), s).unwrap();
    assert_eq!(c.get()["component"], "ak-stage-flow-error");
    let ev = h.events("system_exception");
    assert!(
        ev[0]["error"].as_str().unwrap().contains("pending_user"),
        "{ev:?}"
    );
}

#[test]
fn sqlite_backend_runs_the_recovery_flow() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(host_harness::storage::SqliteStore::open(&dir.path().join("h.db")).unwrap());
    let h = host_with(vec![email_plugin(MODE)], store, |_| {});
    jane(&h);
    recover(&h, "jane", "");
    let (_, v) = confirm(&h, &h.mails()[0].link().unwrap());
    assert_eq!(v["component"], "ak-stage-prompt");
    let _ = MemoryStore::new();
}

/// The token and the mail carrying its link are one write: when the outbox refuses
/// the mail, no token is left that nobody was sent.
#[test]
fn a_send_whose_outbox_write_fails_leaves_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let store = Arc::new(host_harness::storage::SqliteStore::open(&db).unwrap());
    let h = host_with(vec![email_plugin(MODE)], store, |_| {});
    jane(&h);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER outbox_full BEFORE INSERT ON outbox
             BEGIN SELECT RAISE(ABORT, 'outbox full'); END;",
        )
        .unwrap();
    let (_, v) = recover(&h, "jane", "");
    assert_eq!(v["component"], "ak-stage-flow-error", "{v}");
    assert_eq!(h.tokens(), 0, "a token was stored without its mail");
    assert_eq!(h.store.outbox_counts().unwrap().pending, 0);
}

#[test]
fn absolute_next_is_refused_at_the_end_of_the_flow() {
    let h = host(MODE, |_| {});
    let mut c = FlowClient::open(&h.ex, "enroll", "next=https%3A%2F%2Fevil.example%2F");
    c.get();
    c.post(json!({"username": "max", "name": "Max", "email": "max@example.com", "password": "pw-123456", "password_repeat": "pw-123456"}));
    let link = h.mails()[0].link().unwrap();
    assert!(
        link.contains("next=https%3A%2F%2Fevil.example%2F&flow_token="),
        "query propagated: {link}"
    );
    let (_, v) = confirm(&h, &link);
    assert_eq!(v["component"], "xak-flow-redirect");
    assert_eq!(v["to"], "/");
    assert!(
        messages(&v).contains(&"Invalid next URL".to_string()),
        "{v}"
    );
}

#[test]
fn unknown_flow_is_not_found() {
    let h = host(MODE, |_| {});
    assert_eq!(
        FlowClient::open(&h.ex, "nope", "").get()["component"],
        "404"
    );
}
