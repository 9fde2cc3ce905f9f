//! The flow page in headless Chromium (playwright-core driving Debian's chromium):
//! enroll with a fresh address, read the mail from a real SMTP server, open the link
//! in another browser, confirm, land signed in with the account active; then recovery
//! for an unknown address shows exactly what a known one shows, and recovery for the
//! known one ends with a new password, signed in. The generic `xak-form` challenge
//! and the email-code example (sign-in with a mailed code) run in the page too.
//! Screenshots of every
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

/// Chromium, playwright-core and Node.js, or `None` after saying which is missing.
fn browser_tools(dir: &Path) -> Option<PathBuf> {
    let Some(chromium) = chromium() else {
        missing("Chromium (apt-get install chromium)");
        return None;
    };
    if !dir.join("node_modules/playwright-core").exists() {
        missing("playwright-core (npm ci --prefix tests/browser)");
        return None;
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing("Node.js");
        return None;
    }
    Some(chromium)
}

/// Runs a browser script with `node` (Chromium at `chromium`, `envs` set) and parses
/// the JSON line it prints last; panics with its output when it fails.
fn run_script(
    script: &Path,
    chromium: &Path,
    envs: &[(&str, &std::ffi::OsStr)],
) -> serde_json::Value {
    let out = Command::new("node")
        .arg(script)
        .env("CHROMIUM", chromium)
        .envs(envs.iter().copied())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("result line")
}

fn chromium() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    p.exists().then_some(p)
}

#[test]
fn enrollment_and_recovery_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let port = sink.port;
    let s = TestServer::start(Mode::Cdylib, |cfg| cfg.mail = smtp_mail("127.0.0.1", port));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let result = run_script(
        &dir.join("flow.mjs"),
        &chromium,
        &[
            ("BASE_URL", s.url("").as_ref()),
            ("MAILDIR", sink.maildir.path().as_ref()),
            ("SHOTS", shots.as_ref()),
        ],
    );
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
        host_harness::stages::builtin::verify_password("brand new secret 7", &hash),
        "the new password was set"
    );
}

/// Issue 8, findings 1 and 5, in a real browser: a recovery started with
/// `next=/<TAB>/evil.test/phish` ends on this host, and a session cookie planted
/// before the victim signs in gives the attacker nothing.
#[test]
fn redirect_and_fixation_attacks_fail_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let port = sink.port;
    let s = TestServer::start(Mode::Cdylib, |cfg| cfg.mail = smtp_mail("127.0.0.1", port));
    for (name, email) in [
        ("redirect-victim", "redirect-victim@example.com"),
        ("fixation-victim", "fixation-victim@example.com"),
    ] {
        s.store
            .create_user(&host_harness::storage::NewUser {
                username: name.into(),
                email: email.into(),
                is_active: true,
                ..Default::default()
            })
            .unwrap();
    }
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let r = run_script(
        &dir.join("attacks.mjs"),
        &chromium,
        &[
            ("BASE_URL", s.url("").as_ref()),
            ("MAILDIR", sink.maildir.path().as_ref()),
            ("SHOTS", shots.as_ref()),
            ("REDIRECT_VICTIM", "redirect-victim@example.com".as_ref()),
            ("FIXATION_VICTIM", "fixation-victim@example.com".as_ref()),
        ],
    );
    assert_eq!(r["link_carries_next"], true, "{r}");
    assert_eq!(
        r["evil_requested"], false,
        "the browser went to evil.test: {r}"
    );
    assert_eq!(r["redirect_landed"], format!("{}/", s.url("")), "{r}");
    assert_eq!(r["invalid_next_shown"], true, "{r}");
    assert_eq!(
        r["planted"],
        serde_json::json!(["ih_csrf", "ih_session"]),
        "{r}"
    );
    assert_eq!(r["session_rotated"], true, "{r}");
    let seen = r["attacker_sees"].as_str().unwrap_or("");
    assert!(
        !seen.contains("Check your Inbox"),
        "the attacker changed the email: {r}"
    );
    assert_eq!(r["csp_violations"], serde_json::json!([]), "{r}");
    let victim = s.store.find_user("fixation-victim").unwrap().unwrap();
    assert_eq!(victim.email, "fixation-victim@example.com");
}

