//! The stable ABI seen from a host: incompatible and outdated plugins are refused
//! with clear errors, panics become error results, a second plugin runs on the same
//! host, and plugin logs reach the host's subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use e2e_tests::{email_plugin, host_with, plugin_path, Mode};
use host_harness::config::StageDef;
use host_harness::flow::client::FlowClient;
use host_harness::flow::FlowDef;
use host_harness::storage::{MemoryStore, NewUser};
use plugin_api::testing::FakeHost;
use plugin_api::{load_plugin, HostError, LoadError, Plugin, StageError, StageRequest};
use serde_json::json;

fn load(pkg: &str) -> Arc<dyn Plugin> {
    Arc::new(load_plugin(&plugin_path(pkg)).unwrap_or_else(|e| panic!("{pkg}: {e}")))
}

#[test]
fn incompatible_layout_is_refused_with_both_versions() {
    let err = load_plugin(&plugin_path("incompatible-stage")).unwrap_err();
    let LoadError::Incompatible {
        ref host_version,
        ref plugin_version,
        ref detail,
        ref full_report,
        ..
    } = err
    else {
        panic!("expected Incompatible, got {err}");
    };
    assert_eq!(host_version, plugin_api::API_VERSION);
    assert_eq!(
        plugin_version,
        plugin_api::API_VERSION,
        "the fixture's version moves with plugin-api's"
    );
    let msg = err.to_string();
    let v = plugin_api::API_VERSION;
    assert!(
        msg.contains(&format!("host plugin-api {v}"))
            && msg.contains(&format!("plugin plugin-api {v}")),
        "{msg}"
    );
    assert!(
        msg.len() < 600,
        "short error, not a layout dump: {} bytes",
        msg.len()
    );
    assert!(
        detail.contains("host / plugin: type `StagePluginMod` / `IncompatibleMod`"),
        "{detail}"
    );
    assert!(
        full_report.len() > detail.len(),
        "the full report is kept for debugging"
    );
}

