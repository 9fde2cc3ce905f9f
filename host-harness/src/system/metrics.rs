//! The host's metrics, written in the OpenMetrics text format (which Prometheus
//! scrapes) by [`encode`] for `GET /metrics`.
//!
//! There is one registry per process, [`metrics()`], as with the default registry of
//! Prometheus' client libraries: a process running several executors (as tests do)
//! sums them. Every label value is bounded: plugin, version, stage and kind come from
//! the configuration; hooks, outcomes, services, routes and states from fixed lists.
//! No user id, address, flow token or session is ever a label.
//!
//! Gauges that describe stored state (the outbox, live sessions) are read when
//! scraped, by the caller of [`encode`], and set through [`Metrics::set_outbox`] and
//! [`Metrics::sessions_live`].

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Which plugin stage a hook call ran on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The stage kind.
    pub stage_kind: String,
    /// The hook: `get`, `challenge_invalid` or `restore`.
    pub hook: &'static str,
}

/// A finished hook call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// The stage and hook.
    #[prometheus(flatten)]
    pub stage: StageLabels,
    /// `challenge`, `stage_ok`, `stage_invalid`, `error` or `panic`.
    pub outcome: &'static str,
}

/// What happened to flow tokens: `issued`, `consumed`, `expired`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The value.
    pub kind: &'static str,
}

/// A delivery attempt's outcome: `sent`, `retry`, `dead_transient`,
/// `dead_permanent`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The value.
    pub outcome: &'static str,
}

/// A rate-limit decision: `allowed`, `limited`, `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The value.
    pub decision: &'static str,
}

/// An outbox row state: `pending`, `sending`, `sent`, `dead`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The value.
    pub state: &'static str,
}

/// An HTTP answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route (`/api/v3/flows/executor/{slug}/`), or `unmatched`.
    pub route: String,
    /// The method.
    pub method: String,
    /// The status code.
    pub status: u16,
}

/// An HTTP route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, or `unmatched`.
    pub route: String,
}

/// A host-service error seen by a plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service (`create_flow_token`, `cache_get`, …).
    pub service: &'static str,
    /// `unavailable`, `rejected`, `internal`, …
    pub error: &'static str,
}

/// A stage and the plugin behind it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PanicLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The stage binding's name.
    pub stage: String,
}

/// Every metric of the host.
pub struct Metrics {
    registry: Registry,
    /// Hook calls by stage, hook and outcome.
    pub hook_calls: Family<HookLabels, Counter>,
    /// Hook latency by stage and hook.
    pub hook_seconds: Family<StageLabels, Histogram>,
    /// Hooks that panicked, by plugin and stage.
    pub plugin_panics: Family<PanicLabels, Counter>,
    /// Host-service calls that failed, by service and error kind.
    pub service_errors: Family<ServiceLabels, Counter>,
    /// Rate-limit decisions.
    pub rate_limit_decisions: Family<DecisionLabels, Counter>,
    /// Flow tokens: `issued`, `consumed`, `expired` (swept).
    pub tokens: Family<Kind, Counter>,
    /// Delivery attempts by outcome.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Time of one delivery attempt (SMTP or mail directory), any outcome.
    pub delivery_seconds: Histogram,
    /// Outbox messages by state.
    pub outbox_messages: Family<StateLabels, Gauge>,
    /// Age of the oldest message due and not yet sent.
    pub outbox_oldest_due_seconds: Gauge,
    /// HTTP answers by route, method and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP latency by route.
    pub http_seconds: Family<RouteLabels, Histogram>,
    /// Browser sessions held by this process.
    pub sessions_live: Gauge,
    /// Hook calls slower than their stage's `hook_timeout_ms`, by stage and hook.
    pub hooks_slow: Family<StageLabels, Counter>,
    /// Stages skipped after a plugin failure (`on_plugin_failure = "skip"`).
    pub stages_skipped: Family<PanicLabels, Counter>,
    /// Quarantines begun, by plugin and stage.
    pub quarantines: Family<PanicLabels, Counter>,
    /// 1 while a stage is quarantined in this process, else 0.
    pub quarantined: Family<PanicLabels, Gauge>,
    /// Requests answered without calling a quarantined stage's plugin.
    pub quarantine_refusals: Family<PanicLabels, Counter>,
    /// Delivery worker rounds that panicked; the worker was restarted.
    pub worker_restarts: Counter,
}

/// Buckets from 10 µs to ~5 s: a hook's time or a request's.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 3.0, 13))
}

