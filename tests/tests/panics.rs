//! Panics and failures outside the plugin-library path: stages linked in-process and
//! a failing random-number generator answer with errors and events, never a crash
//! or a bare 500.

use std::sync::Arc;

use e2e_tests::{email_plugin, host_with, Mode, TestServer};
use host_harness::config::StageDef;
use host_harness::flow::client::FlowClient;
use host_harness::flow::FlowDef;
use host_harness::storage::MemoryStore;
use host_harness::system::entropy::{Entropy, EntropyError};
use plugin_api::{
    FlowToken, HookResult, Host, Manifest, Outcome, Plugin, Stage, StageError, StageKind,
    StageRequest,
};
use serde_json::{json, Value};

/// An in-process plugin (kind `panicky`) whose stages panic in the hook named by
/// their configuration (`{"panic_in": "get" | "post"}`).
struct Panicky;

struct PanickyStage(String);

impl Stage for PanickyStage {
    fn get(&self, _: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
        if self.0 == "get" {
            panic!("deliberate panic in get");
        }
        Ok(HookResult::new(Outcome::Challenge(
            json!({"component": "x-panicky"}),
        )))
    }
    fn challenge_invalid(
        &self,
        _: &StageRequest<'_>,
        _: &Value,
        _: &dyn Host,
    ) -> Result<HookResult, StageError> {
        panic!("deliberate panic in post");
    }
    fn restore(
        &self,
        r: &StageRequest<'_>,
        _: &FlowToken,
        h: &dyn Host,
    ) -> Result<HookResult, StageError> {
        self.get(r, h)
    }
}

impl Plugin for Panicky {
    fn manifest(&self) -> Manifest {
        plugin_api::manifest![StageKind {
            kind: "panicky".into(),
            component: "x-panicky".into(),
            config_schema: json!({"type": "object"}),
        }]
    }
    fn new_stage(&self, _: &str, _: &str, config: &str) -> Result<Box<dyn Stage>, StageError> {
        let v: Value =
            serde_json::from_str(config).map_err(|e| StageError::Config(e.to_string()))?;
        Ok(Box::new(PanickyStage(
            v["panic_in"].as_str().unwrap_or("").to_string(),
        )))
    }
}

#[test]
fn a_panic_in_an_in_process_stage_is_access_denied_with_an_event() {
    let h = host_with(
        vec![email_plugin(Mode::Rlib), Arc::new(Panicky)],
        Arc::new(MemoryStore::new()),
        |cfg| {
            for (name, panic_in) in [("p-get", "get"), ("p-post", "post")] {
                cfg.stages.push(StageDef {
                    name: name.into(),
                    kind: "panicky".into(),
                    config: json!({ "panic_in": panic_in }),
                    ..Default::default()
                });
                cfg.flows.push(FlowDef {
                    brand: None,
                    slug: name.into(),
                    title: name.into(),
                    designation: "authentication".into(),
                    stages: vec![name.into()],
                });
            }
        },
    );
    let v = FlowClient::open(&h.ex, "p-get", "").get();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    let mut c = FlowClient::open(&h.ex, "p-post", "");
    assert_eq!(c.get()["component"], "x-panicky");
    assert_eq!(c.post(json!({}))["component"], "ak-stage-access-denied");
    let ev = h.events("system_exception");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[0]["error"]
        .as_str()
        .unwrap()
        .contains("deliberate panic in get"));
    // Counted by plugin and stage (the plugin is named after this crate).
    let metrics = host_harness::system::metrics::encode();
    for stage in ["p-get", "p-post"] {
        let line = format!("host_plugin_panics_total{{plugin=\"e2e-tests\",stage=\"{stage}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
}

/// A generator that fails once switched off.
struct Switchable(std::sync::atomic::AtomicBool);

impl Entropy for Switchable {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            host_harness::system::entropy::SystemEntropy.fill(buf)
        } else {
            Err(EntropyError("getrandom: unavailable (test)".into()))
        }
    }
}

#[test]
fn failing_randomness_is_an_error_with_an_event_not_a_crash() {
    let rng = Arc::new(Switchable(true.into()));
    let s = TestServer::start_custom(
        Mode::Cdylib,
        |_| {},
        Default::default(),
        e2e_tests::Setup {
            entropy: rng.clone(),
            ..Default::default()
        },
    );
    let api = s.url(&host_harness::flow::executor_url("recover", ""));
    let a = ureq::AgentBuilder::new().redirects(8).build();
    a.get(&api).call().unwrap();
    rng.0.store(false, std::sync::atomic::Ordering::SeqCst);
    // A new session needs a random id: none can be made.
    match a
        .post(&api)
        .send_json(json!({"uid_field": "x@example.com"}))
    {
        Err(ureq::Error::Status(500, r)) => {
            let v: serde_json::Value = r.into_json().unwrap();
            assert_eq!(v["error"], "internal error");
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    let ev = s.store.events(Some("system_exception")).unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev[0].context["error"]
        .as_str()
        .unwrap()
        .contains("randomness unavailable"));
    // The generator comes back: the server serves as before.
    rng.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let v: serde_json::Value = a
        .post(&api)
        .send_json(json!({"uid_field": "x@example.com"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email");
}
