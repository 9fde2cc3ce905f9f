//! Two `host-harness serve` processes on different loopback ports, as behind a load
//! balancer, sharing PostgreSQL and Redis, or PostgreSQL alone (its cache and
//! limiter then live in PostgreSQL too).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use e2e_tests::{free_port, plugin_path, postgres_url, redis_url, unique_name, Served, SmtpSink};
use host_harness::flow::executor_url;
use serde_json::{json, Value};

const MAX_ATTEMPTS: usize = 3;

/// Where the hosts keep their cache: `None` for the database itself.
fn config(
    dir: &std::path::Path,
    pg: &str,
    schema: &str,
    cache: Option<&str>,
    deployment: &str,
    smtp_port: u16,
    base: &str,
) -> std::path::PathBuf {
    let flows = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../host-harness/flows.toml"
    ))
    .unwrap();
    let flows = flows.replace(
        r#"template = "email/password_reset.html" }"#,
        &format!(
            r#"template = "email/password_reset.html", recovery_max_attempts = {MAX_ATTEMPTS} }}"#
        ),
    );
    assert!(
        flows.contains("recovery_max_attempts"),
        "flows.toml changed shape"
    );
    let cache = cache
        .map(|c| format!("cache = \"{c}\"\n"))
        .unwrap_or_default();
    let head = format!(
        "base_url = \"{base}\"\ndatabase = \"{pg}\"\ndatabase_schema = \"{schema}\"\n{cache}deployment = \"{deployment}\"\n\
         [mail]\nfrom = \"authentik@id.example.test\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
         [[plugins]]\npath = \"{}\"\n",
        plugin_path("email-stage-plugin").display()
    );
    let path = dir.join(format!("host-{}.toml", unique_name("c")));
    std::fs::write(&path, head + &flows).unwrap();
    path
}

fn serve(config: &std::path::Path, port: u16) -> Served {
    Served::with_config(config, port)
}

fn api(s: &Served, q: &str) -> String {
    format!("{}{}", s.base, executor_url("recover", q))
}

#[test]
fn two_serve_processes_on_postgres_and_redis_share_links_limits_and_tokens() {
    let (Some(pg), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    two_serve_processes(&pg, Some(&redis));
}

#[test]
fn two_serve_processes_on_postgres_alone_share_links_limits_and_tokens() {
    let Some(pg) = postgres_url() else {
        return;
    };
    two_serve_processes(&pg, None);
}

/// One browser hops between the hosts, 200 concurrent resends split across both
/// give exactly the limit in mail, and of two confirmations of one link through
/// different hosts exactly one succeeds.
fn two_serve_processes(pg: &str, cache: Option<&str>) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (schema, deployment) = (unique_name("t"), unique_name("d"));
    let (pa, pb) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{pa}");
    let a = serve(
        &config(
            dir.path(),
            pg,
            &schema,
            cache,
            &deployment,
            sink.port,
            &base,
        ),
        pa,
    );
    let b = serve(
        &config(
            dir.path(),
            pg,
            &schema,
            cache,
            &deployment,
            sink.port,
            &base,
        ),
        pb,
    );
    {
        let store = host_harness::storage::PostgresStore::open(pg, Some(&schema)).unwrap();
        host_harness::storage::Store::create_user(
            &store,
            &host_harness::storage::NewUser {
                username: "jane".into(),
                email: "jane@example.com".into(),
                is_active: true,
                ..Default::default()
            },
        )
        .unwrap();
    }

    // One browser at the email stage (the initial send counts as attempt 1).
    let browser = ureq::AgentBuilder::new().build();
    browser.get(&api(&a, "")).call().unwrap();
    let v: Value = browser
        .post(&api(&b, ""))
        .send_json(json!({"uid_field": "jane"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");

    // 200 concurrent "Send Email again." POSTs, split across both hosts.
    let gate = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (agent, gate) = (browser.clone(), gate.clone());
            let url = if i % 2 == 0 { api(&a, "") } else { api(&b, "") };
            std::thread::spawn(move || {
                gate.wait();
                for _ in 0..10 {
                    let v: Value = agent
                        .post(&url)
                        .send_json(json!({"component": "ak-stage-email"}))
                        .unwrap()
                        .into_json()
                        .unwrap();
                    assert_eq!(v["component"], "ak-stage-email");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let got = sink.wait_for(MAX_ATTEMPTS + 1, Duration::from_secs(15));
    assert_eq!(
        got.len(),
        MAX_ATTEMPTS,
        "exactly recovery_max_attempts mails for 1 + 200 sends"
    );

    // A link issued through one host, confirmed through the other, by two browsers at
    // once: exactly one confirmation succeeds.
    let link = got.last().unwrap().link().unwrap();
    let q = link.split_once('?').unwrap().1.to_string();
    let (x, y) = (
        ureq::AgentBuilder::new().build(),
        ureq::AgentBuilder::new().build(),
    );
    let tx: Value = x.get(&api(&a, &q)).call().unwrap().into_json().unwrap();
    let ty: Value = y.get(&api(&b, &q)).call().unwrap().into_json().unwrap();
    assert_eq!(
        (tx["component"].as_str(), ty["component"].as_str()),
        (Some("ak-stage-consent"), Some("ak-stage-consent"))
    );
    let gate = Arc::new(Barrier::new(2));
    let confirm = |agent: ureq::Agent, url: String, token: Value, gate: Arc<Barrier>| {
        std::thread::spawn(move || {
            gate.wait();
            agent
                .post(&url)
                .send_json(json!({"token": token}))
                .unwrap()
                .into_json::<Value>()
                .unwrap()
        })
    };
    let hx = confirm(x, api(&b, &q), tx["token"].clone(), gate.clone());
    let hy = confirm(y, api(&a, &q), ty["token"].clone(), gate);
    let results = [hx.join().unwrap(), hy.join().unwrap()];
    let passed = results
        .iter()
        .filter(|v| v["component"] == "ak-stage-prompt")
        .count();
    let used = results
        .iter()
        .filter(|v| v["error_message"] == "Link was already used, please request a new link.")
        .count();
    assert_eq!((passed, used), (1, 1), "{results:?}");
}