/// An in-process plugin for the generic-form test: kind `code-form` answers an
/// `xak-form` (code "123456" passes; the named "resend" button posts
/// `action=resend`, and the checkbox must arrive as `true`), kind `mystery` a
/// component the page does not know.
mod form_plugin {
    use plugin_api::form::{Field, FieldKind, Form};
    use plugin_api::{
        HookResult, Host, Manifest, Message, Outcome, Plugin, Stage, StageError, StageKind,
        StageRequest,
    };
    use serde_json::{json, Value};

    pub struct FormPlugin;
    struct CodeForm;
    struct Mystery;

    fn form() -> Form {
        Form::new("Enter your code")
            .text("We sent a code to your address.")
            .field(Field::new("code", "Code", FieldKind::Code).required())
            .field(Field::new(
                "remember",
                "Remember this browser",
                FieldKind::Checkbox,
            ))
            .button("Sign in")
            .action("Send a new code", "action", "resend")
    }

    fn challenge(f: Form) -> HookResult {
        HookResult::new(Outcome::Challenge(f.challenge()))
    }

    impl Stage for CodeForm {
        fn get(&self, _: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
            Ok(challenge(form()))
        }
        fn challenge_invalid(
            &self,
            _: &StageRequest<'_>,
            body: &Value,
            _: &dyn Host,
        ) -> Result<HookResult, StageError> {
            if body["action"] == "resend" {
                return Ok(
                    challenge(form()).with_message(Message::success("A new code is on its way."))
                );
            }
            if body["code"] == "123456" && body["remember"] == true {
                return Ok(HookResult::new(Outcome::StageOk));
            }
            Ok(challenge(form().error("code", "That code is not valid.")))
        }
    }

    impl Stage for Mystery {
        fn get(&self, _: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
            Ok(HookResult::new(Outcome::Challenge(
                json!({"component": "x-mystery"}),
            )))
        }
        fn challenge_invalid(
            &self,
            r: &StageRequest<'_>,
            _: &Value,
            h: &dyn Host,
        ) -> Result<HookResult, StageError> {
            self.get(r, h)
        }
    }

    impl Plugin for FormPlugin {
        fn manifest(&self) -> Manifest {
            let kind = |k: &str| StageKind {
                kind: k.into(),
                component: "xak-form".into(),
                config_schema: json!({"type": "object"}),
            };
            plugin_api::manifest![kind("code-form"), kind("mystery")]
        }
        fn new_stage(&self, kind: &str, _: &str, _: &str) -> Result<Box<dyn Stage>, StageError> {
            match kind {
                "code-form" => Ok(Box::new(CodeForm)),
                _ => Ok(Box::new(Mystery)),
            }
        }
    }
}

#[test]
fn the_generic_form_challenge_works_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let plugins: Vec<std::sync::Arc<dyn plugin_api::Plugin>> = vec![
        e2e_tests::email_plugin(Mode::Rlib),
        std::sync::Arc::new(form_plugin::FormPlugin),
    ];
    let h = e2e_tests::host_setup(plugins, Default::default(), |cfg| {
        cfg.base_url = format!("http://{addr}");
        for (name, kind) in [("code", "code-form"), ("mystery", "mystery")] {
            cfg.stages.push(host_harness::config::StageDef {
                name: name.into(),
                kind: kind.into(),
                ..Default::default()
            });
        }
        for (slug, stage) in [("form-demo", "code"), ("mystery", "mystery")] {
            cfg.flows.push(host_harness::flow::FlowDef {
                brand: None,
                slug: slug.into(),
                title: slug.into(),
                designation: "authentication".into(),
                stages: vec![stage.into()],
            });
        }
    });
    let state = host_harness::http::AppState::new(h.ex);
    let server = host_harness::http::RunningServer::start(listener, state).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let result = run_script(
        &dir.join("form.mjs"),
        &chromium,
        &[
            ("BASE_URL", format!("http://{}", server.addr).as_ref()),
            ("SHOTS", shots.as_ref()),
        ],
    );
    assert_eq!(result["text_shown"], true, "{result}");
    assert_eq!(result["code_autocomplete"], "one-time-code");
    assert_eq!(result["finished"], true);
    assert_eq!(result["unknown_named"], true);
    assert_eq!(result["csp_violations"], serde_json::json!([]));
}

