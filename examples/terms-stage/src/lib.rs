//! Example stage plugin: the person must accept the terms of service to continue.
//!
//! Stage kind `terms`, challenge component `ak-stage-terms`. Configuration:
//!
//! ```json
//! {"text": "By continuing you agree to …", "version": "v1"}
//! ```
//!
//! The challenge shows `text` and `version`. A response `{"accepted": true}` passes the
//! stage: the host records a `terms_accepted` event, the plan context gets
//! `terms_accepted_version`, and a success message is flashed. Any other response
//! shows the challenge again with an error on `accepted`.
//!
//! The stage remembers in the flow's state (the `flow_state_*` host services) which
//! version it showed, and accepts only that version: terms changed between showing
//! and accepting (a host restarted with a new configuration) are shown again.
//!
//! Built as `cdylib` (load it with `plugin_api::load_plugin`) and `rlib` (use
//! [`TermsPlugin`] in-process, e.g. in tests).

#![deny(missing_docs)]

use plugin_api::schemars::JsonSchema;
use plugin_api::{
    export_plugin, HookResult, Host, Manifest, Message, Outcome, Plugin, Stage, StageError,
    StageKind, StageRequest,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// Stage kind name used in host configuration.
pub const KIND: &str = "terms";
/// Challenge component the stage renders.
pub const COMPONENT: &str = "ak-stage-terms";
/// Plan-context key set to the accepted terms version.
pub const CONTEXT_KEY: &str = "terms_accepted_version";
/// Action of the event recorded when the terms are accepted.
pub const EVENT_ACTION: &str = "terms_accepted";
/// Flow-state key holding the version last shown.
pub const SHOWN_KEY: &str = "shown_version";

/// The plugin: provides the `terms` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct TermsPlugin;

/// Configuration of a `terms` stage. Its JSON Schema, derived from this type, is
/// the manifest's `config_schema`: the host checks a stage's configuration against
/// it before [`Plugin::new_stage`] is called.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "plugin_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct TermsConfig {
    /// Terms shown to the person; never blank.
    #[schemars(length(min = 1))]
    pub text: String,
    /// Version label recorded on acceptance.
    pub version: String,
}

impl TermsConfig {
    /// Parses and validates a configuration JSON object: both fields are required
    /// strings, `text` not blank, no other field. Errors are [`StageError::Config`]
    /// naming the field.
    pub fn parse(config_json: &str) -> Result<Self, StageError> {
        let config: Self = plugin_api::config::parse(config_json)?;
        if config.text.trim().is_empty() {
            return Err(StageError::Config("text: must not be blank".into()));
        }
        Ok(config)
    }
}

/// A configured `terms` stage.
#[derive(Debug, Clone)]
pub struct TermsStage {
    config: TermsConfig,
}

impl TermsStage {
    /// A stage with this configuration.
    pub fn new(config: TermsConfig) -> Self {
        Self { config }
    }

    /// Remembers the version shown, for the rest of the flow.
    fn remember_shown(&self, host: &dyn Host) -> Result<(), StageError> {
        Ok(host.flow_state_set(SHOWN_KEY, &self.config.version)?)
    }

    /// Whether the version accepted is the one shown (`true` when nothing was
    /// shown in this flow).
    fn shown_is_current(&self, host: &dyn Host) -> Result<bool, StageError> {
        let shown = host.flow_state_get(SHOWN_KEY)?;
        Ok(shown.is_none_or(|v| v == self.config.version))
    }

    fn challenge(&self) -> Value {
        json!({
            "component": COMPONENT,
            "text": self.config.text,
            "version": self.config.version,
        })
    }
}

impl Stage for TermsStage {
    fn get(&self, _req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
        self.remember_shown(host)?;
        Ok(HookResult::new(Outcome::Challenge(self.challenge())))
    }

