//! The five operations of issue 14 through `Executor` in-process (no HTTP), on the
//! embedded defaults (SQLite, in-process cache, outbox workers delivering to a mail
//! directory) and, when they answer, on PostgreSQL + Redis: first GET that sends,
//! resend under the limit, repeat GET, rate-limited POST, and restore (link GET,
//! confirmation POST, continue GET). The email stage is loaded as a cdylib.
//! Medians and p90 per operation, for BENCHMARKS.md (not asserted).
//! `cargo bench -p e2e-tests --bench executor` (`BENCH_QUICK=1`: a hundredth of it).

use std::time::{Duration, Instant};

use e2e_tests::{bench_count, postgres_url, redis_url, unique_name};
use host_harness::config::{self, HostConfig};
use host_harness::flow::{Executor, Response, Session};
use host_harness::mail::maildir;
use serde_json::{json, Value};

const FLOW: &str = "recover";

fn executor(dir: &std::path::Path, edit: impl FnOnce(&mut HostConfig)) -> Executor {
    let mut cfg = config::reference_config(
        &format!("sqlite://{}", dir.join("h.db").display()),
        "http://127.0.0.1:9000",
        None,
        config::MailConfig {
            maildir: Some(dir.join("mail")),
            ..Default::default()
        },
    );
    edit(&mut cfg);
    let b = config::Backends::from_config(&cfg).unwrap();
    config::build_executor(&cfg, &[e2e_tests::email_plugin(e2e_tests::Mode::Cdylib)], b).unwrap()
}

fn component(r: &Response) -> String {
    match r {
        Response::Challenge(v) => v["component"].as_str().unwrap_or("").to_string(),
        other => other.component().to_string(),
    }
}

/// A session of user `u<i>` at the email stage, the identifier POSTed (untimed);
/// the 302 it answers is not followed yet.
fn at_email_stage(ex: &Executor, i: usize) -> Session {
    let mut s = Session::default();
    ex.get(&mut s, FLOW, "");
    let r = ex.post(
        &mut s,
        FLOW,
        "",
        &json!({"uid_field": format!("u{i}@example.com")}),
    );
    assert_eq!(r.component(), "302");
    s
}

struct Timings(Vec<Duration>);

impl Timings {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push(t.elapsed());
        out
    }
    fn report(mut self, label: &str, op: &str) {
        self.0.sort();
        let at = |p: f64| self.0[((self.0.len() as f64 * p) as usize).min(self.0.len() - 1)];
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{label}: {op}: median {:.1} µs, p90 {:.1} µs, min {:.1} µs ({} runs)",
            us(at(0.5)),
            us(at(0.9)),
            us(self.0[0]),
            self.0.len()
        );
    }
}

fn run(label: &str, edit: impl FnOnce(&mut HostConfig)) {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), edit);
    let n = bench_count(300).max(3);
    for i in 0..=n {
        ex.store
            .create_user(&host_harness::storage::NewUser {
                username: format!("u{i}"),
                email: format!("u{i}@example.com"),
                is_active: true,
                ..Default::default()
            })
            .unwrap();
    }
    let (mut first, mut resend, mut repeat) = (Timings(vec![]), Timings(vec![]), Timings(vec![]));
    for i in 0..n {
        let mut s = at_email_stage(&ex, i);
        let r = first.time(|| ex.get(&mut s, FLOW, ""));
        assert_eq!(component(&r), "ak-stage-email");
        let r = repeat.time(|| ex.get(&mut s, FLOW, ""));
        assert_eq!(component(&r), "ak-stage-email");
        let body = json!({"component": "ak-stage-email"});
        let r = resend.time(|| ex.post(&mut s, FLOW, "", &body));
        let Response::Challenge(v) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(v["messages"][0]["level"], "success", "under the limit: {v}");
    }
    first.report(label, "first GET that sends");
    resend.report(label, "resend under the limit");
    repeat.report(label, "repeat GET");
    // One user past the limit: the POSTs that follow are refused and record nothing.
    let mut s = at_email_stage(&ex, n);
    ex.get(&mut s, FLOW, "");
    let body = json!({"component": "ak-stage-email"});
    let limited = |v: &Value| v["messages"][0]["level"] == "error";
    for _ in 0..10 {
        if let Response::Challenge(v) = ex.post(&mut s, FLOW, "", &body) {
            if limited(&v) {
                break;
            }
        }
    }
    let mut refused = Timings(vec![]);
    for _ in 0..n {
        let r = refused.time(|| ex.post(&mut s, FLOW, "", &body));
        let Response::Challenge(v) = &r else {
            panic!("{r:?}")
        };
        assert!(limited(v), "{v}");
    }
    refused.report(label, "rate-limited POST");
    restore(label, &ex, dir.path(), n);
}

/// Restore: each mailed link opened in a fresh session, confirmed, continued.
fn restore(label: &str, ex: &Executor, dir: &std::path::Path, n: usize) {
    assert!(ex.mail.wait_idle(Duration::from_secs(60)));
    // One link per user: confirming one revokes the user's others (by design).
    let mut seen = std::collections::HashSet::new();
    let links: Vec<String> = maildir::read_all(&dir.join("mail"))
        .into_iter()
        .filter(|m| seen.insert(m.to.clone()))
        .filter_map(|m| m.link())
        .take(n)
        .collect();
    let (mut all, mut last) = (Timings(vec![]), Timings(vec![]));
    for link in links {
        let query = link.split_once('?').map(|(_, q)| q.to_string()).unwrap();
        let mut s = Session::default();
        let t = Instant::now();
        let Response::Challenge(v) = ex.get(&mut s, FLOW, &query) else {
            panic!("no confirmation step")
        };
        let body = json!({"component": "ak-stage-consent", "token": v["token"]});
        let r = ex.post(&mut s, FLOW, &query, &body);
        assert_eq!(r.component(), "302", "{r:?}");
        let r = last.time(|| ex.get(&mut s, FLOW, &query));
        all.0.push(t.elapsed());
        // The email stage passes: a 302 on to the password prompt.
        assert_eq!(component(&r), "302", "{r:?}");
        assert_eq!(component(&ex.get(&mut s, FLOW, &query)), "ak-stage-prompt");
    }
    all.report(label, "restore (link GET, confirmation POST, continue GET)");
    last.report(label, "restore, last step (continue GET)");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    run("SQLite + in-process cache", |_| {});
    if let (Some(pg), Some(r)) = (postgres_url(), redis_url()) {
        let (schema, ns) = (unique_name("x"), unique_name("x"));
        run("PostgreSQL + Redis", move |cfg| {
            cfg.database = pg;
            cfg.database_schema = Some(schema);
            cfg.cache = Some(r);
            cfg.deployment = ns;
        });
    }
}