/// The email-code example in the flow page of `serve` on embedded defaults (which
/// adds its `code-signin` flow when the library is built): a wrong code is refused
/// under the field, the mailed one signs in.
#[test]
fn sign_in_with_a_mailed_code_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    e2e_tests::plugin_path("email-code-stage"); // built beside the email stage
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = e2e_tests::Served::on_defaults(e2e_tests::free_port(), &data, &[]);
    let created = Command::new(e2e_tests::host_harness_bin())
        .args([
            "users",
            "create",
            "codeuser",
            "--email",
            "codeuser@example.com",
            "--database",
        ])
        .arg(format!("sqlite://{}", data.join("host.db").display()))
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let result = run_script(
        &dir.join("code.mjs"),
        &chromium,
        &[
            ("BASE_URL", served.base.as_ref()),
            ("MAILDIR", data.join("mail").as_ref()),
            ("SHOTS", shots.as_ref()),
            ("USERNAME", "codeuser".as_ref()),
        ],
    );
    assert_eq!(result["signed_in"], true, "{result}");
    assert_eq!(result["csp_violations"], serde_json::json!([]));
}

/// `host-harness preview` of both built-in templates in German and French, opened
/// in Chromium: each renders in its language with the configured brand colour.
#[test]
fn previews_of_both_templates_in_two_locales_render_in_a_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("host.toml");
    let flows = include_str!("../../host-harness/flows.toml");
    let text = format!(
        "[[plugins]]\npath = \"{}\"\n\n[brand]\nname = \"Acme ID\"\nprimary_color = \"#0f766e\"\n\n{flows}",
        e2e_tests::plugin_path("email-stage-plugin").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = work.path().join("previews");
    for stage in ["recovery-email", "enroll-verify-email"] {
        for locale in ["de", "fr"] {
            let run = Command::new(e2e_tests::host_harness_bin())
                .args(["preview", stage, "--locale", locale, "--config"])
                .arg(&cfg)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
        }
    }
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let seen = run_script(
        &dir.join("preview.mjs"),
        &chromium,
        &[("PREVIEWS", out.as_os_str()), ("SHOTS", shots.as_os_str())],
    );
    let expect = [
        (
            "recovery-email.de.html",
            "de",
            "Hallo sample,",
            "Passwort zurücksetzen",
        ),
        (
            "recovery-email.fr.html",
            "fr",
            "Bonjour sample,",
            "Réinitialiser le mot de passe",
        ),
        (
            "enroll-verify-email.de.html",
            "de",
            "Willkommen!",
            "Konto bestätigen",
        ),
        (
            "enroll-verify-email.fr.html",
            "fr",
            "Bienvenue !",
            "Confirmer le compte",
        ),
    ];
    for (file, lang, heading, button) in expect {
        let v = &seen[file];
        assert_eq!(v["lang"], lang, "{file}: {v}");
        assert_eq!(v["heading"], heading, "{file}: {v}");
        assert_eq!(v["button"], button, "{file}: {v}");
        assert_eq!(v["color"], "rgb(15, 118, 110)", "{file}: the brand colour");
        assert!(shots.join(format!("preview-{file}.png")).exists());
    }
}
