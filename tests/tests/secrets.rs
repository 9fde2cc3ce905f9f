//! Secrets stay where they belong (issue 8). The reference flows run over HTTP on
//! PostgreSQL and a password-protected Redis, mailing through an SMTP server that
//! requires AUTH, with a distinctive secret in every place one can go: database,
//! cache and SMTP passwords, user passwords, session cookies, CSRF tokens and the
//! links' keys. Then every table, every Redis key and value, every event, every log
//! line (TRACE) and every error message is searched for them; mail files may hold
//! the links and nothing else secret.

use std::time::Duration;

use e2e_tests::{email_plugin, postgres_url, unique_name, Mode, RedisServer, SmtpSink, TestHost};
use host_harness::config::{self, Backends, HostConfig, MailConfig, SmtpConfig};
use host_harness::http::{AppState, RunningServer};
use serde_json::{json, Value};

const PG_SECRET: &str = "PgSecret-4f1d7c";
const REDIS_SECRET: &str = "RedisSecret-9b2e55";
const SMTP_SECRET: &str = "SmtpSecret-c07a31";
const WRONG_SMTP_SECRET: &str = "WrongSmtpSecret-6d0e92";
const USER_SECRETS: [&str; 2] = ["UserSecret-one-81a", "UserSecret-two-3c9"];

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(8).build()
}

fn cookie(a: &ureq::Agent, name: &str) -> String {
    a.cookie_store()
        .get("127.0.0.1", "/", name)
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

struct Run<'a> {
    server: &'a RunningServer,
    sink: &'a SmtpSink,
    seen_secrets: Vec<String>,
    link_keys: Vec<String>,
}

impl Run<'_> {
    fn api(&self, slug: &str, query: &str) -> String {
        format!(
            "http://{}{}",
            self.server.addr,
            host_harness::flow::executor_url(slug, query)
        )
    }

    fn send(&self, a: &ureq::Agent, slug: &str, query: &str, body: Value) -> Value {
        let csrf = cookie(a, "ih_csrf");
        a.post(&self.api(slug, query))
            .set("X-CSRFToken", &csrf)
            .send_json(body)
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// The query of the link in mail number `n` (1-based), once it arrived.
    fn link(&mut self, n: usize) -> String {
        let mails = self.sink.wait_for(n, Duration::from_secs(30));
        let link = mails[n - 1].link().expect("a link");
        let query = link.split_once('?').unwrap().1.to_string();
        let key = query.rsplit_once("flow_token=").unwrap().1.to_string();
        self.link_keys.push(key);
        query
    }

    fn confirm(&mut self, a: &ureq::Agent, slug: &str, n: usize) -> (String, Value) {
        let q = self.link(n);
        let v: Value = a
            .get(&self.api(slug, &q))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(v["component"], "ak-stage-consent", "{v}");
        let v = self.send(a, slug, &q, json!({"token": v["token"]}));
        (q, v)
    }

    fn remember(&mut self, a: &ureq::Agent) {
        for name in ["ih_session", "ih_csrf"] {
            let v = cookie(a, name);
            if !v.is_empty() && !self.seen_secrets.contains(&v) {
                self.seen_secrets.push(v);
            }
        }
    }
}

