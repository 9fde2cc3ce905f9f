//! `serve --clock manual` against a running host: a link expires once the clock
//! passes its token's expiry, the email stage's resend limit slides with the clock,
//! and the manual clock is refused off loopback and absent without the flag.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::{free_port, host_harness_bin, Served};
use host_harness::flow::executor_url;
use host_harness::mail::maildir;
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// `POST /-/test/clock {"advance_ms": ms}`; the clock's new time.
fn advance(base: &str, ms: u64) -> i64 {
    let v: Value = agent()
        .post(&format!("{base}/-/test/clock"))
        .send_json(json!({ "advance_ms": ms }))
        .expect("move the clock")
        .into_json()
        .unwrap();
    v["now_ms"].as_i64().expect("now_ms")
}

/// Enrols `username` up to the email stage (which queues the mail); the agent
/// that holds that session.
fn enrol_to_email_stage(base: &str, username: &str) -> ureq::Agent {
    let a = agent();
    let api = format!("{base}{}", executor_url("enroll", ""));
    a.get(&api).call().unwrap();
    let prompt = json!({"component": "ak-stage-prompt", "username": username, "name": "Clock",
        "email": format!("{username}@example.com"), "password": "pw-123456", "password_repeat": "pw-123456"});
    a.post(&api).send_json(prompt).unwrap();
    let v: Value = a.get(&api).call().unwrap().into_json().unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    a
}

/// The links of the mails delivered to `data`'s mail directory, once `n` arrived.
fn links(data: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mails = maildir::read_all(&data.join("mail"));
        if mails.len() >= n {
            return mails.iter().filter_map(|m| m.link()).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} mails arrived",
            mails.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The executor's first answer for a link, in a new browser.
fn open_link(base: &str, link: &str) -> Value {
    let query = link.split_once('?').expect("link query").1;
    let api = format!("{base}{}", executor_url("enroll", query));
    agent().get(&api).call().unwrap().into_json().unwrap()
}

fn messages(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_link_expires_when_the_served_clock_passes_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Served::on_defaults(free_port(), &data, &["--clock", "manual"]);
    enrol_to_email_stage(&s.base, "clockexp");
    let link = links(&data, 1).remove(0);
    assert_eq!(open_link(&s.base, &link)["component"], "ak-stage-consent");
    // A link lasts token_expiry (30 minutes by default) and one minute more.
    advance(&s.base, 31 * 60_000 - 1_000);
    assert_eq!(open_link(&s.base, &link)["component"], "ak-stage-consent");
    advance(&s.base, 1_001);
    let v = open_link(&s.base, &link);
    assert_eq!(
        v["component"], "ak-stage-prompt",
        "an expired link restores nothing; the flow starts again: {v}"
    );
}

#[test]
fn the_resend_limit_slides_with_the_served_clock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Served::on_defaults(free_port(), &data, &["--clock", "manual"]);
    let a = enrol_to_email_stage(&s.base, "clockrate");
    let api = format!("{}{}", s.base, executor_url("enroll", ""));
    let resend = || -> Vec<String> {
        let v: Value = (a.post(&api))
            .send_json(json!({"component": "ak-stage-email"}))
            .unwrap()
            .into_json()
            .unwrap();
        messages(&v)
    };
    // recovery_max_attempts = 5 sends within recovery_cache_timeout = 5 minutes;
    // the first, on GET, counts too (this product's default; README, deviations).
    for i in 0..4 {
        assert_eq!(resend(), ["Email Successfully sent."], "resend {i}");
    }
    let limited = "Too many account verification attempts. Please try again after 5 minutes.";
    assert_eq!(resend(), [limited]);
    advance(&s.base, 5 * 60_000 - 1);
    let one = "Too many account verification attempts. Please try again after 1 minutes.";
    assert_eq!(resend(), [one], "a millisecond before the window slides");
    advance(&s.base, 1);
    assert_eq!(resend(), ["Email Successfully sent."], "the window slid");
    assert_eq!(links(&data, 6).len(), 6, "the first send and five resends");
}

#[test]
fn the_manual_clock_is_refused_off_loopback_and_absent_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(host_harness_bin())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--clock",
            "manual",
            "--data",
        ])
        .arg(dir.path().join("data"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "refused before anything was made"
    );

    let s = Served::on_defaults(free_port(), &dir.path().join("data"), &[]);
    let err = agent()
        .post(&format!("{}/-/test/clock", s.base))
        .send_json(json!({"advance_ms": 1}))
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Status(404, _)), "{err}");
}
