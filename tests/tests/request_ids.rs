//! One id per HTTP request: in the `X-Request-Id` header, in the flow error the user
//! sees, in the `system_exception` event, and in the `request` span around every log
//! line the request writes, the plugin's own included (inside a `hook` span naming
//! plugin, version, stage, kind, hook and flow, and around a host service it calls,
//! a `host_service` span naming it). Logs are captured as JSON lines,
//! as `--log-format json` writes them.

use std::sync::Arc;

use e2e_tests::{email_plugin, host_setup, CapturedLogs, Mode, Setup};
use host_harness::config::StageDef;
use host_harness::flow::FlowDef;
use host_harness::http::{AppState, HttpSettings, RunningServer};
use plugin_api::{
    FlowToken, HookResult, Host, LogLevel, Manifest, Plugin, Stage, StageError, StageKind,
    StageRequest,
};
use serde_json::{json, Value};

/// An in-process plugin whose stage logs a line and fails in `get`.
struct Failing;

struct FailingStage;

impl Stage for FailingStage {
    fn get(&self, _: &StageRequest<'_>, h: &dyn Host) -> Result<HookResult, StageError> {
        h.log(LogLevel::Error, "failing_probe", "probe stage failing now");
        h.emit_event("failing_probe", &json!({}))?;
        Err(StageError::Internal("probe failure".into()))
    }
    fn challenge_invalid(
        &self,
        r: &StageRequest<'_>,
        _: &Value,
        h: &dyn Host,
    ) -> Result<HookResult, StageError> {
        self.get(r, h)
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

impl Plugin for Failing {
    fn manifest(&self) -> Manifest {
        plugin_api::manifest![StageKind {
            kind: "failing".into(),
            component: "x-failing".into(),
            config_schema: json!({"type": "object"}),
        }]
    }
    fn new_stage(&self, _: &str, _: &str, _: &str) -> Result<Box<dyn Stage>, StageError> {
        Ok(Box::new(FailingStage))
    }
}

/// The captured lines, parsed.
fn json_lines(logs: &CapturedLogs) -> Vec<Value> {
    logs.text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fields of the span named `name` around log line `line`.
fn span<'a>(line: &'a Value, name: &str) -> &'a Value {
    line["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no {name} span around {line}"))
}

#[test]
fn one_request_id_in_header_flow_error_event_and_every_log_line() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,host=debug"))
        .with_writer(move || writer.clone())
        .init();

    let h = host_setup(
        vec![email_plugin(Mode::Rlib), Arc::new(Failing)],
        Setup::default(),
        |cfg| {
            cfg.stages.push(StageDef {
                name: "fails".into(),
                kind: "failing".into(),
                config: json!({}),
                ..Default::default()
            });
            cfg.flows.push(FlowDef {
                brand: None,
                slug: "failing-flow".into(),
                title: "Failing".into(),
                designation: "authentication".into(),
                stages: vec!["fails".into()],
            });
        },
    );
    let store = h.store.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let state = AppState::with_settings(h.ex, HttpSettings::default());
    let server = RunningServer::start(listener, state).unwrap();
    let url = format!(
        "http://{}{}",
        server.addr,
        host_harness::flow::executor_url("failing-flow", "")
    );

    let resp = ureq::get(&url).call().unwrap();
    let id = resp.header("x-request-id").unwrap().to_string();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let v: Value = resp.into_json().unwrap();
    assert_eq!(v["component"], "ak-stage-flow-error", "{v}");
    assert_eq!(v["request_id"], id.as_str(), "the id the user sees");

    let events = store.events(Some("system_exception")).unwrap();
    let exception = events.first().expect("a system_exception event");
    assert_eq!(exception.context["request_id"], id.as_str());

    let lines = json_lines(&logs);
    let plugin_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "probe stage failing now")
        .expect("the plugin's log line");
    assert_eq!(span(plugin_line, "request")["request_id"], id.as_str());
    let hook = span(plugin_line, "hook");
    assert_eq!(hook["plugin"], "e2e-tests", "{hook}");
    assert_eq!(hook["stage"], "fails");
    assert_eq!(hook["kind"], "failing");
    assert_eq!(hook["hook"], "get");
    assert_eq!(hook["flow"], "failing-flow");
    // A host service the hook calls runs in a span of its own, inside the hook's.
    let event_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "event recorded")
        .expect("the host's line for the plugin's event");
    assert_eq!(span(event_line, "host_service")["service"], "emit_event");
    assert_eq!(span(event_line, "hook")["stage"], "fails");
    assert_eq!(span(event_line, "request")["request_id"], id.as_str());
    let exception_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "System exception during flow execution.")
        .expect("the executor's error line");
    assert_eq!(span(exception_line, "request")["request_id"], id.as_str());

    let again = ureq::get(&url).call().unwrap();
    let second = again.header("x-request-id").unwrap().to_string();
    assert_ne!(second, id, "each request its own id");
}
