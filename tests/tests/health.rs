//! `/-/health/live/` and `/-/health/ready/` on a served host: ready goes false
//! while PostgreSQL or Redis is away (real servers, cut for real) or the delivery
//! workers are gone, with the reason in the body, and true again after recovery.

use std::time::Duration;

use e2e_tests::{email_plugin, postgres_url, unique_name, Mode, RedisServer, TcpProxy};
use host_harness::config::{self, Backends, HostConfig, MailConfig};
use host_harness::flow::Executor;
use host_harness::http::{AppState, HttpSettings, RunningServer};

fn config_on(database: &str, mail: &std::path::Path) -> HostConfig {
    config::reference_config(
        database,
        "https://id.example.test",
        None,
        MailConfig {
            maildir: Some(mail.to_path_buf()),
            ..Default::default()
        },
    )
}

fn serve(cfg: &HostConfig) -> RunningServer {
    let b = Backends::from_config(cfg).unwrap();
    let ex: Executor = config::build_executor(cfg, &[email_plugin(Mode::Cdylib)], b).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    RunningServer::start(
        listener,
        AppState::with_settings(ex, HttpSettings::default()),
    )
    .unwrap()
}

/// Status and body of a GET.
fn get(s: &RunningServer, path: &str) -> (u16, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    match agent.get(&format!("http://{}{path}", s.addr)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Waits (at most 20 s) until the server is ready again.
fn wait_ready(s: &RunningServer) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while get(s, "/-/health/ready/").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_and_ready_then_not_ready_without_delivery_workers() {
    let mail = tempfile::tempdir().unwrap();
    let s = serve(&config_on("memory://", mail.path()));
    assert_eq!(get(&s, "/-/health/live/"), (200, "live\n".into()));
    assert_eq!(get(&s, "/-/health/ready/"), (200, "ready\n".into()));
    s.state.executor.mail.shutdown();
    let (code, body) = get(&s, "/-/health/ready/");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("mail: 0 of 4 delivery workers running"),
        "{body}"
    );
    assert_eq!(get(&s, "/-/health/live/").0, 200, "still live");
}

#[test]
fn ready_follows_redis_away_and_back() {
    let Some(mut redis) = RedisServer::start(&[]) else {
        return;
    };
    let mail = tempfile::tempdir().unwrap();
    let mut cfg = config_on("memory://", mail.path());
    cfg.cache = Some(format!("redis://127.0.0.1:{}", redis.port));
    let s = serve(&cfg);
    assert_eq!(get(&s, "/-/health/ready/").0, 200);
    redis.stop();
    let (code, body) = get(&s, "/-/health/ready/");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cache: unavailable"), "{body}");
    assert!(
        !body.contains("redis://"),
        "no address in the answer: {body}"
    );
    redis.restart();
    wait_ready(&s);
}

#[test]
fn ready_follows_postgres_away_and_back() {
    let Some(pg) = postgres_url() else {
        return;
    };
    let proxy = TcpProxy::start("127.0.0.1:5432");
    let via = pg.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let mail = tempfile::tempdir().unwrap();
    let schema = unique_name("health");
    let mut cfg = config_on(&via, mail.path());
    cfg.database_schema = Some(schema.clone());
    cfg.cache = Some("memory://".into());
    let s = serve(&cfg);
    assert_eq!(get(&s, "/-/health/ready/").0, 200);
    proxy.cut();
    let (code, body) = get(&s, "/-/health/ready/");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("store: unavailable"), "{body}");
    proxy.restore();
    wait_ready(&s);
    s.state.executor.mail.shutdown();
    drop(s);
    let mut admin = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let _ = admin.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
}
