//! The flow page in headless Chromium (playwright-core driving Debian's chromium):
//! enroll with a fresh address, read the mail from a real SMTP server, open the link
//! in another browser, confirm, land signed in with the account active; then recovery
//! for an unknown address shows exactly what a known one shows, and recovery for the
//! known one ends with a new password, signed in. Screenshots of every
//! step go to `target/browser-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::{smtp_mail, Mode, SmtpSink, TestServer};

fn missing(what: &str) {
    let msg = format!("browser test needs {what}");
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}; CI=true requires it");
    }
    eprintln!("skipped: {msg}");
}

fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    p.exists().then_some(p)
}

#[test]
fn enrollment_and_recovery_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = chromium() else {
        return missing("Chromium (apt-get install chromium)");
    };
    if !dir.join("node_modules/playwright-core").exists() {
        return missing("playwright-core (npm ci --prefix tests/browser)");
    }
    if Command::new("node").arg("--version").output().is_err() {
        return missing("Node.js");
    }
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let port = sink.port;
    let s = TestServer::start(Mode::Cdylib, |cfg| cfg.mail = smtp_mail("127.0.0.1", port));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg(dir.join("flow.mjs"))
        .env("BASE_URL", s.url(""))
        .env("MAILDIR", sink.maildir.path())
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("result line");
    assert_eq!(result["recovery_identical"], true);
    assert_eq!(result["recovered"], true);
    assert_eq!(
        result["link_host"],
        s.server.addr.to_string(),
        "the link points at the configured base URL"
    );
    let email = result["email"].as_str().unwrap();
    let user = s
        .store
        .find_user(email)
        .unwrap()
        .expect("the browser enrolled a user");
    assert!(user.is_active, "activated by the confirmed link");
    let pngs = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 11, "{pngs} screenshots");
    let hash = s
        .store
        .password_hash(user.id.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        host_harness::builtin::verify_password("brand new secret 7", &hash),
        "the new password was set"
    );
}
