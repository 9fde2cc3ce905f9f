//! The executor's side of a plugin stage's fault policy ([`crate::stages::fault`]):
//! a failed hook answered per `on_plugin_failure`, a slow hook reported, a
//! quarantine begun after repeated panics, kept, and ended by its cool-down or an
//! operator's release (`host-harness plugins release`, an event in the store).

use std::time::Duration;

use plugin_api::StageError;
use serde_json::{json, Value};

use super::{current_request_id, Executor, FlowDef, PluginCall, Response, Session};
use crate::stages::fault::{OnPluginFailure, Quarantined, Status};
use crate::stages::{Binding, StageImpl};
use crate::storage::Event;
use crate::system::metrics::{metrics, PanicLabels, StageLabels};

/// Action of the event an operator's release writes; its context names the `stage`.
pub const RELEASE_EVENT: &str = "plugin_released";
/// Action of the event written when a stage is quarantined.
pub const QUARANTINE_EVENT: &str = "plugin_quarantined";
/// Action of the event written for a hook slower than its stage's `hook_timeout_ms`.
pub const SLOW_HOOK_EVENT: &str = "plugin_hook_slow";
/// What the flow error of a quarantined stage says.
pub const MSG_QUARANTINED: &str = "This step is temporarily unavailable. Please try again later.";

fn labels(binding: &Binding) -> Option<PanicLabels> {
    match &binding.imp {
        StageImpl::Plugin { namespace, .. } => Some(PanicLabels {
            plugin: namespace.clone(),
            stage: binding.name.clone(),
        }),
        StageImpl::Builtin(_) => None,
    }
}

impl Executor {
    /// Records an event now, through the spool (kept while the store is down).
    fn record_event(&self, action: &str, context: Value) {
        let at_ms = self.clock.now_ms();
        let action = action.to_string();
        self.events.record(
            &*self.store,
            Event {
                action,
                context,
                at_ms,
            },
        );
    }

    /// Whether `binding` is a quarantined plugin stage, to be answered without its
    /// plugin. Ends a quarantine whose cool-down is over, and asks the store for an
    /// operator's release at most once a second.
    pub(super) fn refuse_if_quarantined(&self, binding: &Binding) -> bool {
        if matches!(binding.imp, StageImpl::Builtin(_)) {
            return false;
        }
        // Labels (two String copies) only once a quarantine is involved: this runs on
        // every request to a plugin stage.
        let now = self.clock.now_ms();
        let q = match binding.breaker.status(now) {
            Status::Open => return false,
            Status::Ended(_) => {
                if let Some(labels) = labels(binding) {
                    self.quarantine_over(binding, &labels, "cool-down over");
                }
                return false;
            }
            Status::InForce(q) => q,
        };
        let Some(labels) = labels(binding) else {
            return false;
        };
        if binding.breaker.release_check_due(now)
            && self.releases(&binding.name) > q.releases_seen
            && binding.breaker.release()
        {
            self.quarantine_over(binding, &labels, "released by an operator");
            return false;
        }
        metrics().quarantine_refusals.get_or_create(&labels).inc();
        true
    }

    /// Operator releases of stage `name` in the store (0 if it cannot be read).
    fn releases(&self, name: &str) -> usize {
        match self.store.events(Some(RELEASE_EVENT)) {
            Ok(events) => events
                .iter()
                .filter(|e| e.context.get("stage").and_then(Value::as_str) == Some(name))
                .count(),
            Err(e) => {
                tracing::warn!(target: "executor", stage = name, error = %e, "cannot read plugin releases");
                0
            }
        }
    }

    fn quarantine_over(&self, binding: &Binding, labels: &PanicLabels, why: &str) {
        metrics().quarantined.get_or_create(labels).set(0);
        tracing::warn!(target: "executor", stage = %binding.name, plugin = %labels.plugin, "stage quarantine ended ({why}); its plugin is called again");
    }

    /// The answer of a quarantined stage: the flow error, or the next stage under
    /// `on_plugin_failure = "skip"`.
    pub(super) fn quarantined(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        binding: &Binding,
    ) -> Response {
        let request_id = current_request_id(&*self.entropy);
        tracing::info!(target: "executor", stage = %binding.name, %request_id, "stage quarantined: answered without calling its plugin");
        if binding.fault.on_failure == OnPluginFailure::Skip {
            return self.advance(s, flow, query);
        }
        let v = json!({
            "component": "ak-stage-flow-error",
            "request_id": request_id,
            "error": MSG_QUARANTINED,
        });
        self.decorate(s, flow, v)
    }

    /// A plugin hook failed (error or panic): counts a panic towards quarantine,
    /// then answers per `on_plugin_failure`. The failure is recorded either way.
    pub(super) fn plugin_failed(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        binding: &Binding,
        e: StageError,
    ) -> Response {
        if matches!(e, StageError::Panicked(_)) {
            let now = self.clock.now_ms();
            if let Some(q) = binding.breaker.panicked(&binding.fault, now) {
                binding.breaker.note_releases(self.releases(&binding.name));
                self.begin_quarantine(binding, q);
            }
        }
        if binding.fault.on_failure == OnPluginFailure::Deny {
            return self.flow_error(s, flow, &binding.name, &e);
        }
        self.record_system_exception(&binding.name, &e.to_string());
        if let Some(labels) = labels(binding) {
            metrics().stages_skipped.get_or_create(&labels).inc();
        }
        tracing::warn!(target: "executor", stage = %binding.name, "plugin failed; stage skipped (on_plugin_failure = skip)");
        self.advance(s, flow, query)
    }

    fn begin_quarantine(&self, binding: &Binding, q: Quarantined) {
        let Some(labels) = labels(binding) else {
            return;
        };
        let m = metrics();
        m.quarantines.get_or_create(&labels).inc();
        m.quarantined.get_or_create(&labels).set(1);
        let p = &binding.fault;
        tracing::error!(target: "executor", stage = %binding.name, plugin = %labels.plugin, panics = p.quarantine_after, "stage quarantined after repeated plugin panics");
        self.record_event(
            QUARANTINE_EVENT,
            json!({
                "stage": binding.name,
                "plugin": labels.plugin,
                "panics": p.quarantine_after,
                "window_secs": p.window_ms / 1000,
                "until_ms": q.until_ms,
            }),
        );
    }

    /// Reports a hook call slower than its stage's `hook_timeout_ms`: a warning, a
    /// metric and an event. The call itself could not be stopped.
    pub(super) fn report_if_slow(&self, call: &PluginCall<'_>, hook: &'static str, took: Duration) {
        let limit = call.hook_timeout_ms;
        if limit == 0 || took <= Duration::from_millis(limit) {
            return;
        }
        let took_ms = took.as_millis() as u64;
        tracing::warn!(target: "executor", stage = call.name, hook, took_ms, timeout_ms = limit, "plugin hook slower than its hook_timeout_ms");
        let stage = StageLabels {
            plugin: call.namespace.to_string(),
            plugin_version: call.version.to_string(),
            stage_kind: call.kind.to_string(),
            hook,
        };
        metrics().hooks_slow.get_or_create(&stage).inc();
        self.record_event(
            SLOW_HOOK_EVENT,
            json!({
                "stage": call.name,
                "plugin": call.namespace,
                "hook": hook,
                "took_ms": took_ms,
                "timeout_ms": limit,
            }),
        );
    }
}