#[test]
fn missing_file_is_a_clear_open_error() {
    let err = load_plugin(std::path::Path::new("/nonexistent/libnothing.so")).unwrap_err();
    assert!(matches!(err, LoadError::Open { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/libnothing.so"));
}

#[test]
fn two_different_plugin_files_are_two_plugins() {
    let a = load("email-stage-plugin").manifest();
    let b = load("terms-stage").manifest();
    assert_eq!(a.stages[0].kind, "email");
    assert_eq!(b.stages[0].kind, "terms");
}

fn panicky(name: &str, panic_in: &str) -> StageDef {
    StageDef {
        name: name.into(),
        kind: "panicky".into(),
        config: json!({ "panic_in": panic_in }),
        ..Default::default()
    }
}

fn flow(slug: &str, stages: &[&str]) -> FlowDef {
    FlowDef {
        brand: None,
        slug: slug.into(),
        title: slug.into(),
        designation: "authentication".into(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_panicking_hook_becomes_access_denied_and_the_host_keeps_serving() {
    let h = host_with(
        vec![email_plugin(Mode::Cdylib), load("panicking-stage")],
        Arc::new(MemoryStore::new()),
        |cfg| {
            cfg.stages.push(panicky("p-get", "get"));
            cfg.stages.push(panicky("p-post", "post"));
            cfg.stages.push(panicky("calm", "none"));
            cfg.flows.push(flow("boom-get", &["p-get"]));
            cfg.flows.push(flow("boom-post", &["p-post"]));
            cfg.flows.push(flow("calm", &["calm"]));
        },
    );
    for _ in 0..3 {
        let v = FlowClient::open(&h.ex, "boom-get", "").get();
        assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
        let mut c = FlowClient::open(&h.ex, "boom-post", "");
        assert_eq!(c.get()["component"], "x-panicky");
        assert_eq!(c.post(json!({}))["component"], "ak-stage-access-denied");
        assert_eq!(
            FlowClient::open(&h.ex, "calm", "").get()["component"],
            "x-panicky"
        );
    }
    let ev = h.events("system_exception");
    assert_eq!(ev.len(), 6);
    assert!(
        ev[0]["error"]
            .as_str()
            .unwrap()
            .contains("deliberate panic in get"),
        "{ev:?}"
    );
    // The email flows on the same host are unaffected.
    h.store
        .create_user(&NewUser {
            username: "jo".into(),
            email: "jo@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let mut c = FlowClient::open(&h.ex, "recover", "");
    c.get();
    assert_eq!(
        c.post(json!({"uid_field": "jo"}))["component"],
        "ak-stage-email"
    );
}

#[test]
fn a_panic_while_building_a_stage_is_a_configuration_error() {
    let p = load("panicking-stage");
    let err = p
        .new_stage("panicky", "x", r#"{"panic_in": "new_stage"}"#)
        .err()
        .unwrap();
    assert!(
        matches!(err, StageError::Panicked(ref m) if m.contains("deliberate panic in new_stage")),
        "{err:?}"
    );
    assert!(matches!(
        p.new_stage("nope", "x", "{}").err().unwrap(),
        StageError::UnknownKind(_)
    ));
}

#[test]
fn a_panic_inside_a_host_service_comes_back_as_an_error() {
    let p = load("panicking-stage");
    let stage = p
        .new_stage("panicky", "x", r#"{"panic_in": "host_callback"}"#)
        .unwrap();
    let req = StageRequest {
        flow_slug: "f",
        flow_designation: "authentication",
        stage_name: "x",
        query: "",
        base_url: "http://x",
        locale: "",
        requester_id: None,
        context_json: "{}",
    };
    let host = FakeHost::new();
    host.panic_in("user");
    let err = stage.get(&req, &host).unwrap_err();
    assert!(
        matches!(err, StageError::Host(HostError::Panicked(ref m)) if m.contains("FakeHost panics in user")),
        "{err:?}"
    );
}

/// A host with the email and terms plugins loaded as cdylibs, and the terms stage
/// (`tos`, version v2) first in the enrollment flow.
fn terms_host() -> e2e_tests::TestHost {
    host_with(
        vec![email_plugin(Mode::Cdylib), load("terms-stage")],
        Arc::new(MemoryStore::new()),
        |cfg| {
            cfg.stages.push(StageDef {
                name: "tos".into(),
                kind: "terms".into(),
                config: json!({"text": "Be nice.", "version": "v2"}),
                ..Default::default()
            });
            let f = cfg.flows.iter_mut().find(|f| f.slug == "enroll").unwrap();
            f.stages.insert(0, "tos".into());
        },
    )
}

#[test]
fn the_terms_example_plugin_runs_in_the_same_host() {
    let h = terms_host();
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    let v = c.get();
    assert_eq!(v["component"], "ak-stage-terms");
    assert_eq!(v["text"], "Be nice.");
    let v = c.post(json!({"accepted": false}));
    assert_eq!(v["response_errors"]["accepted"][0]["code"], "required");
    let v = c.post(json!({"accepted": true}));
    assert_eq!(v["component"], "ak-stage-prompt");
    assert_eq!(
        c.session.plan.as_ref().unwrap().context["terms_accepted_version"],
        "v2"
    );
    assert_eq!(h.events("terms_accepted")[0]["version"], "v2");
}

/// The `flow_state_*` services through the cdylib: what the terms stage stores on
/// GET is in the plan, under its own binding, and read back on POST; a value the
/// plan holds from earlier (terms shown as v1, now v2) changes the answer.
#[test]
fn flow_state_crosses_the_boundary_and_lives_in_the_plan() {
    let h = terms_host();
    let mut c = FlowClient::open(&h.ex, "enroll", "");
    c.get();
    let ctx = |c: &FlowClient| c.session.plan.as_ref().unwrap().context.clone();
    assert_eq!(
        ctx(&c)["_flow_state"],
        json!({"tos": {"shown_version": "v2"}})
    );

    // The person was shown v1 before a restart brought v2.
    let plan = c.session.plan.as_mut().unwrap();
    plan.context["_flow_state"]["tos"]["shown_version"] = json!("v1");
    let v = c.post(json!({"accepted": true}));
    assert_eq!(
        v["response_errors"]["accepted"][0]["code"], "changed",
        "{v}"
    );
    assert_eq!(ctx(&c)["_flow_state"]["tos"]["shown_version"], "v2");
    assert!(h.events("terms_accepted").is_empty());

    let v = c.post(json!({"accepted": true}));
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    assert_eq!(h.events("terms_accepted")[0]["version"], "v2");
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plugin_logs_reach_the_hosts_subscriber_without_secrets() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let h = host_with(
        vec![email_plugin(Mode::Cdylib)],
        Arc::new(MemoryStore::new()),
        |_| {},
    );
    h.store
        .create_user(&NewUser {
            username: "lu".into(),
            email: "lu@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let mut c = FlowClient::open(&h.ex, "recover", "");
        c.get();
        c.post(json!({"uid_field": "lu"}));
    });
    let link = h.mails()[0].link().unwrap();
    let key = link.rsplit_once("flow_token=").unwrap().1;
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("verification mail queued"), "{logs}");
    assert!(logs.contains("plugin_target=\"email_stage\""), "{logs}");
    assert!(!logs.contains(key), "the token never reaches the logs");
}

#[test]
fn a_filter_on_the_plugins_own_target_selects_its_lines_through_the_cdylib() {
    let buf = Buf::default();
    let w = buf.clone();
    // Everything off but the plugin's own target, as `RUST_LOG=email_stage=info`.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("off,email_stage=info"))
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let h = host_with(
        vec![email_plugin(Mode::Cdylib)],
        Arc::new(MemoryStore::new()),
        |_| {},
    );
    h.store
        .create_user(&NewUser {
            username: "mo".into(),
            email: "mo@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let mut c = FlowClient::open(&h.ex, "recover", "");
        c.get();
        c.post(json!({"uid_field": "mo"}));
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("verification mail queued"))
        .unwrap_or_else(|| panic!("the plugin's line, selected by its target: {logs}"));
    assert!(
        line.contains("email_stage:"),
        "under its own target: {line}"
    );
    assert!(
        logs.lines().all(|l| l.contains("email_stage")),
        "nothing but the plugin's target: {logs}"
    );
}
