//! `GET /metrics` on a served host during an enrollment through the cdylib: the
//! scrape parses as Prometheus text, and holds the hook counter and histogram, the
//! outbox gauges, the delivery and token counters and the HTTP counters with their
//! labels; no label value is an address, a path asked for or a session.
//! (One server in this test process: the registry is the process's.)

use std::time::{Duration, Instant};

use std::collections::HashMap;

use e2e_tests::{Mode, TestServer};
use host_harness::http::RunningServer;
use openmetrics_parser::{MetricNumber, OpenMetricsValue};
use serde_json::json;

/// One series of a scrape: its family (`host_hook_calls`, without `_total`), labels
/// and value (a histogram's value is its count; `buckets` its cumulative counts).
#[derive(Debug)]
struct Series {
    family: String,
    labels: HashMap<String, String>,
    value: f64,
    buckets: Vec<(f64, f64)>,
}

/// `GET /metrics`, parsed by a strict OpenMetrics parser.
fn scrape(monitor: &RunningServer) -> (String, Vec<Series>) {
    let resp = ureq::get(&format!("http://{}/metrics", monitor.addr))
        .call()
        .unwrap();
    assert!(
        resp.content_type()
            .starts_with("application/openmetrics-text"),
        "{}",
        resp.content_type()
    );
    let text = resp.into_string().unwrap();
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not OpenMetrics text: {e:?}\n{text}"));
    let mut series = Vec::new();
    for (family, f) in parsed.families {
        for sample in f.iter_samples() {
            let labels = sample.get_labelset().unwrap();
            let labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let n = MetricNumber::as_f64;
            let (value, buckets) = match &sample.value {
                OpenMetricsValue::Counter(c) => (n(&c.value), vec![]),
                OpenMetricsValue::Gauge(g) | OpenMetricsValue::Unknown(g) => (n(g), vec![]),
                OpenMetricsValue::Histogram(h) => (
                    h.count.unwrap_or_default() as f64,
                    h.buckets
                        .iter()
                        .map(|b| (b.upper_bound, n(&b.count)))
                        .collect(),
                ),
                other => panic!("{family}: unexpected {other:?}"),
            };
            series.push(Series {
                family: family.clone(),
                labels,
                value,
                buckets,
            });
        }
    }
    (text, series)
}

/// The series of `family` whose labels include every pair of `labels`.
fn find<'a>(all: &'a [Series], family: &str, labels: &[(&str, &str)]) -> Vec<&'a Series> {
    all.iter()
        .filter(|s| s.family == family)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The value of the one series of `family` with `labels`.
fn one(all: &[Series], family: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(all, family, labels);
    assert_eq!(found.len(), 1, "{family} {labels:?}: {found:?}");
    found[0].value
}

#[test]
fn a_scrape_during_a_flow_shows_hooks_outbox_mail_tokens_and_http() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let monitor = RunningServer::start_metrics(listener, s.server.state.clone()).unwrap();
    // Not on the flow listener: delivery counts would tell which accounts exist.
    let public = ureq::get(&s.url("/metrics")).call();
    assert!(
        matches!(public, Err(ureq::Error::Status(404, _))),
        "{public:?}"
    );
    let a = ureq::AgentBuilder::new().redirects(8).build();
    let api = s.url(&host_harness::flow::executor_url("enroll", ""));
    a.get(&api).call().unwrap();
    let v: serde_json::Value = a
        .post(&api)
        .send_json(json!({"component": "ak-stage-prompt", "username": "metric", "name": "M", "email": "metric@example.com", "password": "pw-123456", "password_repeat": "pw-123456"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    // A path nobody routes and a method nobody uses.
    assert!(a
        .get(&s.url("/no/such/path-metric@example.com"))
        .call()
        .is_err());
    assert!(a.request("BREW", &s.url("/")).call().is_err());
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.mails().is_empty() {
        assert!(Instant::now() < deadline, "no mail delivered");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The delivery is counted when its outcome is recorded, a moment after the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, samples) = loop {
        let (text, samples) = scrape(&monitor);
        if !find(&samples, "host_mail_deliveries", &[("outcome", "sent")]).is_empty() {
            break (text, samples);
        }
        assert!(Instant::now() < deadline, "no delivery counted:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };

    let stage = [
        ("plugin", "email-stage-plugin"),
        ("stage_kind", "email"),
        ("hook", "get"),
    ];
    let mut sent = stage.to_vec();
    sent.push(("outcome", "challenge"));
    assert!(one(&samples, "host_hook_calls", &sent) >= 1.0);
    let version = find(&samples, "host_hook_calls", &sent)[0]
        .labels
        .get("plugin_version")
        .cloned();
    // The plugin and this crate share the workspace's version.
    assert_eq!(version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let hist = find(&samples, "host_hook_duration_seconds", &stage);
    assert_eq!(hist.len(), 1, "{hist:?}");
    assert!(hist[0].value >= 1.0);
    assert!(hist[0].buckets.len() > 5, "{hist:?}");
    assert_eq!(
        hist[0].buckets.last().unwrap().1,
        hist[0].value,
        "+Inf holds all"
    );

    assert!(one(&samples, "host_outbox_messages", &[("state", "sent")]) >= 1.0);
    assert_eq!(
        one(&samples, "host_outbox_messages", &[("state", "dead")]),
        0.0
    );
    let oldest = one(&samples, "host_outbox_oldest_due_age_seconds", &[]);
    assert!(oldest >= 0.0);
    assert!(one(&samples, "host_mail_deliveries", &[("outcome", "sent")]) >= 1.0);
    assert!(one(&samples, "host_flow_tokens", &[("kind", "issued")]) >= 1.0);
    assert!(
        one(
            &samples,
            "host_rate_limit_decisions",
            &[("decision", "allowed")]
        ) >= 1.0
    );
    assert!(one(&samples, "host_sessions_live", &[]) >= 1.0);

    let executor = [
        ("route", "/api/v3/flows/executor/{slug}/"),
        ("method", "POST"),
        ("status", "302"),
    ];
    assert!(one(&samples, "host_http_requests", &executor) >= 1.0);
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    // The `/metrics` asked of the flow listener and the path nobody routes.
    assert_eq!(one(&samples, "host_http_requests", &unmatched), 2.0);
    assert_eq!(
        one(&samples, "host_http_requests", &[("method", "other")]),
        1.0
    );
    assert!(!find(
        &samples,
        "host_http_request_duration_seconds",
        &[("route", "/api/v3/flows/executor/{slug}/")]
    )
    .is_empty());

    // Bounded labels: no address, path asked for or session value anywhere.
    let cookie = a
        .cookie_store()
        .get("127.0.0.1", "/", "ih_session")
        .map(|c| c.value().to_string())
        .expect("a session");
    for leak in [
        "@example.com",
        "/no/such",
        "BREW",
        cookie.as_str(),
        "metric",
    ] {
        let in_labels = samples
            .iter()
            .flat_map(|s| s.labels.values())
            .any(|v| v.contains(leak));
        assert!(!in_labels, "a label holds {leak:?}");
    }
}
