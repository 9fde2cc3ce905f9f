//! `host-harness import-authentik` on re-creations of authentik's example blueprints
//! (tests/fixtures/authentik): the written configuration passes `check`, and its
//! enrollment and recovery flows run to the end over HTTP through the cdylib.

use std::process::Command;

use e2e_tests::{host_harness_bin, plugin_path, Mode, TestServer};
use host_harness::config::HostConfig;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/authentik");

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(8).build()
}

fn get(a: &ureq::Agent, url: &str) -> Value {
    a.get(url).call().unwrap().into_json().unwrap()
}

fn post(a: &ureq::Agent, url: &str, body: Value) -> Value {
    a.post(url).send_json(body).unwrap().into_json().unwrap()
}

/// Imports both fixtures; the configuration and the report (standard error).
fn import(dir: &std::path::Path) -> (HostConfig, String) {
    let out = dir.join("host.toml");
    let run = Command::new(host_harness_bin())
        .arg("import-authentik")
        .arg(format!("{FIXTURES}/recovery-with-email.yaml"))
        .arg(format!("{FIXTURES}/enrollment-with-email.yaml"))
        .arg("-o")
        .arg(&out)
        .arg("--plugin")
        .arg(plugin_path("email-stage-plugin"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{report}");
    let check = Command::new(host_harness_bin())
        .arg("check")
        .arg(&out)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "check refused the import: {said}");
    (HostConfig::load(&out).unwrap(), report)
}

/// The link's confirmation step in a second browser; what follows it.
fn confirm(s: &TestServer, slug: &str, link: &str) -> (ureq::Agent, String, Value) {
    let b = agent();
    let q = link
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let api = s.url(&host_harness::flow::executor_url(slug, &q));
    let v = get(&b, &api);
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    let v = post(
        &b,
        &api,
        json!({"component": "ak-stage-consent", "token": v["token"]}),
    );
    (b, api, v)
}

#[test]
fn the_example_blueprints_import_pass_check_and_complete_their_flows_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (imported, report) = import(dir.path());
    for id in [
        "recovery-with-email.yaml default-recovery-skip-if-restored",
        "recovery-with-email.yaml entries[15] (authentik_policies.policybinding): state: absent",
        "default-recovery-user-write",
    ] {
        assert!(report.contains(id), "the report names {id}: {report}");
    }
    let s = TestServer::start(Mode::Cdylib, |cfg| {
        cfg.stages = imported.stages.clone();
        cfg.flows = imported.flows.clone();
    });

    // Enrollment: two prompts, user write (inactive), the mail, its link, signed in.
    let a = agent();
    let enroll = s.url(&host_harness::flow::executor_url(
        "default-enrollment-flow",
        "",
    ));
    assert_eq!(get(&a, &enroll)["component"], "ak-stage-prompt");
    let v = post(
        &a,
        &enroll,
        json!({"username": "ana", "password": "pw-123456", "password_repeat": "pw-123456"}),
    );
    assert_eq!(v["component"], "ak-stage-prompt", "second prompt: {v}");
    let v = post(
        &a,
        &enroll,
        json!({"name": "Ana", "email": "ana@example.com"}),
    );
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    assert!(!s.store.find_user("ana").unwrap().unwrap().is_active);
    let mail = s.mails().pop().unwrap();
    assert_eq!(
        mail.subject, "Confirm your Identity account",
        "authentik's default subject was not carried"
    );
    let (_, _, v) = confirm(&s, "default-enrollment-flow", &mail.link().unwrap());
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    assert!(s.store.find_user("ana").unwrap().unwrap().is_active);

    // Recovery: identification, the mail, its link, a new password, signed in.
    let a = agent();
    let recover = s.url(&host_harness::flow::executor_url(
        "default-recovery-flow",
        "",
    ));
    assert_eq!(get(&a, &recover)["component"], "ak-stage-identification");
    let v = post(&a, &recover, json!({"uid_field": "ana@example.com"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let mail = s.mails().pop().unwrap();
    assert!(mail.subject.contains("password"), "{}", mail.subject);
    let (b, api, v) = confirm(&s, "default-recovery-flow", &mail.link().unwrap());
    assert_eq!(
        v["component"], "ak-stage-prompt",
        "the password prompt follows: {v}"
    );
    let v = post(
        &b,
        &api,
        json!({"password": "new-pw-987654", "password_repeat": "new-pw-987654"}),
    );
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
}
