//! SMTP security against a real server: STARTTLS and implicit TLS with a self-signed
//! certificate the host is told to trust, AUTH, and what happens when trust or
//! credentials are wrong.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{
    email_plugin, host_with, self_signed_localhost, smtp_mail, test_mail, Mode, SmtpSink, TestCert,
    TestHost,
};
use host_harness::config::MailConfig;
use host_harness::storage::MemoryStore;

const WAIT: Duration = Duration::from_secs(20);

struct Opts {
    tls: bool,
    ssl: bool,
    user: &'static str,
    password: &'static str,
    trust: bool,
}

fn host(sink: &SmtpSink, cert: &TestCert, o: Opts) -> TestHost {
    let port = sink.port;
    let ca = o.trust.then(|| cert.cert.clone());
    host_with(
        vec![email_plugin(Mode::Cdylib)],
        Arc::new(MemoryStore::new()),
        move |cfg| {
            cfg.mail = smtp_mail("localhost", port);
            cfg.mail.ca_file = ca;
            if let Some(s) = cfg.mail.smtp.as_mut() {
                (s.username, s.password) = (o.user.into(), o.password.into());
                (s.use_tls, s.use_ssl) = (o.tls, o.ssl);
            }
        },
    )
}

fn sink(cert: &TestCert, extra: &[&str]) -> Option<SmtpSink> {
    let mut args = vec![
        "--cert",
        cert.cert.to_str().unwrap(),
        "--key",
        cert.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    SmtpSink::start_with(None, &args)
}

fn delivered(h: &TestHost, sink: &SmtpSink, id: &str) -> bool {
    h.ex.mail
        .enqueue(&test_mail(id, "someone@example.com"))
        .unwrap();
    assert!(h.ex.mail.wait_idle(WAIT));
    sink.wait_for(1, Duration::from_secs(2))
        .iter()
        .any(|m| m.message_id == format!("{id}@test"))
}

/// STARTTLS with the sink's credentials.
const AUTH: Opts = Opts {
    tls: true,
    user: "mailer",
    password: "s3cret",
    ..PLAIN
};

const PLAIN: Opts = Opts {
    tls: false,
    ssl: false,
    user: "",
    password: "",
    trust: true,
};

#[test]
fn starttls_with_a_trusted_certificate() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &["--starttls"]) else {
        return;
    };
    let h = host(&s, &cert, Opts { tls: true, ..PLAIN });
    assert!(delivered(&h, &s, "starttls"));
}

#[test]
fn implicit_tls_with_a_trusted_certificate() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &["--implicit-tls"]) else {
        return;
    };
    let h = host(&s, &cert, Opts { ssl: true, ..PLAIN });
    assert!(delivered(&h, &s, "smtps"));
}

#[test]
fn auth_over_starttls() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &["--starttls", "--auth", "mailer:s3cret"]) else {
        return;
    };
    let h = host(&s, &cert, AUTH);
    assert!(delivered(&h, &s, "auth"));
}

#[test]
fn auth_login_when_the_server_offers_no_plain() {
    let cert = self_signed_localhost();
    let Some(s) = sink(
        &cert,
        &["--starttls", "--auth", "mailer:s3cret", "--no-plain"],
    ) else {
        return;
    };
    let h = host(&s, &cert, AUTH);
    assert!(delivered(&h, &s, "login"));
}

#[test]
fn wrong_password_is_a_dead_letter_without_the_password_in_it() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &["--starttls", "--auth", "mailer:s3cret"]) else {
        return;
    };
    let h = host(
        &s,
        &cert,
        Opts {
            tls: true,
            user: "mailer",
            password: "wrong-pass",
            ..PLAIN
        },
    );
    assert!(!delivered(&h, &s, "badauth"));
    let failed = h.events("email_failed");
    assert_eq!(failed.len(), 1, "535 is permanent");
    assert!(!failed[0].to_string().contains("wrong-pass"));
}

#[test]
fn untrusted_certificate_is_not_used_and_the_mail_waits() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &["--starttls"]) else {
        return;
    };
    let h = host(
        &s,
        &cert,
        Opts {
            tls: true,
            trust: false,
            ..PLAIN
        },
    );
    assert!(!delivered(&h, &s, "untrusted"));
    let c = h.store.outbox_counts().unwrap();
    assert_eq!(
        (c.pending, c.sent),
        (1, 0),
        "a TLS failure is retried, never sent in clear"
    );
}

#[test]
fn tls_and_ssl_together_are_refused_at_configuration() {
    let cert = self_signed_localhost();
    let Some(s) = sink(&cert, &[]) else { return };
    let port = s.port;
    let mut cfg = host_harness::config::reference_config(
        "memory://",
        "http://x",
        None,
        MailConfig::default(),
    );
    cfg.mail = smtp_mail("localhost", port);
    if let Some(s) = cfg.mail.smtp.as_mut() {
        (s.use_tls, s.use_ssl) = (true, true);
    }
    let err = cfg.delivery().unwrap_err();
    assert!(err.to_string().contains("use_tls and use_ssl"), "{err}");
}
