//! Mail and messages in the reader's language and the operator's brand, over HTTP
//! through the email stage cdylib: the user's locale, then `Accept-Language`, then
//! the stage's and the host's defaults.

use e2e_tests::{Mode, TestServer};
use host_harness::config::HostConfig;
use host_harness::i18n::BrandConfig;
use host_harness::mail::maildir::ReceivedMail;
use host_harness::storage::NewUser;
use serde_json::{json, Value};

fn api(s: &TestServer, slug: &str) -> String {
    s.url(&host_harness::flow::executor_url(slug, ""))
}

fn branded(cfg: &mut HostConfig) {
    cfg.brand = BrandConfig {
        name: Some("Acme ID".into()),
        support_email: Some("help@acme.test".into()),
        ..Default::default()
    };
}

fn add_user(s: &TestServer, username: &str, locale: &str) {
    s.store
        .create_user(&NewUser {
            username: username.into(),
            name: username.into(),
            email: format!("{username}@example.com"),
            is_active: true,
            password_hash: None,
            locale: locale.into(),
        })
        .unwrap();
}

/// Runs recovery for `username` sending `accept_language` on every request; the
/// resend's flash message and the two mails (GET's and the resend's).
fn recover(s: &TestServer, username: &str, accept_language: &str) -> (String, Vec<ReceivedMail>) {
    let a = ureq::AgentBuilder::new().redirects(8).build();
    let call = |req: ureq::Request| {
        if accept_language.is_empty() {
            req
        } else {
            req.set("Accept-Language", accept_language)
        }
    };
    call(a.get(&api(s, "recover"))).call().unwrap();
    let v: Value = call(a.post(&api(s, "recover")))
        .send_json(json!({"uid_field": username}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let v: Value = call(a.post(&api(s, "recover")))
        .send_json(json!({"component": "ak-stage-email"}))
        .unwrap()
        .into_json()
        .unwrap();
    let message = v["messages"][0]["message"].as_str().unwrap().to_string();
    let mails: Vec<ReceivedMail> = (s.mails().into_iter())
        .filter(|m| m.to.contains(&format!("{username}@example.com")))
        .collect();
    assert_eq!(mails.len(), 2, "GET's mail and the resend");
    (message, mails)
}

fn bodies(m: &ReceivedMail) -> (String, String) {
    (m.html.clone().unwrap(), m.text.clone().unwrap())
}

fn sent_locales(s: &TestServer) -> Vec<String> {
    (s.store.events(Some("email_sent")).unwrap().iter())
        .map(|e| e.context["locale"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_german_user_gets_german_subject_body_and_messages_whatever_the_browser_says() {
    let s = TestServer::start(Mode::Cdylib, branded);
    add_user(&s, "greta", "de");
    let (message, mails) = recover(&s, "greta", "fr-CH, fr;q=0.9");
    assert_eq!(message, "E-Mail erfolgreich gesendet.");
    for m in &mails {
        assert_eq!(m.subject, "Ihr Acme ID-Passwort zurücksetzen");
        let (html, text) = bodies(m);
        assert!(html.contains("<html lang=\"de\">"), "{html}");
        assert!(html.contains("Hallo greta,") && html.contains("Passwort zurücksetzen"));
        assert!(
            text.contains("Ihres Acme ID-Kontos") && text.contains("läuft in 31 Minuten ab"),
            "{text}"
        );
        assert!(text.contains("Gesendet von Acme ID.") && text.contains("help@acme.test"));
        for body in [&html, &text] {
            assert!(!body.to_lowercase().contains("authentik"), "{body}");
        }
    }
    assert_eq!(sent_locales(&s), ["de", "de"], "recorded in email_sent");
}

#[test]
fn accept_language_picks_french_when_the_user_has_no_locale() {
    let s = TestServer::start(Mode::Cdylib, branded);
    add_user(&s, "francois", "");
    let (message, mails) = recover(&s, "francois", "fr-CH, fr;q=0.9");
    assert_eq!(message, "E-mail envoyé avec succès.");
    assert_eq!(mails[0].subject, "Réinitialisez votre mot de passe Acme ID");
    let (html, _) = bodies(&mails[0]);
    assert!(
        html.contains("Bonjour francois,") && html.contains("expire dans 31 minutes"),
        "{html}"
    );
    assert_eq!(sent_locales(&s), ["fr", "fr"]);
}

#[test]
fn an_unlisted_locale_falls_back_to_the_stage_then_the_host_default() {
    let s = TestServer::start(Mode::Cdylib, branded);
    add_user(&s, "pedro", "");
    let (message, mails) = recover(&s, "pedro", "pt-BR, pt;q=0.9");
    assert_eq!(message, "Email Successfully sent.");
    assert_eq!(mails[0].subject, "Reset your Acme ID password");
    assert!(bodies(&mails[0])
        .1
        .contains("valid for 31 minutes from now."));
    // The stage's own default comes before the host's.
    let s = TestServer::start(Mode::Cdylib, |cfg| {
        branded(cfg);
        let stage = (cfg.stages.iter_mut())
            .find(|st| st.name == "recovery-email")
            .unwrap();
        stage.default_locale = Some("it".into());
    });
    add_user(&s, "pedro", "");
    let (message, mails) = recover(&s, "pedro", "pt-BR");
    assert_eq!(message, "E-mail inviata correttamente.");
    assert_eq!(mails[0].subject, "Reimposta la password di Acme ID");
}

#[test]
fn a_flow_brand_overrides_the_host_brand() {
    let s = TestServer::start(Mode::Cdylib, |cfg| {
        branded(cfg);
        let flow = cfg.flows.iter_mut().find(|f| f.slug == "recover").unwrap();
        flow.brand = Some(BrandConfig {
            name: Some("Acme Recovery".into()),
            footer: Some("Acme Corp, 1 Main Street".into()),
            ..Default::default()
        });
    });
    add_user(&s, "rita", "");
    let (_, mails) = recover(&s, "rita", "");
    assert_eq!(mails[0].subject, "Reset your Acme Recovery password");
    let (html, text) = bodies(&mails[0]);
    assert!(
        html.contains("your Acme Recovery account") && html.contains("Acme Corp, 1 Main Street")
    );
    assert!(text.contains("Acme Corp, 1 Main Street") && !text.contains("Sent by"));
    assert!(
        text.contains("help@acme.test"),
        "the host's support address stays"
    );
}

/// `host-harness check` on a host whose `[templates] dir` holds `mail.html`.
fn check_with_template(html: &str, extra: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mail.html"), html).unwrap();
    let cfg = dir.path().join("host.toml");
    let text = format!(
        "[[plugins]]\npath = \"{}\"\n\n[templates]\ndir = \".\"\n{extra}\n\n\
         [[stages]]\nname = \"verify\"\nkind = \"email\"\n\
         config = {{ use_global_settings = true, template = \"mail.html\" }}\n\n\
         [[flows]]\nslug = \"verify\"\ndesignation = \"recovery\"\nstages = [\"verify\"]\n",
        e2e_tests::plugin_path("email-stage-plugin").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(e2e_tests::host_harness_bin())
        .arg("check")
        .arg(&cfg)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

#[test]
fn check_refuses_broken_templates_naming_file_and_line_and_bad_brands() {
    let (ok, err) = check_with_template("<p>{{ t(\"msg-sent\") }} {{ brand.name }}</p>", "");
    assert!(ok, "a good template from [templates] dir passes: {err}");
    let (ok, err) = check_with_template("<p>\n\n{% if %}</p>", "");
    assert!(!ok && err.contains("mail.html, line 3"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    let (ok, err) = check_with_template("<p>\n{{ usr.name }}</p>", "");
    assert!(
        !ok && err.contains("mail.html, line 2") && err.contains("undefined"),
        "{err}"
    );
    let (ok, err) = check_with_template("{{ t(\"no-such-key\") }}", "");
    assert!(
        !ok && err.contains("'no-such-key' is not in the default catalog"),
        "{err}"
    );
    let (ok, err) = check_with_template("<p>x</p>", "[brand]\nprimary_color = \"red\"");
    assert!(
        !ok && err.contains("brand.primary_color: must be #rrggbb"),
        "{err}"
    );
}

#[test]
fn preview_renders_both_templates_in_every_shipped_locale_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.db");
    let cfg = dir.path().join("host.toml");
    let text = format!(
        "database = \"sqlite://{}\"\n[[plugins]]\npath = \"{}\"\n\n[brand]\nname = \"Acme ID\"\n\n{}",
        db.display(),
        e2e_tests::plugin_path("email-stage-plugin").display(),
        include_str!("../../host-harness/flows.toml")
    );
    std::fs::write(&cfg, text).unwrap();
    let preview = |stage: &str, locale: &str, format: &str| {
        let out = std::process::Command::new(e2e_tests::host_harness_bin())
            .args([
                "preview", stage, "--locale", locale, "--format", format, "--config",
            ])
            .arg(&cfg)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stage} {locale}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let greetings = [
        ("en", "Hi sample,"),
        ("de", "Hallo sample,"),
        ("fr", "Bonjour sample,"),
        ("es", "Hola, sample:"),
        ("it", "Ciao sample,"),
    ];
    for (locale, greeting) in greetings {
        let text = preview("recovery-email", locale, "text");
        assert!(text.starts_with(greeting), "{locale}: {text}");
        assert!(text.contains("/if/flow/recover/?flow_token="), "{text}");
        let html = preview("enroll-verify-email", locale, "html");
        assert!(html.contains(&format!("<html lang=\"{locale}\">")) && html.contains("Acme ID"));
        let eml = preview("recovery-email", locale, "eml");
        assert!(
            eml.contains("multipart/alternative") && eml.contains("Subject: "),
            "{eml}"
        );
    }
    assert!(
        !db.exists(),
        "a preview of the sample user opens no database"
    );
    let out = std::process::Command::new(e2e_tests::host_harness_bin())
        .args(["preview", "login", "--config"])
        .arg(&cfg)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is built in and sends no mail"),
        "{stderr}"
    );
}

#[test]
fn a_stage_default_locale_that_is_no_language_tag_is_refused() {
    let mut cfg = host_harness::config::reference_config(
        "memory://",
        "http://127.0.0.1:1",
        None,
        Default::default(),
    );
    let stage = cfg
        .stages
        .iter_mut()
        .find(|s| s.name == "recovery-email")
        .unwrap();
    stage.default_locale = Some("de\r\nX".into());
    let plugins = [e2e_tests::email_plugin(Mode::Rlib)];
    let Err(err) = host_harness::config::validate(&cfg, &plugins) else {
        panic!("a bad default_locale was accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains("stage 'recovery-email': default_locale"),
        "{err}"
    );
    stage_locale_ok(&mut cfg, &plugins);
}

fn stage_locale_ok(cfg: &mut HostConfig, plugins: &[std::sync::Arc<dyn plugin_api::Plugin>]) {
    let stage = cfg
        .stages
        .iter_mut()
        .find(|s| s.name == "recovery-email")
        .unwrap();
    stage.default_locale = Some("de-AT".into());
    assert!(host_harness::config::validate(cfg, plugins).is_ok());
}