fn config(
    pg: &str,
    schema: &str,
    redis_port: u16,
    sink_port: u16,
    mail_dir: &std::path::Path,
) -> HostConfig {
    let mut cfg = config::reference_config(
        &pg.replacen(
            "postgres://postgres@",
            &format!("postgres://postgres:{PG_SECRET}@"),
            1,
        ),
        "http://127.0.0.1:1",
        None,
        MailConfig {
            from: "id@id.example.test".into(),
            smtp: Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port: sink_port,
                username: "mailer".into(),
                password: SMTP_SECRET.into(),
                use_tls: false,
                use_ssl: false,
                timeout: 5,
            }),
            ..Default::default()
        },
    );
    let _ = mail_dir;
    cfg.database_schema = Some(schema.into());
    cfg.cache = Some(format!("redis://:{REDIS_SECRET}@127.0.0.1:{redis_port}"));
    // The recovery stage mails with its own settings (a route by reference).
    TestHost::edit_stage(
        &mut cfg,
        "recovery-email",
        json!({
            "use_global_settings": false, "host": "127.0.0.1", "port": sink_port,
            "username": "mailer", "password": SMTP_SECRET, "from_address": "reset@id.example.test",
        }),
    );
    // A stage whose server cannot be reached: its mail waits in the outbox for a
    // retry, with its route as stored.
    let mut unreachable = cfg
        .stages
        .iter()
        .find(|s| s.name == "recovery-email")
        .unwrap()
        .clone();
    unreachable.name = "unreachable-email".into();
    unreachable.config["port"] = json!(e2e_tests::free_port());
    cfg.stages.push(unreachable);
    cfg.flows.push(host_harness::flow::FlowDef {
        brand: None,
        slug: "recover-elsewhere".into(),
        title: "Recover".into(),
        designation: "recovery".into(),
        stages: vec!["recovery-identify".into(), "unreachable-email".into()],
    });
    cfg
}

