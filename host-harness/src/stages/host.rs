//! The host services lent to a plugin hook: [`plugin_api::Host`] over the host's
//! store, cache, mail queue and clock, for one request of one flow.

use plugin_api::{
    FlowToken, Host, HostError, LogLevel, NewFlowToken, OutgoingMail, RateLimit, User,
};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::MailLimit;
use crate::cache::Cache;
use crate::mail::{MailError, Mailer};
use crate::plan::{Plan, PlanEntry};
use crate::storage::{Event, Store, StoreError, StoreErrorKind, StoredToken};
use crate::system::clock::Clock;
use crate::system::entropy::Entropy;
use crate::system::metrics::{metrics, ServiceLabels};

/// Everything a hook may touch, borrowed for one call.
pub struct RequestHost<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Cache.
    pub cache: &'a dyn Cache,
    /// Outgoing mail.
    pub mail: &'a dyn Mailer,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Randomness.
    pub entropy: &'a dyn Entropy,
    /// The plan of the running flow (snapshotted into new tokens).
    pub plan: &'a Plan,
    /// Cache-key namespace of the calling plugin.
    pub namespace: &'a str,
    /// The calling stage binding (mail from it names it as its route).
    pub stage_name: &'a str,
    /// The browser session's random name, for per-session limits.
    pub session_key: &'a str,
    /// Mails per browser session.
    pub mail_limit: MailLimit,
    /// Global `From`.
    pub from_address: &'a str,
    /// What the hook wrote with `flow_state_set`, applied with its result.
    pub state_writes: StateWrites,
    /// A token from `create_flow_token` not yet stored (see [`PendingToken`]).
    pub pending_token: PendingToken,
}

/// A flow token a hook created and the host has not stored yet. It is stored with
/// the hook's next mail in one transaction (the mail carries its link: one durable
/// commit instead of two, and never one without the other), or alone before the
/// hook reads, consumes or revokes tokens, creates another one, or returns
/// ([`RequestHost::write_pending_token`], which the executor calls after every hook).
#[derive(Debug, Default)]
pub struct PendingToken(Mutex<Option<StoredToken>>);

impl PendingToken {
    fn take(&self) -> Option<StoredToken> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
    fn put(&self, token: StoredToken) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }
}

/// The plan-context key under which each stage binding's flow state lives.
pub const FLOW_STATE_KEY: &str = "_flow_state";

/// Flow-state writes of one hook call: key to new value, `None` to delete.
#[derive(Debug, Default)]
pub struct StateWrites(Mutex<Vec<(String, Option<String>)>>);

fn unavailable(e: impl std::fmt::Display) -> HostError {
    HostError::Unavailable(e.to_string())
}

/// The span a host-service call runs in, inside the hook's: at DEBUG level
/// (`RUST_LOG=host=debug`), so it costs nothing when not asked for.
fn service_span(service: &'static str) -> tracing::span::EnteredSpan {
    tracing::debug_span!(target: "host", "host_service", service).entered()
}

/// `r`, with a failure counted in [`metrics`] under `service` and the error's kind.
fn counted<T>(service: &'static str, r: Result<T, HostError>) -> Result<T, HostError> {
    if let Err(e) = &r {
        let error = match e {
            HostError::Unavailable(_) => "unavailable",
            HostError::Rejected(_) => "rejected",
            HostError::Unsupported(_) => "unsupported",
            HostError::Panicked(_) => "panicked",
            HostError::Limited(_) => "limited",
            HostError::Internal(_) => "internal",
            _ => "other",
        };
        metrics()
            .service_errors
            .get_or_create(&ServiceLabels { service, error })
            .inc();
    }
    r
}

/// A storage failure as the plugin sees it, by kind: an unreachable database may
/// come back, a conflict is the request's fault, corrupt data is the host's.
pub fn store_error(e: StoreError) -> HostError {
    match e.kind() {
        StoreErrorKind::Unavailable => HostError::Unavailable(e.to_string()),
        StoreErrorKind::Conflict | StoreErrorKind::IdentityClash => {
            HostError::Rejected(e.to_string())
        }
        StoreErrorKind::Corrupt => HostError::Internal(e.to_string()),
    }
}