    fn challenge_invalid(
        &self,
        _req: &StageRequest<'_>,
        response: &Value,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        if response["accepted"] == true && !self.shown_is_current(host)? {
            self.remember_shown(host)?;
            let mut challenge = self.challenge();
            challenge["response_errors"] = json!({
                "accepted": [{"string": "The terms changed; please read them again.", "code": "changed"}]
            });
            return Ok(HookResult::new(Outcome::Challenge(challenge)));
        }
        if response["accepted"] == true {
            host.emit_event(EVENT_ACTION, &json!({"version": self.config.version}))?;
            return Ok(HookResult::new(Outcome::StageOk)
                .with_context(CONTEXT_KEY, Value::String(self.config.version.clone()))
                .with_message(Message::success("Terms accepted.")));
        }
        let mut challenge = self.challenge();
        challenge["response_errors"] = json!({
            "accepted": [{"string": "You must accept the terms to continue.", "code": "required"}]
        });
        Ok(HookResult::new(Outcome::Challenge(challenge)))
    }

    // `restore` is the default: a restored plan shows the terms like any other.
}

impl Plugin for TermsPlugin {
    fn manifest(&self) -> Manifest {
        plugin_api::manifest![StageKind {
            kind: KIND.into(),
            component: COMPONENT.into(),
            config_schema: plugin_api::config::schema::<TermsConfig>(),
        }]
    }

    fn new_stage(
        &self,
        kind: &str,
        _name: &str,
        config_json: &str,
    ) -> Result<Box<dyn Stage>, StageError> {
        match kind {
            KIND => Ok(Box::new(TermsStage::new(TermsConfig::parse(config_json)?))),
            other => Err(StageError::UnknownKind(other.into())),
        }
    }
}

export_plugin!(TermsPlugin);

#[cfg(test)]
mod tests {
    use plugin_api::testing::FakeHost;
    use plugin_api::{FlowToken, HostError, MessageLevel};

    use super::*;