#[test]
fn no_secret_reaches_tables_cache_events_logs_or_errors() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let Some(redis) = RedisServer::start(&["--requirepass", REDIS_SECRET]) else {
        return;
    };
    let Some(sink) = SmtpSink::start_with(None, &["--auth", &format!("mailer:{SMTP_SECRET}")])
    else {
        return;
    };
    let logs = e2e_tests::CapturedLogs::default();
    let writer = logs.clone();
    // The host's own filter, asked for everything; the test's HTTP client (ureq)
    // and its cookie jar are not the host and log their cookies.
    tracing_subscriber::fmt()
        .with_env_filter(
            host_harness::system::logging::filter("trace")
                .add_directive("ureq=off".parse().unwrap())
                .add_directive("cookie_store=off".parse().unwrap()),
        )
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let schema = unique_name("secrets");
    let mail_dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = config(&pg, &schema, redis.port, sink.port, mail_dir.path());
    cfg.base_url = format!("http://{addr}");
    let ex = config::build_executor(
        &cfg,
        &[email_plugin(Mode::Cdylib)],
        Backends::from_config(&cfg).unwrap(),
    )
    .unwrap();
    let settings = cfg.http.to_settings(&cfg.database).unwrap();
    assert!(
        settings.shared_sessions,
        "PostgreSQL keeps sessions in the store"
    );
    let server = RunningServer::start(listener, AppState::with_settings(ex, settings)).unwrap();
    let mut run = Run {
        server: &server,
        sink: &sink,
        seen_secrets: Vec::new(),
        link_keys: Vec::new(),
    };

    // Enrollment, confirmed: signed in.
    let a = agent();
    let v = run.send(
        &a,
        "enroll",
        "",
        json!({
            "username": "sam", "name": "Sam", "email": "sam@example.com",
            "password": USER_SECRETS[0], "password_repeat": USER_SECRETS[0],
        }),
    );
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    run.remember(&a);
    let (_, v) = run.confirm(&a, "enroll", 1);
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    run.remember(&a);
    // Email change, confirmed.
    let v = run.send(&a, "email-change", "", json!({"email": "sam2@example.com"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let (_, v) = run.confirm(&a, "email-change", 2);
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    // Logout, then recovery in a new browser with a new password.
    let logout = format!("http://{}/flows/-/logout/", server.addr);
    a.post(&logout)
        .set("X-CSRFToken", &cookie(&a, "ih_csrf"))
        .send_bytes(b"")
        .unwrap();
    let b = agent();
    let v = run.send(&b, "recover", "", json!({"uid_field": "sam2@example.com"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    run.remember(&b);
    let (q, v) = run.confirm(&b, "recover", 3);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let v = run.send(
        &b,
        "recover",
        &q,
        json!({
            "password": USER_SECRETS[1], "password_repeat": USER_SECRETS[1],
        }),
    );
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    run.remember(&b);
    // A mail for a server that cannot be reached stays queued.
    let v = run.send(
        &agent(),
        "recover-elsewhere",
        "",
        json!({"uid_field": "sam2@example.com"}),
    );
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    // A stage with a wrong SMTP password: the server's refusal.
    let mut wrong = cfg.clone();
    TestHost::edit_stage(
        &mut wrong,
        "recovery-email",
        json!({"password": WRONG_SMTP_SECRET}),
    );
    let err = config::test_email(
        &wrong,
        &[email_plugin(Mode::Cdylib)],
        "x@example.com",
        Some("recovery-email"),
        None,
    )
    .unwrap_err()
    .to_string();
    // Backends that cannot be reached, named in errors.
    let mut errors = vec![err];
    errors.push(
        config::open_cache(&format!("redis://:{REDIS_SECRET}@127.0.0.1:1"), "x")
            .err()
            .unwrap()
            .to_string(),
    );
    errors.push(
        config::open_cache(
            &format!("redis://:{WRONG_SMTP_SECRET}@127.0.0.1:{}", redis.port),
            "x",
        )
        .err()
        .unwrap()
        .to_string(),
    );
    errors.push(
        config::open_store_in(&format!("postgres://u:{PG_SECRET}@127.0.0.1:1/x"), None)
            .err()
            .unwrap()
            .to_string(),
    );
    assert!(server
        .state
        .executor
        .mail
        .wait_idle(Duration::from_secs(30)));
    let counts = server.state.executor.store.outbox_counts().unwrap();
    assert_eq!((counts.sent, counts.pending), (3, 1), "{counts:?}");

    let mut secrets: Vec<String> = [PG_SECRET, REDIS_SECRET, SMTP_SECRET, WRONG_SMTP_SECRET]
        .iter()
        .chain(USER_SECRETS.iter())
        .map(|s| s.to_string())
        .collect();
    secrets.extend(run.seen_secrets.iter().cloned());
    assert!(run.seen_secrets.len() >= 4, "{:?}", run.seen_secrets);
    let links = run.link_keys.clone();
    assert_eq!(links.len(), 3);

    let mut places: Vec<(String, String)> = Vec::new();
    let mut c = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 6, "{tables:?}");
    for t in &tables {
        for r in c
            .query(&format!("SELECT t::text FROM \"{schema}\".\"{t}\" t"), &[])
            .unwrap()
        {
            places.push((format!("table {t}"), r.get(0)));
        }
    }
    let mut r = redis::Client::open(format!("redis://:{REDIS_SECRET}@127.0.0.1:{}", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r).unwrap();
    assert!(!keys.is_empty(), "the limiter wrote to Redis");
    for k in keys {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&k)
            .arg(0)
            .arg(-1)
            .query(&mut r)
            .unwrap_or_default();
        places.push(("redis".into(), format!("{k} {members:?}")));
    }
    for e in &errors {
        places.push(("error message".into(), e.clone()));
    }
    let log = logs.text();
    assert!(log.contains("TRACE") || log.contains("DEBUG") || log.contains("INFO"));
    places.push(("logs".into(), log));
    let mail_files: Vec<String> = sink
        .wait_for(3, Duration::from_secs(1))
        .iter()
        .map(|m| std::fs::read_to_string(&m.path).unwrap())
        .collect();
    assert_eq!(mail_files.len(), 3);

    for (place, text) in &places {
        for s in secrets.iter().chain(links.iter()) {
            if let Some(at) = text.find(s.as_str()) {
                let line = text[..at].rsplit('\n').next().unwrap_or("");
                let rest = text[at..].split('\n').next().unwrap_or("");
                panic!("{place} holds secret {s:?}: {line}{rest}");
            }
        }
    }
    for text in &mail_files {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a mail holds a secret: {text}");
        }
    }
    // Stop the server and its delivery workers before the schema goes.
    drop(run);
    drop(server);
    let _ = c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}
