//! Several hosts, one truth: two hosts on the same PostgreSQL and Redis. A link
//! issued by one is confirmed on the other, the rate limit holds across both and
//! under concurrency, the outbox is delivered once by both, and unreachable
//! backends give clear errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{
    email_plugin, postgres_url, redis_url, smtp_mail, test_mail, unique_name, Mode, SmtpSink,
};
use host_harness::cache::{Cache, PostgresCache, RedisCache};
use host_harness::config::{self, Backends, HostConfig};
use host_harness::flow::client::FlowClient;
use host_harness::flow::{Executor, Session};
use host_harness::mail::OutboxConfig;
use host_harness::storage::{HostStore, NewUser, PostgresStore};
use host_harness::system::clock::ManualClock;
use plugin_api::RateLimit;
use serde_json::json;

struct Cluster {
    a: Executor,
    b: Executor,
    store: Arc<dyn HostStore>,
    _mail: tempfile::TempDir,
}

/// The reference flows with mail into `mail`, links to `base`.
fn mail_config(base: &str, mail: &std::path::Path) -> HostConfig {
    config::reference_config(
        "memory://",
        base,
        None,
        config::MailConfig {
            maildir: Some(mail.to_path_buf()),
            ..Default::default()
        },
    )
}

/// A host on PostgreSQL (`schema`) and Redis (`namespace`) with its own pool and cache
/// connection, as a separate process would have.
fn shared_host(cfg: &HostConfig, pg: &str, schema: &str, redis: &str, namespace: &str) -> Executor {
    let b = Backends {
        store: Arc::new(PostgresStore::open(pg, Some(schema)).unwrap()),
        cache: Arc::new(RedisCache::open(redis, namespace).unwrap()),
        clock: Arc::new(ManualClock::new(1_767_225_600_000)),
        entropy: Arc::new(host_harness::system::entropy::SystemEntropy),
        // A manual clock: a jittered due time would never come.
        outbox: OutboxConfig {
            poll: Duration::from_millis(20),
            wake_jitter: Duration::ZERO,
            ..Default::default()
        },
    };
    config::build_executor(cfg, &[email_plugin(Mode::Cdylib)], b).unwrap()
}

fn cluster(edit: impl Fn(&mut HostConfig)) -> Option<Cluster> {
    let pg = postgres_url()?;
    let redis = redis_url()?;
    let schema = unique_name("t");
    let namespace = unique_name("ih");
    let mail = tempfile::tempdir().unwrap();
    let make = || {
        let mut cfg = mail_config("https://id.example.test", mail.path());
        edit(&mut cfg);
        let ex = shared_host(&cfg, &pg, &schema, &redis, &namespace);
        let store = ex.store.clone();
        (ex, store)
    };
    let (a, store) = make();
    let (b, _) = make();
    Some(Cluster {
        a,
        b,
        store,
        _mail: mail,
    })
}

fn jane(store: &dyn HostStore) {
    store
        .create_user(&NewUser {
            username: "jane".into(),
            name: "Jane".into(),
            email: "jane@example.com".into(),
            is_active: true,
            password_hash: None,
            locale: String::new(),
        })
        .unwrap();
}

#[test]
fn a_link_issued_by_one_host_is_confirmed_on_the_other() {
    let Some(c) = cluster(|_| {}) else { return };
    jane(&*c.store);
    let mut on_a = FlowClient::open(&c.a, "recover", "");
    on_a.get();
    assert_eq!(
        on_a.post(json!({"uid_field": "jane"}))["component"],
        "ak-stage-email"
    );
    assert!(c.a.mail.wait_idle(Duration::from_secs(20)));
    let mails = host_harness::mail::maildir::read_all(c._mail.path());
    let link = mails[0].link().unwrap();
    let mut on_b = FlowClient::open_link(&c.b, &link, Session::default()).unwrap();
    let token = on_b.get()["token"].clone();
    assert!(token.is_string(), "B restores the plan A stored");
    let v = on_b.post(json!({"token": token}));
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    // A sees the link as used.
    let v = FlowClient::open_link(&c.a, &link, Session::default())
        .unwrap()
        .get();
    assert_eq!(v["component"], "ak-stage-identification");
}

#[test]
fn the_rate_limit_holds_across_hosts() {
    let Some(c) = cluster(|cfg| {
        let s = cfg
            .stages
            .iter_mut()
            .find(|s| s.name == "recovery-email")
            .unwrap();
        s.config["recovery_max_attempts"] = json!(3);
    }) else {
        return;
    };
    jane(&*c.store);
    // Same person, alternating hosts (a load balancer): 3 sends in all, then limited.
    let mut sent = 0;
    let mut limited = 0;
    for i in 0..6 {
        let ex = if i % 2 == 0 { &c.a } else { &c.b };
        let mut cl = FlowClient::open(ex, "recover", "");
        cl.get();
        let v = cl.post(json!({"uid_field": "jane@example.com"}));
        match v["messages"][0]["message"].as_str() {
            Some(m) if m.starts_with("Too many") => limited += 1,
            _ => sent += 1,
        }
    }
    assert_eq!((sent, limited), (3, 3));
}