/// Masks values whose key looks secret (authentik's event cleanser:
/// `API|TOKEN|KEY|SECRET|PASS|SIGNATURE`, case-insensitive).
pub fn cleanse(v: &Value) -> Value {
    const SECRET: &[&str] = &["api", "token", "key", "secret", "pass", "signature"];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lk = k.to_lowercase();
                    if SECRET.iter().any(|s| lk.contains(s)) && !v.is_object() {
                        (k.clone(), Value::String("********".into()))
                    } else {
                        (k.clone(), cleanse(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(cleanse).collect()),
        other => other.clone(),
    }
}

impl RequestHost<'_> {
    /// Stores the token `create_flow_token` left pending, if any; a failure is
    /// counted under `create_flow_token`.
    pub fn write_pending_token(&self) -> Result<(), HostError> {
        let Some(token) = self.pending_token.take() else {
            return Ok(());
        };
        let r = counted(
            "create_flow_token",
            self.store.insert_token(&token).map_err(store_error),
        );
        if r.is_ok() {
            metrics().token("issued", 1);
        }
        r
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// The calling stage's flow state: what the plan holds, then this call's writes.
    fn flow_state(&self) -> Map<String, Value> {
        let mut state = self
            .plan
            .context
            .get(FLOW_STATE_KEY)
            .and_then(|all| all.get(self.stage_name))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let writes = self
            .state_writes
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes.iter() {
            match v {
                Some(v) => state.insert(k.clone(), Value::String(v.clone())),
                None => state.remove(k),
            };
        }
        state
    }

    /// The plan-context entry to set after a successful hook that wrote flow
    /// state: every stage's state, this stage's updated.
    pub fn flow_state_update(&self) -> Option<(String, Value)> {
        let wrote = !self
            .state_writes
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if !wrote {
            return None;
        }
        let mut all = self
            .plan
            .context
            .get(FLOW_STATE_KEY)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        all.insert(
            self.stage_name.to_string(),
            Value::Object(self.flow_state()),
        );
        Some((FLOW_STATE_KEY.to_string(), Value::Object(all)))
    }

    /// Counts one mail against the session's limit (decoys too, so an unknown user's
    /// session is limited exactly like a known one's).
    fn within_mail_limit(&self) -> Result<(), HostError> {
        let MailLimit {
            per_session,
            window_ms,
        } = self.mail_limit;
        if per_session == 0 || self.session_key.is_empty() {
            return Ok(());
        }
        let key = format!("host/mail-per-session/{}", self.session_key);
        match self
            .cache
            .rate_limit(&key, window_ms, per_session, self.clock.now_ms())
            .map_err(unavailable)?
        {
            RateLimit::Allowed => Ok(()),
            RateLimit::Limited { retry_after_ms } => Err(HostError::Limited(format!(
                "this session queued {per_session} mails already; next in {} s",
                retry_after_ms.div_ceil(1000)
            ))),
        }
    }

    /// The plan stored with a new token: the running plan, headed by the
    /// confirmation step when asked, without any earlier restore marker.
    pub fn snapshot(&self, token: &NewFlowToken) -> Value {
        let mut plan = self.plan.clone();
        plan.context.remove("is_restored");
        if let Some(header) = &token.confirm_header {
            plan.stages.insert(
                0,
                PlanEntry::Confirm {
                    header: header.clone(),
                    key_hash: token.key_hash.clone(),
                },
            );
        }
        serde_json::to_value(&plan).unwrap_or(Value::Null)
    }
}

impl Host for RequestHost<'_> {
    fn user(&self, id: &str) -> Result<Option<User>, HostError> {
        let _span = service_span("user");
        counted("user", self.store.user(id).map_err(store_error))
    }
    fn set_user_active(&self, id: &str, active: bool) -> Result<bool, HostError> {
        let _span = service_span("set_user_active");
        counted(
            "set_user_active",
            self.store.set_active(id, active).map_err(store_error),
        )
    }
    fn create_flow_token(&self, t: &NewFlowToken) -> Result<(), HostError> {
        let _span = service_span("create_flow_token");
        if t.key_hash.len() != 64 || !t.key_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HostError::Rejected(
                "key_hash must be a SHA-256 hex digest".into(),
            ));
        }
        let stored = StoredToken {
            key_hash: t.key_hash.clone(),
            token: FlowToken {
                identifier: t.identifier.clone(),
                // A decoy belongs to nobody, so the executor never restores it.
                user_id: if t.decoy {
                    String::new()
                } else {
                    t.user_id.clone()
                },
                flow_slug: self.plan.flow_slug.clone(),
                stage_name: t.stage_name.clone(),
                expires_ms: t.expires_ms,
                intent: t.intent.clone(),
            },
            revoke_on_execution: t.revoke_on_execution,
            plan: self.snapshot(t),
        };
        self.write_pending_token()?;
        self.pending_token.put(stored);
        Ok(())
    }
    fn flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        let _span = service_span("flow_token");
        self.write_pending_token()?;
        let found = self.store.token(key_hash, self.clock.now_ms());
        Ok(counted("flow_token", found.map_err(store_error))?.map(|t| t.token))
    }
    fn consume_flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        let _span = service_span("consume_flow_token");
        self.write_pending_token()?;
        let r = self.store.consume_token(key_hash, self.clock.now_ms());
        let r = counted("consume_flow_token", r.map_err(store_error));
        if matches!(r, Ok(Some(_))) {
            metrics().token("consumed", 1);
        }
        r
    }
    fn revoke_flow_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, HostError> {
        let _span = service_span("revoke_flow_tokens");
        self.write_pending_token()?;
        let r = self.store.revoke_tokens(user_id, stage_name);
        counted("revoke_flow_tokens", r.map_err(store_error))
    }
    fn cache_get(&self, key: &str) -> Result<Option<String>, HostError> {
        let _span = service_span("cache_get");
        let r = self.cache.get(&self.key(key), self.clock.now_ms());
        counted("cache_get", r.map_err(unavailable))
    }
    fn cache_set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), HostError> {
        let _span = service_span("cache_set");
        let r = (self.cache).set(&self.key(key), value, ttl_ms, self.clock.now_ms());
        counted("cache_set", r.map_err(unavailable))
    }
    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, HostError> {
        let _span = service_span("rate_limit");
        let r = (self.cache).rate_limit(&self.key(key), window_ms, max, now_ms);
        let r = counted("rate_limit", r.map_err(unavailable));
        let decision = match r {
            Ok(RateLimit::Allowed) => "allowed",
            Ok(RateLimit::Limited { .. }) => "limited",
            Err(_) => "error",
        };
        metrics().rate_limit(decision);
        r
    }
    fn emit_event(&self, action: &str, context: &Value) -> Result<(), HostError> {
        let _span = service_span("emit_event");
        if !context.is_object() {
            return Err(HostError::Rejected(
                "event context must be a JSON object".into(),
            ));
        }
        tracing::info!(target: "events", action, "event recorded");
        let r = self.store.add_event(&Event {
            action: action.to_string(),
            context: cleanse(context),
            at_ms: self.clock.now_ms(),
        });
        counted("emit_event", r.map_err(store_error))
    }
    fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), HostError> {
        let _span = service_span("enqueue_mail");
        counted("enqueue_mail", self.within_mail_limit())?;
        let token = self.pending_token.take();
        let r = (self.mail)
            .queue(self.stage_name, mail, token.as_ref())
            .map_err(|e| match e {
                MailError::Store(e) => store_error(e),
                other => HostError::Internal(other.to_string()),
            });
        if r.is_ok() && token.is_some() {
            metrics().token("issued", 1);
        }
        counted("enqueue_mail", r)
    }
    fn default_from_address(&self) -> String {
        let _span = service_span("default_from_address");
        self.from_address.to_string()
    }
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        plugin_api::emit_to_host_tracing(level, target, message);
    }
    fn now_ms(&self) -> i64 {
        let _span = service_span("now_ms");
        self.clock.now_ms()
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        let _span = service_span("fill_random");
        let r = self.entropy.fill(buf);
        counted(
            "fill_random",
            r.map_err(|e| HostError::Unavailable(e.to_string())),
        )
    }
    fn flow_state_get(&self, key: &str) -> Result<Option<String>, HostError> {
        let _span = service_span("flow_state_get");
        Ok(self
            .flow_state()
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string))
    }
    fn host_info(&self) -> Result<String, HostError> {
        let _span = service_span("host_info");
        Ok(concat!("host-harness ", env!("CARGO_PKG_VERSION")).to_string())
    }
    fn flow_state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        let _span = service_span("flow_state_set");
        let state = self.flow_state();
        let after = state.len() + usize::from(!state.contains_key(key));
        counted(
            "flow_state_set",
            plugin_api::check_flow_state(key, value, after),
        )?;
        let value = (!value.is_empty()).then(|| value.to_string());
        self.state_writes
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key.to_string(), value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::cleanse;
    use serde_json::json;

    #[test]
    fn cleanser_masks_secret_keys() {
        let v = cleanse(
            &json!({"password": "x", "args": {"flow_token": "t", "next": "/"}, "message": "m"}),
        );
        assert_eq!(
            v,
            json!({"password": "********", "args": {"flow_token": "********", "next": "/"}, "message": "m"})
        );
    }
}
