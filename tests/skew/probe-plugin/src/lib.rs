//! Test fixture for the version-skew tests (tests/tests/skew.rs): one stage kind,
//! `probe`, whose challenge reports what the plugin sees of its host.
//!
//! The same source is built twice: here against the frozen plugin-api 0.3.0, and
//! as `tests/fixtures/probe-stage` against the current plugin-api with the feature
//! `current`, which calls a host service 0.3.0 lacks (`host_info`).

use plugin_api::serde_json::{json, Value};
use plugin_api::{
    FlowToken, HookResult, Host, Manifest, Outcome, Plugin, Stage, StageError, StageKind,
    StageRequest,
};

struct Probe;

impl Stage for Probe {
    fn get(&self, _req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
        // A user as this plugin's plugin-api reads it: fields the host added are
        // ignored, fields the host lacks take their defaults.
        let user = host.user("1")?;
        #[cfg_attr(not(feature = "current"), allow(unused_mut))]
        let mut challenge = json!({
            "component": "x-probe",
            "api_version": plugin_api::API_VERSION,
            "user": user,
        });
        #[cfg(feature = "current")]
        {
            challenge["host_info"] = match host.host_info() {
                Ok(info) => Value::String(info),
                Err(plugin_api::HostError::Unsupported(_)) => Value::String("unsupported".into()),
                Err(e) => Value::String(format!("error: {e}")),
            };
        }
        Ok(HookResult::new(Outcome::Challenge(challenge)))
    }

    fn challenge_invalid(
        &self,
        _: &StageRequest<'_>,
        _: &Value,
        _: &dyn Host,
    ) -> Result<HookResult, StageError> {
        Ok(HookResult::new(Outcome::StageOk))
    }

    fn restore(
        &self,
        req: &StageRequest<'_>,
        _: &FlowToken,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        self.get(req, host)
    }
}

struct ProbePlugin;

impl Plugin for ProbePlugin {
    fn manifest(&self) -> Manifest {
        plugin_api::manifest![StageKind {
            kind: "probe".into(),
            component: "x-probe".into(),
            config_schema: json!({"type": "object"}),
        }]
    }

    fn new_stage(&self, kind: &str, _: &str, _: &str) -> Result<Box<dyn Stage>, StageError> {
        match kind {
            "probe" => Ok(Box::new(Probe)),
            other => Err(StageError::UnknownKind(other.into())),
        }
    }
}

plugin_api::export_plugin!(ProbePlugin);