    fn req() -> StageRequest<'static> {
        StageRequest {
            flow_slug: "enroll",
            flow_designation: "enrollment",
            stage_name: "accept-terms",
            query: "",
            base_url: "https://id.example.com",
            locale: "",
            requester_id: None,
            context_json: "{}",
        }
    }

    fn stage() -> Box<dyn Stage> {
        TermsPlugin
            .new_stage(
                KIND,
                "accept-terms",
                r#"{"text": "Be nice.", "version": "v1"}"#,
            )
            .expect("valid config")
    }

    fn expected_challenge() -> Value {
        json!({"component": "ak-stage-terms", "text": "Be nice.", "version": "v1"})
    }

    #[test]
    fn passes_the_conformance_battery_in_process() {
        let config = json!({"text": "Be nice.", "version": "v1"});
        let report =
            plugin_api::testing::conformance::check_stage_kind(&TermsPlugin, "terms", &config);
        assert!(report.iter().all(|p| p.passed), "{report:#?}");
        assert_eq!(report.len(), 7);
    }

    #[test]
    fn get_and_restore_show_the_terms() {
        let host = FakeHost::new();
        let got = stage().get(&req(), &host).expect("get");
        assert_eq!(
            got,
            HookResult::new(Outcome::Challenge(expected_challenge()))
        );
        let token = FlowToken {
            identifier: "t".into(),
            user_id: "1".into(),
            flow_slug: "enroll".into(),
            stage_name: "accept-terms".into(),
            expires_ms: 0,
            intent: "verification".into(),
        };
        assert_eq!(
            stage().restore(&req(), &token, &host).expect("restore"),
            got
        );
        assert!(host.events().is_empty());
    }

    #[test]
    fn terms_changed_since_shown_are_shown_again() {
        let host = FakeHost::new();
        stage().get(&req(), &host).expect("get");
        assert_eq!(
            host.flow_state_get(SHOWN_KEY).unwrap().as_deref(),
            Some("v1")
        );
        let v2 = TermsPlugin
            .new_stage(
                KIND,
                "accept-terms",
                r#"{"text": "Be kind.", "version": "v2"}"#,
            )
            .unwrap();
        let r = v2
            .challenge_invalid(&req(), &json!({"accepted": true}), &host)
            .unwrap();
        let Outcome::Challenge(c) = r.outcome else {
            panic!("{r:?}")
        };
        assert_eq!(c["response_errors"]["accepted"][0]["code"], "changed");
        assert!(host.events().is_empty());
        let r = v2
            .challenge_invalid(&req(), &json!({"accepted": true}), &host)
            .unwrap();
        assert_eq!(r.outcome, Outcome::StageOk);
    }

    #[test]
    fn accepting_passes_and_records_the_event() {
        let host = FakeHost::new();
        let r = stage()
            .challenge_invalid(&req(), &json!({"accepted": true}), &host)
            .expect("post");
        assert_eq!(r.outcome, Outcome::StageOk);
        assert_eq!(r.context_set, vec![(CONTEXT_KEY.to_string(), json!("v1"))]);
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].level, MessageLevel::Success);
        assert_eq!(r.messages[0].message, "Terms accepted.");
        assert_eq!(
            host.events(),
            vec![("terms_accepted".to_string(), json!({"version": "v1"}))]
        );
    }

    #[test]
    fn not_accepting_shows_an_error() {
        for body in [
            json!({}),
            json!({"accepted": false}),
            json!({"accepted": "true"}),
            json!(null),
        ] {
            let host = FakeHost::new();
            let r = stage()
                .challenge_invalid(&req(), &body, &host)
                .expect("post");
            let mut want = expected_challenge();
            want["response_errors"] = json!({"accepted": [
                {"string": "You must accept the terms to continue.", "code": "required"}
            ]});
            assert_eq!(r, HookResult::new(Outcome::Challenge(want)), "{body}");
            assert!(host.events().is_empty());
        }
    }

    #[test]
    fn host_failure_propagates() {
        let host = FakeHost::new();
        host.fail_with(Some(HostError::Unavailable("event store down".into())));
        let err = stage()
            .challenge_invalid(&req(), &json!({"accepted": true}), &host)
            .expect_err("event failure");
        assert_eq!(
            err,
            StageError::Host(HostError::Unavailable("event store down".into()))
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (r#"{"version": "v1"}"#, "missing field `text`"),
            (r#"{"text": "x"}"#, "missing field `version`"),
            (
                r#"{"text": " ", "version": "v1"}"#,
                "text: must not be blank",
            ),
            (
                r#"{"text": 3, "version": "v1"}"#,
                "text: invalid type: integer `3`, expected a string",
            ),
            (
                r#"{"text": "x", "version": 1}"#,
                "version: invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"text": "x", "version": "v1", "extra": 1}"#,
                "unknown field `extra`",
            ),
            ("[]", "expected struct TermsConfig"),
            ("{", "EOF while parsing an object"),
        ];
        for (config, want) in cases {
            match TermsPlugin.new_stage(KIND, "s", config) {
                Err(StageError::Config(msg)) => assert!(msg.contains(want), "{config}: {msg}"),
                Err(other) => panic!("{config}: unexpected error {other}"),
                Ok(_) => panic!("{config}: accepted"),
            }
        }
    }

    #[test]
    fn unknown_kind_and_manifest() {
        assert!(matches!(
            TermsPlugin.new_stage("email", "s", "{}"),
            Err(StageError::UnknownKind(k)) if k == "email"
        ));
        let m = TermsPlugin.manifest();
        assert_eq!(m.name, "terms-stage");
        assert_eq!(m.api_version, plugin_api::API_VERSION);
        assert_eq!(m.stages.len(), 1);
        assert_eq!(m.stages[0].kind, "terms");
        assert_eq!(m.stages[0].component, "ak-stage-terms");
        assert_eq!(
            m.stages[0].config_schema["required"],
            json!(["text", "version"])
        );
    }
}