/// 8 connections x 50 attempts on one key allow exactly the limit; then the window
/// slides as in the in-process limiter, and plain values keep their TTL.
fn limiter_is_atomic(caches: Vec<Arc<dyn Cache>>) {
    let allowed: usize = caches
        .iter()
        .map(|c| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| c.rate_limit("k", 60_000, 5, 1_000).unwrap() == RateLimit::Allowed)
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(allowed, 5, "8 connections x 50 attempts: exactly the limit");
    match caches[0].rate_limit("k", 60_000, 5, 31_000).unwrap() {
        RateLimit::Limited { retry_after_ms } => assert_eq!(retry_after_ms, 30_000),
        other => panic!("{other:?}"),
    }
    // TTL and strictness as the in-process limiter: the window slides.
    assert_eq!(
        caches[0].rate_limit("k", 60_000, 5, 61_000).unwrap(),
        RateLimit::Allowed
    );
    // Plain values with a TTL.
    caches[0].set("v", "x", 5_000, 0).unwrap();
    assert_eq!(caches[1].get("v", 0).unwrap().as_deref(), Some("x"));
}

#[test]
fn the_redis_limiter_is_atomic_under_concurrency() {
    let Some(redis) = redis_url() else { return };
    let ns = unique_name("ih");
    limiter_is_atomic(
        (0..8)
            .map(|_| Arc::new(RedisCache::open(&redis, &ns).unwrap()) as Arc<dyn Cache>)
            .collect(),
    );
}

#[test]
fn the_postgres_limiter_is_atomic_under_concurrency() {
    let Some(pg) = postgres_url() else { return };
    let (schema, ns) = (unique_name("cache"), unique_name("ih"));
    limiter_is_atomic(
        (0..8)
            .map(|_| {
                Arc::new(PostgresCache::open(&pg, Some(&schema), &ns, 1).unwrap()) as Arc<dyn Cache>
            })
            .collect(),
    );
}

#[test]
fn two_hosts_deliver_one_outbox_without_duplicates() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let port = sink.port;
    let Some(c) = cluster(move |cfg| cfg.mail = smtp_mail("127.0.0.1", port)) else {
        return;
    };
    for i in 0..200 {
        let ex = if i % 2 == 0 { &c.a } else { &c.b };
        ex.mail
            .enqueue(&test_mail(&format!("shared-{i}"), "someone@example.com"))
            .unwrap();
    }
    assert!(c.a.mail.wait_idle(Duration::from_secs(60)));
    assert!(c.b.mail.wait_idle(Duration::from_secs(60)));
    let got = sink.wait_for(200, Duration::from_secs(30));
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for m in got {
        *per_id.entry(m.message_id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 200);
    assert!(per_id.values().all(|n| *n == 1), "each message once");
    assert_eq!(c.store.outbox_counts().unwrap().sent, 200);
}

#[test]
fn unreachable_backends_are_clear_errors() {
    let e = config::open_store_in("postgres://postgres:pw@127.0.0.1:1/test", None)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("127.0.0.1:1") && !msg.contains(":pw@"),
        "{msg}"
    );
    let e = config::open_cache("redis://127.0.0.1:1", "x")
        .err()
        .unwrap();
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
}

#[test]
fn a_browser_session_moves_between_hosts_behind_a_load_balancer() {
    use host_harness::http::{AppState, RunningServer};
    let (Some(pg), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    let schema = unique_name("t");
    let namespace = unique_name("ih");
    let mail = tempfile::tempdir().unwrap();
    let la = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lb = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", la.local_addr().unwrap());
    let server = |l: std::net::TcpListener| {
        let ex = shared_host(
            &mail_config(&base, mail.path()),
            &pg,
            &schema,
            &redis,
            &namespace,
        );
        RunningServer::start(l, AppState::with_shared_sessions(ex, true)).unwrap()
    };
    let (a, b) = (server(la), server(lb));
    jane(&*a.state.executor.store);
    let api = |s: &RunningServer, q: &str| {
        format!(
            "http://{}{}",
            s.addr,
            host_harness::flow::executor_url("recover", q)
        )
    };
    // One browser (one cookie jar), its requests spread over both hosts.
    let browser = ureq::AgentBuilder::new().build();
    let v: serde_json::Value = browser
        .get(&api(&a, ""))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-identification");
    let v: serde_json::Value = browser
        .post(&api(&b, ""))
        .send_json(json!({"uid_field": "jane"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        v["component"], "ak-stage-email",
        "B continues the session A started: {v}"
    );
    let v: serde_json::Value = browser
        .get(&api(&a, ""))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        v["component"], "ak-stage-email",
        "and A sees where B left it"
    );
    assert!(b.state.executor.mail.wait_idle(Duration::from_secs(20)));
    let mails = host_harness::mail::maildir::read_all(mail.path());
    assert_eq!(mails.len(), 1, "one initial send, not one per host");
    // The link, opened by another browser, confirmed across the hosts.
    let q = mails[0]
        .link()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .to_string();
    let other = ureq::AgentBuilder::new().build();
    let v: serde_json::Value = other.get(&api(&b, &q)).call().unwrap().into_json().unwrap();
    assert_eq!(v["component"], "ak-stage-consent");
    let v: serde_json::Value = other
        .post(&api(&a, &q))
        .send_json(json!({"token": v["token"]}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
}

#[test]
fn a_redis_that_drops_mid_run_gives_flow_errors_then_recovers() {
    let Some(mut redis) = e2e_tests::RedisServer::start(&[]) else {
        return;
    };
    let port = redis.port;
    let url = format!("redis://127.0.0.1:{port}");
    let mail = tempfile::tempdir().unwrap();
    let mut cfg = mail_config("https://id.example.test", mail.path());
    cfg.cache = Some(url.clone());
    let b = Backends::from_config(&cfg).unwrap();
    let ex = config::build_executor(&cfg, &[email_plugin(Mode::Cdylib)], b).unwrap();
    e2e_tests::cache_outage_then_recovery(&ex, mail.path(), |up| {
        if up {
            redis.restart();
        } else {
            redis.stop();
        }
    });
}
