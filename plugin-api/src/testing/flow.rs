//! [`FakeFlow`]: one stage driven through its hooks the way a host's executor does,
//! so a test reads get → POST → restore in a few lines.

use serde_json::{Map, Value};

use crate::stage::Stage;
use crate::types::{FlowToken, HookResult, Message, Outcome, StageRequest, User};
use crate::StageError;

/// One stage in a flow, as the reference executor runs it:
///
/// - the plan context lives here between hooks; each hook's `context_set` is
///   applied to it **whatever the outcome** (a challenge too);
/// - flash messages collect until [`FakeFlow::take_messages`];
/// - [`FakeFlow::restore`] puts the token under `is_restored`, as the executor does
///   when a link's plan is restored and confirmed, then calls [`Stage::restore`];
/// - a hook that fails leaves the context as it was.
///
/// The context keys hosts set: `pending_user` (the [`User`] the flow is about;
/// [`FakeFlow::pending_user`]), `is_restored` (the consumed [`FlowToken`]) and, by
/// other stages, keys such as `email` (an address override).
///
/// ```
/// use plugin_api::testing::{FakeFlow, FakeHost};
/// use plugin_api::{HookResult, Host, Outcome, Stage, StageError, StageRequest};
/// use serde_json::{json, Value};
///
/// struct Counter;
/// impl Stage for Counter {
///     fn get(&self, r: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
///         let n = r.context()?.get("views").and_then(Value::as_u64).unwrap_or(0);
///         Ok(HookResult::new(Outcome::Challenge(json!({"component": "x-counter"})))
///             .with_context("views", json!(n + 1)))
///     }
///     fn challenge_invalid(&self, _: &StageRequest<'_>, _: &Value, _: &dyn Host)
///         -> Result<HookResult, StageError> {
///         Ok(HookResult::new(Outcome::StageOk))
///     }
/// }
///
/// let host = FakeHost::new();
/// let mut flow = FakeFlow::new(&Counter, &host);
/// flow.get().unwrap();
/// flow.get().unwrap();
/// assert_eq!(flow.context()["views"], 2, "kept between hooks, as the executor does");
/// assert_eq!(flow.post(json!({})).unwrap(), Outcome::StageOk);
/// ```
pub struct FakeFlow<'a> {
    stage: &'a dyn Stage,
    host: &'a dyn crate::Host,
    context: Map<String, Value>,
    messages: Vec<Message>,
    /// Flow slug passed to the hooks (default `test-flow`).
    pub flow_slug: String,
    /// Flow designation passed to the hooks (default `authentication`).
    pub designation: String,
    /// Stage binding name passed to the hooks (default `test-stage`).
    pub stage_name: String,
    /// Public base URL passed to the hooks (default `https://id.example.com`).
    pub base_url: String,
    /// The flow page's query string (default empty).
    pub query: String,
    /// Request locale (default empty).
    pub locale: String,
    /// Signed-in requester (default none).
    pub requester_id: Option<String>,
}

impl<'a> FakeFlow<'a> {
    /// `stage` at the start of a flow on `host`, with an empty context.
    pub fn new(stage: &'a dyn Stage, host: &'a dyn crate::Host) -> Self {
        Self {
            stage,
            host,
            context: Map::new(),
            messages: Vec::new(),
            flow_slug: "test-flow".into(),
            designation: "authentication".into(),
            stage_name: "test-stage".into(),
            base_url: "https://id.example.com".into(),
            query: String::new(),
            locale: String::new(),
            requester_id: None,
        }
    }

    /// Sets the flow's designation (`enrollment`, `recovery`, …).
    pub fn designation(mut self, designation: &str) -> Self {
        self.designation = designation.into();
        self
    }

    /// Sets `pending_user` in the context, as an identification stage would.
    pub fn pending_user(mut self, user: &User) -> Self {
        let v = serde_json::to_value(user).unwrap_or(Value::Null);
        self.context.insert("pending_user".into(), v);
        self
    }

    /// Sets a context key before the first hook.
    pub fn with_context(mut self, key: &str, value: Value) -> Self {
        self.context.insert(key.into(), value);
        self
    }

