//! The email-code example, built only with the plugin kit, through its cdylib in a
//! served host configured from its own `flow.toml`: `check` accepts the
//! configuration, a known user signs in with the mailed code, and an unknown one
//! sees the same page while nothing reaches any mailbox.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::{free_port, host_harness_bin, plugin_path, Served};
use host_harness::flow::executor_url;
use host_harness::mail::maildir;
use serde_json::{json, Value};

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let cfg = dir.join("host.toml");
    let text = format!(
        "base_url = \"http://127.0.0.1:{port}\"\ndatabase = \"sqlite://{}\"\n\
         [mail]\nmaildir = \"{}\"\n\n[[plugins]]\npath = \"{}\"\n\n{}",
        dir.join("host.db").display(),
        dir.join("mail").display(),
        plugin_path("email-code-stage").display(),
        include_str!("../../examples/email-code-stage/flow.toml"),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(host_harness_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

/// Identifies as `uid` in a new browser; the agent and the page it got.
fn identify(base: &str, uid: &str) -> (ureq::Agent, Value) {
    let a = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let api = format!("{base}{}", executor_url("code-signin", ""));
    let v: Value = a.get(&api).call().unwrap().into_json().unwrap();
    assert_eq!(v["component"], "ak-stage-identification", "{v}");
    let body = json!({"component": "ak-stage-identification", "uid_field": uid});
    let v: Value = a.post(&api).send_json(body).unwrap().into_json().unwrap();
    (a, v)
}

fn mailed_code(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = maildir::read_all(&dir.join("mail")).pop() {
            let raw = m.text.clone().expect("a text part");
            let at = raw.find("code is ").expect("the code in the mail") + "code is ".len();
            return raw[at..at + 6].to_string();
        }
        assert!(Instant::now() < deadline, "no mail arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sign_in_with_a_mailed_code_through_the_cdylib_in_a_served_host() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    cli(&["check", cfg.to_str().unwrap()]);
    let db = format!("sqlite://{}", dir.path().join("host.db").display());
    cli(&[
        "users",
        "create",
        "jo",
        "--email",
        "jo@example.com",
        "--database",
        &db,
    ]);
    let served = Served::with_config(&cfg, port);

    let (jo, page) = identify(&served.base, "jo");
    assert_eq!(page["component"], "xak-form", "{page}");
    let (_, ghost_page) = identify(&served.base, "ghost@example.com");
    assert_eq!(ghost_page, page, "an unknown user sees the same page");

    let code = mailed_code(dir.path());
    let api = format!("{}{}", served.base, executor_url("code-signin", ""));
    let post =
        |body: Value| -> Value { jo.post(&api).send_json(body).unwrap().into_json().unwrap() };
    let wrong = post(json!({"component": "xak-form", "code": "12345x"}));
    assert_eq!(
        wrong["response_errors"]["code"][0]["string"],
        "That code is not valid."
    );
    let done = post(json!({"component": "xak-form", "code": code}));
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    std::thread::sleep(Duration::from_millis(300));
    let mails = maildir::read_all(&dir.path().join("mail"));
    assert_eq!(
        mails.len(),
        1,
        "the decoy for the unknown user was never delivered"
    );
}
