//! A minimal host built against the frozen plugin-api 0.3.0: loads the plugin
//! named on the command line, runs the `probe` stage's `get` once and prints one
//! JSON line, `{"manifest": …, "challenge": …}` or `{"refused": "<load error>"}`.

use plugin_api::serde_json::{json, Value};
use plugin_api::{
    load_plugin, FlowToken, Host, HostError, LogLevel, NewFlowToken, Outcome, OutgoingMail,
    Plugin, RateLimit, StageRequest, User,
};

/// Answers `user("1")`; every other service is unavailable.
struct OldHost;

fn unavailable<T>() -> Result<T, HostError> {
    Err(HostError::Unavailable("not in the skew host".into()))
}

impl Host for OldHost {
    fn user(&self, id: &str) -> Result<Option<User>, HostError> {
        Ok((id == "1").then(|| User {
            id: Some("1".into()),
            username: "old-host-user".into(),
            name: String::new(),
            email: "old@example.com".into(),
            is_active: true,
            locale: "de".into(),
        }))
    }
    fn set_user_active(&self, _: &str, _: bool) -> Result<bool, HostError> {
        unavailable()
    }
    fn create_flow_token(&self, _: &NewFlowToken) -> Result<(), HostError> {
        unavailable()
    }
    fn flow_token(&self, _: &str) -> Result<Option<FlowToken>, HostError> {
        unavailable()
    }
    fn consume_flow_token(&self, _: &str) -> Result<Option<FlowToken>, HostError> {
        unavailable()
    }
    fn revoke_flow_tokens(&self, _: &str, _: &str) -> Result<u64, HostError> {
        unavailable()
    }
    fn cache_get(&self, _: &str) -> Result<Option<String>, HostError> {
        unavailable()
    }
    fn cache_set(&self, _: &str, _: &str, _: u64) -> Result<(), HostError> {
        unavailable()
    }
    fn rate_limit(&self, _: &str, _: u64, _: u32, _: i64) -> Result<RateLimit, HostError> {
        unavailable()
    }
    fn emit_event(&self, _: &str, _: &Value) -> Result<(), HostError> {
        unavailable()
    }
    fn enqueue_mail(&self, _: &OutgoingMail) -> Result<(), HostError> {
        unavailable()
    }
    fn default_from_address(&self) -> String {
        String::new()
    }
    fn log(&self, _: LogLevel, _: &str, _: &str) {}
    fn now_ms(&self) -> i64 {
        0
    }
    fn fill_random(&self, _: &mut [u8]) -> Result<(), HostError> {
        unavailable()
    }
    fn flow_state_get(&self, _: &str) -> Result<Option<String>, HostError> {
        unavailable()
    }
    fn flow_state_set(&self, _: &str, _: &str) -> Result<(), HostError> {
        unavailable()
    }
}

fn run(path: &str) -> Value {
    let plugin = match load_plugin(std::path::Path::new(path)) {
        Ok(p) => p,
        Err(e) => return json!({ "refused": e.to_string() }),
    };
    let manifest = serde_json::to_value(plugin.manifest()).unwrap_or_default();
    let stage = match plugin.new_stage("probe", "probe", "{}") {
        Ok(s) => s,
        Err(e) => return json!({ "manifest": manifest, "error": e.to_string() }),
    };
    let req = StageRequest {
        flow_slug: "skew",
        flow_designation: "authentication",
        stage_name: "probe",
        query: "",
        base_url: "http://127.0.0.1",
        locale: "",
        requester_id: None,
        context_json: "{}",
    };
    match stage.get(&req, &OldHost) {
        Ok(r) => match r.outcome {
            Outcome::Challenge(c) => json!({ "manifest": manifest, "challenge": c }),
            other => json!({ "manifest": manifest, "error": format!("{other:?}") }),
        },
        Err(e) => json!({ "manifest": manifest, "error": e.to_string() }),
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: skew-old-host <plugin library>");
    println!("{}", run(&path));
}