    /// The plan context now.
    pub fn context(&self) -> &Map<String, Value> {
        &self.context
    }

    /// The flash messages shown since the last call, oldest first.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    /// The page fetched the challenge: [`Stage::get`].
    pub fn get(&mut self) -> Result<Outcome, StageError> {
        self.run(|stage, req, host| stage.get(req, host))
    }

    /// The page posted `body`: [`Stage::challenge_invalid`].
    pub fn post(&mut self, body: Value) -> Result<Outcome, StageError> {
        self.run(|stage, req, host| stage.challenge_invalid(req, &body, host))
    }

    /// A link's plan was restored and confirmed: `is_restored` = `token`, then
    /// [`Stage::restore`].
    pub fn restore(&mut self, token: &FlowToken) -> Result<Outcome, StageError> {
        let v = serde_json::to_value(token).map_err(|e| StageError::BadContext(e.to_string()))?;
        self.context.insert("is_restored".into(), v);
        self.run(|stage, req, host| stage.restore(req, token, host))
    }

    fn run(
        &mut self,
        hook: impl FnOnce(
            &dyn Stage,
            &StageRequest<'_>,
            &dyn crate::Host,
        ) -> Result<HookResult, StageError>,
    ) -> Result<Outcome, StageError> {
        let context_json = Value::Object(self.context.clone()).to_string();
        let req = StageRequest {
            flow_slug: &self.flow_slug,
            flow_designation: &self.designation,
            stage_name: &self.stage_name,
            query: &self.query,
            base_url: &self.base_url,
            locale: &self.locale,
            requester_id: self.requester_id.as_deref(),
            context_json: &context_json,
        };
        let result = hook(self.stage, &req, self.host)?;
        self.context.extend(result.context_set);
        self.messages.extend(result.messages);
        Ok(result.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;
    use crate::Host;
    use serde_json::json;

    /// Records what it saw; `post` fails on `{"fail": true}` after setting a key.
    struct Probe;

    impl Stage for Probe {
        fn get(&self, r: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
            let seen = r.context()?.contains_key("is_restored");
            Ok(
                HookResult::new(Outcome::Challenge(json!({"component": "x"})))
                    .with_context("restored_seen", json!(seen))
                    .with_message(Message::success("shown")),
            )
        }
        fn challenge_invalid(
            &self,
            _: &StageRequest<'_>,
            body: &Value,
            _: &dyn Host,
        ) -> Result<HookResult, StageError> {
            if body["fail"] == true {
                return Err(StageError::Internal("no".into()));
            }
            Ok(HookResult::new(Outcome::StageOk).with_context("posted", json!(true)))
        }
    }

    #[test]
    fn context_and_messages_carry_over_and_a_failure_changes_nothing() {
        let host = FakeHost::new();
        let user = User {
            id: Some("7".into()),
            username: "jo".into(),
            ..Default::default()
        };
        let mut f = FakeFlow::new(&Probe, &host).pending_user(&user);
        assert!(matches!(f.get().unwrap(), Outcome::Challenge(_)));
        assert_eq!(f.context()["restored_seen"], false);
        assert_eq!(f.context()["pending_user"]["username"], "jo");
        assert!(f.post(json!({"fail": true})).is_err());
        assert!(!f.context().contains_key("posted"));
        assert_eq!(f.post(json!({})).unwrap(), Outcome::StageOk);
        assert_eq!(f.context()["posted"], true);
        assert_eq!(f.take_messages().len(), 1);
        assert!(f.take_messages().is_empty());
    }

    #[test]
    fn restore_marks_the_context_and_defaults_to_get() {
        let host = FakeHost::new();
        let token = FlowToken {
            identifier: "t".into(),
            user_id: "7".into(),
            flow_slug: "test-flow".into(),
            stage_name: "test-stage".into(),
            expires_ms: 1,
            intent: "verification".into(),
        };
        let mut f = FakeFlow::new(&Probe, &host);
        f.restore(&token).unwrap();
        assert_eq!(f.context()["is_restored"]["identifier"], "t");
        assert_eq!(
            f.context()["restored_seen"],
            true,
            "the default restore ran get"
        );
    }
}