impl Metrics {
    fn new() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("host"),
            hook_calls: Family::default(),
            hook_seconds: Family::new_with_constructor(latency),
            plugin_panics: Family::default(),
            service_errors: Family::default(),
            rate_limit_decisions: Family::default(),
            tokens: Family::default(),
            deliveries: Family::default(),
            delivery_seconds: Histogram::new(exponential_buckets(0.000_1, 3.0, 12)),
            outbox_messages: Family::default(),
            outbox_oldest_due_seconds: Gauge::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency),
            sessions_live: Gauge::default(),
            hooks_slow: Family::default(),
            stages_skipped: Family::default(),
            quarantines: Family::default(),
            quarantined: Family::default(),
            quarantine_refusals: Family::default(),
            worker_restarts: Counter::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "hook_calls",
            "Plugin hook calls by stage, hook and outcome",
            self.hook_calls.clone(),
        );
        r.register(
            "hook_duration_seconds",
            "Plugin hook latency",
            self.hook_seconds.clone(),
        );
        r.register(
            "plugin_panics",
            "Plugin hooks that panicked",
            self.plugin_panics.clone(),
        );
        r.register(
            "service_errors",
            "Host-service calls from plugins that failed",
            self.service_errors.clone(),
        );
        r.register(
            "rate_limit_decisions",
            "Rate-limit decisions asked for by plugins",
            self.rate_limit_decisions.clone(),
        );
        r.register(
            "flow_tokens",
            "Flow tokens issued, consumed and expired",
            self.tokens.clone(),
        );
        r.register(
            "mail_deliveries",
            "Delivery attempts by outcome",
            self.deliveries.clone(),
        );
        r.register(
            "mail_delivery_duration_seconds",
            "Time of one delivery attempt",
            self.delivery_seconds.clone(),
        );
        r.register(
            "outbox_messages",
            "Outbox messages by state, when scraped",
            self.outbox_messages.clone(),
        );
        r.register(
            "outbox_oldest_due_age_seconds",
            "Age of the oldest due message not yet sent, when scraped",
            self.outbox_oldest_due_seconds.clone(),
        );
        r.register(
            "http_requests",
            "HTTP answers by route, method and status",
            self.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP latency by route",
            self.http_seconds.clone(),
        );
        r.register(
            "sessions_live",
            "Browser sessions held by this process, when scraped",
            self.sessions_live.clone(),
        );
        self.register_faults();
    }

    fn register_faults(&mut self) {
        let r = &mut self.registry;
        r.register(
            "hook_slow",
            "Plugin hook calls slower than their stage's hook_timeout_ms",
            self.hooks_slow.clone(),
        );
        r.register(
            "stage_skipped",
            "Stages skipped after their plugin failed (on_plugin_failure = skip)",
            self.stages_skipped.clone(),
        );
        r.register(
            "plugin_quarantines",
            "Quarantines begun after repeated plugin panics",
            self.quarantines.clone(),
        );
        r.register(
            "plugin_quarantined",
            "1 while the stage is quarantined in this process",
            self.quarantined.clone(),
        );
        r.register(
            "plugin_quarantine_refusals",
            "Requests answered without calling a quarantined stage's plugin",
            self.quarantine_refusals.clone(),
        );
        r.register(
            "mail_worker_restarts",
            "Delivery worker rounds that panicked; the worker was restarted",
            self.worker_restarts.clone(),
        );
    }

    /// Counts a finished hook call and its time.
    pub fn hook(&self, stage: &StageLabels, outcome: &'static str, took: Duration) {
        self.hook_seconds
            .get_or_create(stage)
            .observe(took.as_secs_f64());
        let labels = HookLabels {
            stage: stage.clone(),
            outcome,
        };
        self.hook_calls.get_or_create(&labels).inc();
    }

    /// Counts a flow-token event (`issued`, `consumed`, `expired`).
    pub fn token(&self, kind: &'static str, n: u64) {
        self.tokens.get_or_create(&Kind { kind }).inc_by(n);
    }

    /// Counts a delivery attempt's outcome.
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels { outcome })
            .inc();
    }

    /// Counts a rate-limit decision.
    pub fn rate_limit(&self, decision: &'static str) {
        (self.rate_limit_decisions)
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    /// Sets the outbox gauges from counts by state and the oldest due time.
    pub fn set_outbox(&self, by_state: &[(&'static str, u64)], oldest_due_age: Option<Duration>) {
        for &(state, n) in by_state {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.outbox_messages
                .get_or_create(&StateLabels { state })
                .set(n);
        }
        let age = oldest_due_age.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.outbox_oldest_due_seconds.set(age);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The media type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric, as OpenMetrics text.
pub fn encode() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_call_is_counted_with_bounded_labels_and_timed() {
        let stage = StageLabels {
            plugin: "unit-plugin".into(),
            plugin_version: "1.2.3".into(),
            stage_kind: "unit".into(),
            hook: "get",
        };
        metrics().hook(&stage, "challenge", Duration::from_micros(30));
        let text = encode();
        let line = "host_hook_calls_total{plugin=\"unit-plugin\",plugin_version=\"1.2.3\",stage_kind=\"unit\",hook=\"get\",outcome=\"challenge\"} 1";
        assert!(text.contains(line), "{text}");
        assert!(text.contains("host_hook_duration_seconds_count{plugin=\"unit-plugin\",plugin_version=\"1.2.3\",stage_kind=\"unit\",hook=\"get\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
