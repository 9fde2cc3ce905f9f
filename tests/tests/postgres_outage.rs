//! PostgreSQL goes away in the middle of a flow (issue 8): the flow in progress gets
//! a flow error, the `system_exception` event is kept until the database answers
//! again, the host recovers by itself, and no queued mail is lost.

use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{email_plugin, postgres_url, smtp_mail, unique_name, Mode, SmtpSink, TcpProxy};
use host_harness::config::{self, Backends};
use host_harness::flow::client::FlowClient;
use host_harness::mail::OutboxConfig;
use host_harness::storage::{NewUser, PostgresStore, Store};
use host_harness::system::clock::SystemClock;
use host_harness::system::entropy::SystemEntropy;
use serde_json::json;

#[test]
fn a_postgres_outage_mid_flow_is_a_flow_error_then_the_host_recovers_and_loses_no_mail() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let proxy = TcpProxy::start("127.0.0.1:5432");
    let via_proxy = pg.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(via_proxy, pg, "the test URL names 127.0.0.1:5432");
    let schema = unique_name("outage");
    let store = Arc::new(PostgresStore::open(&via_proxy, Some(&schema)).unwrap());
    store
        .create_user(&NewUser {
            username: "jane".into(),
            email: "jane@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let mut cfg = config::reference_config(
        "memory://",
        "https://id.example.test",
        None,
        smtp_mail("127.0.0.1", sink.port),
    );
    cfg.database = via_proxy.clone();
    let ex = config::build_executor(
        &cfg,
        &[email_plugin(Mode::Cdylib)],
        Backends {
            store: store.clone(),
            cache: Arc::new(host_harness::cache::MemoryCache::new()),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SystemEntropy),
            outbox: OutboxConfig {
                poll: Duration::from_millis(50),
                ..Default::default()
            },
        },
    )
    .unwrap();

    let mut c = FlowClient::open(&ex, "recover", "");
    c.get();
    assert_eq!(
        c.post(json!({"uid_field": "jane"}))["component"],
        "ak-stage-email"
    );
    // The first mail is queued; PostgreSQL goes away before it can be sent.
    proxy.cut();
    let v = c.post(json!({"component": "ak-stage-email"}));
    assert_eq!(v["component"], "ak-stage-flow-error", "{v}");
    assert!(!ex.events.is_empty(), "the event waits for the database");

    proxy.restore();
    let v = c.post(json!({"component": "ak-stage-email"}));
    assert_eq!(
        v["messages"][0]["message"], "Email Successfully sent.",
        "{v}"
    );
    let got = sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(
        got.len(),
        2,
        "the mail queued before the outage and the one after"
    );
    assert!(ex.events.is_empty(), "written once the database answered");
    let ev = store.events(Some("system_exception")).unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    // Stop the delivery workers before the schema goes (they hold row locks).
    drop(c);
    drop(ex);
    let mut admin = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let _ = admin.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}

/// The cache in PostgreSQL (no Redis) goes away: the same flow error and event as
/// when Redis goes away, and the host recovers by itself.
#[test]
fn a_postgres_cache_outage_is_a_flow_error_then_the_host_recovers() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let mail = tempfile::tempdir().unwrap();
    let proxy = TcpProxy::start("127.0.0.1:5432");
    let via_proxy = pg.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let schema = unique_name("pgcache");
    let mut cfg = config::reference_config(
        &pg,
        "https://id.example.test",
        None,
        host_harness::config::MailConfig {
            maildir: Some(mail.path().to_path_buf()),
            ..Default::default()
        },
    );
    cfg.database_schema = Some(schema.clone());
    cfg.cache = Some(via_proxy);
    let b = Backends::from_config(&cfg).unwrap();
    let ex = config::build_executor(&cfg, &[email_plugin(Mode::Cdylib)], b).unwrap();
    e2e_tests::cache_outage_then_recovery(&ex, mail.path(), |up| {
        if up {
            proxy.restore();
        } else {
            proxy.cut();
        }
    });
    drop(ex);
    let mut admin = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let _ = admin.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}
