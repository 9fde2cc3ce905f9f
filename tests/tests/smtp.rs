//! Delivery through a real SMTP server (Python aiosmtpd on loopback) and the MIME
//! that arrives.

use std::time::Duration;

use e2e_tests::{host, smtp_mail, Mode, SmtpSink, TestHost};
use host_harness::config::MailConfig;
use host_harness::flow::client::FlowClient;
use host_harness::flow::Session;
use serde_json::json;

fn smtp_host(sink: &SmtpSink, stage_settings: bool) -> TestHost {
    let port = sink.port;
    host(Mode::Cdylib, move |cfg| {
        cfg.mail = smtp_mail("127.0.0.1", port);
        if stage_settings {
            TestHost::edit_stage(
                cfg,
                "enroll-verify-email",
                json!({"use_global_settings": false, "host": "127.0.0.1", "port": port, "from_address": "verify@id.example.test"}),
            );
        }
    })
}

fn enroll_through_smtp(stage_settings: bool) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let h = smtp_host(&sink, stage_settings);
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    c.get();
    let v = c.post(json!({"username": "ana", "name": "Ana Lima", "email": "ana@example.com", "password": "s3cret-pass", "password_repeat": "s3cret-pass"}));
    assert_eq!(v["component"], "ak-stage-email");
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(
        got.len(),
        1,
        "one message at the SMTP server; failures: {:?}",
        h.events("email_failed")
    );
    let m = &got[0];
    let raw = std::fs::read_to_string(&m.path).unwrap();
    let header = |name: &str| {
        raw.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("X-RcptTo"), "ana@example.com", "envelope recipient");
    let from = if stage_settings {
        "verify@id.example.test"
    } else {
        "authentik@id.example.test"
    };
    assert_eq!(header("X-MailFrom"), from, "envelope sender");
    assert_eq!(header("From"), from);
    assert_eq!(m.to, "\"Ana Lima\" <ana@example.com>");
    assert_eq!(m.subject, "Confirm your Identity account");
    assert!(
        m.content_type.starts_with("multipart/alternative"),
        "{}",
        m.content_type
    );
    assert!(m
        .text
        .as_deref()
        .unwrap()
        .contains("Just open the link below."));
    assert!(m.html.as_deref().unwrap().contains("Confirm Account"));
    assert!(!m.message_id.is_empty());
    let ev = h.events("email_sent");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["message_id"], format!("<{}>", m.message_id));
    // The link in the received mail works.
    let link = m.link().unwrap();
    let mut b = FlowClient::open_link(&h.ex, &link, Session::default()).unwrap();
    let token = b.get()["token"].as_str().unwrap().to_string();
    let v = b.post(json!({"token": token}));
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    assert!(h.store.find_user("ana").unwrap().unwrap().is_active);
}

#[test]
fn enrollment_mail_through_global_smtp_settings() {
    enroll_through_smtp(false);
}

#[test]
fn enrollment_mail_through_the_stages_own_smtp_settings() {
    enroll_through_smtp(true);
}

#[test]
fn test_email_reports_success_missing_stages_and_refusals() {
    let Some(sink) = SmtpSink::start_with(None, &["--reject-rcpt", "nobody"]) else {
        return;
    };
    let mut cfg = host_harness::config::reference_config(
        "memory://",
        "http://x",
        None,
        MailConfig::default(),
    );
    cfg.mail = smtp_mail("127.0.0.1", sink.port);
    let plugins = vec![e2e_tests::email_plugin(e2e_tests::Mode::Cdylib)];
    let line =
        host_harness::config::test_email(&cfg, &plugins, "ops@example.com", None, None).unwrap();
    assert_eq!(
        line,
        format!(
            "Email to ops@example.com sent via 127.0.0.1:{} (plain)",
            sink.port
        )
    );
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].subject, "authentik Test-Email");
    let e = host_harness::config::test_email(&cfg, &plugins, "ops@example.com", Some("nope"), None)
        .unwrap_err();
    assert_eq!(e.to_string(), "Stage 'nope' does not exist");
    let e = host_harness::config::test_email(&cfg, &plugins, "nobody@example.com", None, None)
        .unwrap_err();
    assert!(e.to_string().starts_with("permanent failure"), "{e}");
    // A stage with its own settings pointing at a closed port.
    TestHost::edit_stage(
        &mut cfg,
        "recovery-email",
        json!({"use_global_settings": false, "host": "127.0.0.1", "port": e2e_tests::free_port()}),
    );
    let e = host_harness::config::test_email(
        &cfg,
        &plugins,
        "ops@example.com",
        Some("recovery-email"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("transient failure"), "{e}");
}

#[test]
fn hostile_and_non_ascii_display_names_arrive_encoded_without_injected_headers() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let h = smtp_host(&sink, false);
    let hostile = "Zoë Ünïcode\r\nBcc: attacker@evil.example";
    // The prompt refuses line breaks in a name...
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    c.get();
    let v = c.post(json!({"username": "zoe", "name": hostile, "email": "zoe@bücher.example", "password": "s3cret-pass", "password_repeat": "s3cret-pass"}));
    assert!(v["response_errors"]["name"].is_array(), "{v}");
    // ...and a name that reached the store another way is still sent harmlessly.
    h.store
        .create_user(&host_harness::storage::NewUser {
            username: "zoe".into(),
            name: hostile.into(),
            email: "zoe@bücher.example".into(),
            is_active: true,
            password_hash: None,
            locale: String::new(),
        })
        .unwrap();
    let mut c = FlowClient::open(&h.ex, "recover", "");
    c.get();
    let v = c.post(json!({"uid_field": "zoe"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    let raw = std::fs::read_to_string(&got[0].path).unwrap();
    assert!(
        !raw.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{raw}"
    );
    assert!(
        raw.contains("X-RcptTo: zoe@xn--bcher-kva.example"),
        "punycoded envelope: {raw}"
    );
    assert!(
        got[0].to.contains("=?utf-8?"),
        "RFC 2047 name: {}",
        got[0].to
    );
    assert!(
        raw.lines().all(|l| l.is_ascii()),
        "the message on the wire is ASCII"
    );
}
