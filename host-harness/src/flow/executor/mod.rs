//! The flow executor, modelled on authentik's: a plan per session, one stage at a
//! time, link restore through `?flow_token=` with a confirmation step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_api::token::{constant_time_eq, hash_key};
use plugin_api::{Brand, FlowToken, HookResult, Message, Outcome, Stage, StageError, StageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::cache::Cache;
use crate::i18n::{request_locale, I18nConfig};
use crate::mail::MailQueue;
use crate::plan::{Plan, PlanEntry};
use crate::stages::host::RequestHost;
use crate::stages::{Binding, InvalidResponseAction, MailLimit, StageImpl};
use crate::storage::spool::EventSpool;
use crate::storage::{Event, HostStore};
use crate::system::clock::Clock;
use crate::system::entropy::{self, Entropy};
use crate::system::metrics::{metrics, PanicLabels, StageLabels};

mod faults;

pub use faults::{MSG_QUARANTINED, QUARANTINE_EVENT, RELEASE_EVENT, SLOW_HOOK_EVENT};

/// Access-denied message when a link's token is gone.
pub const MSG_LINK_USED: &str = "Link was already used, please request a new link.";

/// A flow: slug, title, designation and its stage bindings in order.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    /// URL slug.
    pub slug: String,
    /// Title shown in `flow_info`.
    #[serde(default)]
    pub title: String,
    /// `enrollment`, `recovery`, `authentication`, `stage_configuration`, …
    pub designation: String,
    /// Stage binding names, in order.
    pub stages: Vec<String>,
    /// Brand fields of this flow, laid over `[brand]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<crate::i18n::BrandConfig>,
}

/// Server-side state of one browser session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Session {
    /// The running plan.
    pub plan: Option<Plan>,
    /// Signed-in user.
    pub user_id: Option<String>,
    /// Flash messages not yet delivered.
    pub messages: Vec<Message>,
    /// Token of the confirmation prompt shown last.
    pub consent_token: Option<String>,
    /// The flow's GET parameters (the `query` it was planned with).
    pub get_params: String,
    /// A random name for this session, for limits kept per session (never the
    /// cookie); given when a plugin hook first runs.
    #[serde(default)]
    pub key: String,
    /// The current request's `Accept-Language` header (set per request, never stored).
    #[serde(skip)]
    pub accept_language: String,
}

/// What the executor answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// HTTP 200 with this challenge.
    Challenge(Value),
    /// HTTP 302 to this executor URL (follow with a GET).
    Redirect(String),
    /// HTTP 404: no such flow.
    NotFound,
}

impl Response {
    /// The challenge's `component`, `"302"` for a redirect, `"404"` for not found.
    pub fn component(&self) -> &str {
        match self {
            Self::Challenge(v) => v.get("component").and_then(Value::as_str).unwrap_or(""),
            Self::Redirect(_) => "302",
            Self::NotFound => "404",
        }
    }
}

/// The executor with its flows, bindings and backends.
pub struct Executor {
    /// Public base URL links are built from.
    pub base_url: String,
    /// Global `From` address.
    pub from_address: String,
    /// Mails per browser session.
    pub mail_limit: MailLimit,
    /// Locales and the default one.
    pub i18n: I18nConfig,
    /// Each flow's resolved brand as JSON text (the default brand for a flow the
    /// settings do not list), added to the context hooks see.
    brands: HashMap<String, String>,
    flows: HashMap<String, FlowDef>,
    bindings: HashMap<String, Binding>,
    /// Storage.
    pub store: Arc<dyn HostStore>,
    /// Cache.
    pub cache: Arc<dyn Cache>,
    /// Outgoing mail.
    pub mail: Arc<MailQueue>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness (consent tokens, request ids, session ids).
    pub entropy: Arc<dyn Entropy>,
    /// Events kept while the store is down.
    pub events: EventSpool,
}

/// What an [`Executor`] is configured with besides flows, bindings and backends.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Public base URL links are built from.
    pub base_url: String,
    /// Global `From` address.
    pub from_address: String,
    /// Mails per browser session.
    pub mail_limit: MailLimit,
    /// Locales and the default one.
    pub i18n: I18nConfig,
    /// Each flow's brand (validated), by slug; a flow not listed gets the default.
    pub brands: HashMap<String, Brand>,
}

/// The backends an [`Executor`] runs on.
pub struct Services {
    /// Storage.
    pub store: Arc<dyn HostStore>,
    /// Cache.
    pub cache: Arc<dyn Cache>,
    /// Outgoing mail.
    pub mail: Arc<MailQueue>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub entropy: Arc<dyn Entropy>,
}

/// The executor URL of a flow with its `query`.
pub fn executor_url(slug: &str, query: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!("/api/v3/flows/executor/{slug}/?query={q}")
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The confirmation step at the head of a restored plan.
#[derive(Clone, Copy)]
struct Confirm<'a> {
    header: &'a str,
    key_hash: &'a str,
    /// The request restored the plan, reading the token a moment ago.
    just_read: bool,
}

/// Where a plugin hook is called from.
#[derive(Clone, Copy)]
struct PluginCall<'a> {
    stage: &'a dyn Stage,
    namespace: &'a str,
    version: &'a str,
    kind: &'a str,
    flow: &'a FlowDef,
    name: &'a str,
    requester: Option<&'a str>,
    query: &'a str,
    session_key: &'a str,
    /// A call slower than this is reported (0 = never).
    hook_timeout_ms: u64,
    /// The request's `Accept-Language`.
    accept_language: &'a str,
    /// The binding's `default_locale`.
    default_locale: Option<&'a str>,
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

thread_local! {
    static REQUEST_ID: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` as part of request `id` (on this thread): a `system_exception` it
/// records carries that id, so the user, the event and the logs name one request.
pub fn in_request<T>(id: &str, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<String>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let before = self.0.take();
            REQUEST_ID.with(|r| *r.borrow_mut() = before);
        }
    }
    let before = REQUEST_ID.with(|r| r.borrow_mut().replace(id.to_string()));
    let _reset = Reset(before);
    f()
}

/// The id of the request this thread runs, else a fresh one.
fn current_request_id(entropy: &dyn Entropy) -> String {
    REQUEST_ID
        .with(|r| r.borrow().clone())
        .unwrap_or_else(|| entropy::hex(entropy, 8).unwrap_or_else(|_| "unavailable".into()))
}

/// Counts a finished hook call in the process's metrics (a panic also by stage).
fn record_hook(
    call: &PluginCall<'_>,
    hook: &'static str,
    result: &Result<HookResult, StageError>,
    took: Duration,
) {
    let outcome = match result {
        Ok(r) => match r.outcome {
            Outcome::Challenge(_) => "challenge",
            Outcome::StageOk => "stage_ok",
            Outcome::StageInvalid(_) => "stage_invalid",
        },
        Err(StageError::Panicked(_)) => "panic",
        Err(_) => "error",
    };
    let m = metrics();
    if outcome == "panic" {
        m.plugin_panics
            .get_or_create(&PanicLabels {
                plugin: call.namespace.to_string(),
                stage: call.name.to_string(),
            })
            .inc();
    }
    let stage = StageLabels {
        plugin: call.namespace.to_string(),
        plugin_version: call.version.to_string(),
        stage_kind: call.kind.to_string(),
        hook,
    };
    m.hook(&stage, outcome, took);
}

/// The redirect target for a finished flow's `next`, as a path on the host's own
/// origin, or `None` when `next` is unsafe: it must resolve against `base_url` to
/// the same scheme, host and port, and may hold no control character, space or
/// backslash anywhere (browsers drop TAB and LF, so `/\t/evil.test` would otherwise
/// become `//evil.test`).
pub fn same_origin_target(base_url: &str, next: &str) -> Option<String> {
    if next.is_empty()
        || next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let base = url::Url::parse(base_url).ok()?;
    let target = base.join(next).ok()?;
    if target.origin() != base.origin() {
        return None;
    }
    let mut to = target.path().to_string();
    if let Some(q) = target.query() {
        to.push('?');
        to.push_str(q);
    }
    if let Some(f) = target.fragment() {
        to.push('#');
        to.push_str(f);
    }
    // A path starting `//` would be read as another host.
    (to.starts_with('/') && !to.starts_with("//")).then_some(to)
}

fn pending_display(ctx: &Map<String, Value>) -> String {
    ctx.get("pending_user")
        .and_then(|u| u.get("username"))
        .or_else(|| ctx.get("pending_user_identifier"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

impl Executor {
    /// Assembles an executor. Callers validate flows and bindings (see
    /// [`crate::config`]).
    pub fn new(
        settings: ExecutorSettings,
        flows: Vec<FlowDef>,
        bindings: Vec<Binding>,
        services: Services,
    ) -> Self {
        Self {
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            from_address: settings.from_address,
            mail_limit: settings.mail_limit,
            i18n: settings.i18n,
            brands: (flows.iter())
                .map(|f| {
                    let b = settings.brands.get(&f.slug).cloned().unwrap_or_default();
                    (
                        f.slug.clone(),
                        serde_json::to_string(&b).unwrap_or_default(),
                    )
                })
                .collect(),
            flows: flows.into_iter().map(|f| (f.slug.clone(), f)).collect(),
            bindings: bindings.into_iter().map(|b| (b.name.clone(), b)).collect(),
            store: services.store,
            cache: services.cache,
            mail: services.mail,
            clock: services.clock,
            entropy: services.entropy,
            events: EventSpool::default(),
        }
    }

    /// Whether a session holds anything a later request needs: a signed-in user, a
    /// message not yet shown, a confirmation prompt, or a plan that moved past its
    /// start. A session without state need not be stored.
    pub fn session_has_state(&self, s: &Session) -> bool {
        s.user_id.is_some()
            || !s.messages.is_empty()
            || s.consent_token.is_some()
            || s.plan.as_ref().is_some_and(|p| !self.is_pristine(p))
    }

    /// A plan exactly as [`Executor::plan_flow`] makes it for an anonymous visitor.
    fn is_pristine(&self, p: &Plan) -> bool {
        p.context.is_empty()
            && self.flows.get(&p.flow_slug).is_some_and(|f| {
                f.stages.len() == p.stages.len()
                    && f.stages
                        .iter()
                        .zip(&p.stages)
                        .all(|(name, e)| matches!(e, PlanEntry::Stage { name: n } if n == name))
            })
    }

    /// Records a `system_exception` event (messages cleansed) and logs it; returns
    /// the request id shown to the user: the HTTP request's ([`in_request`]), else a
    /// fresh one.
    pub fn record_system_exception(&self, stage: &str, detail: &str) -> String {
        let request_id = current_request_id(&*self.entropy);
        tracing::error!(target: "executor", stage, %request_id, error = %detail, "System exception during flow execution.");
        let event = Event {
            action: "system_exception".into(),
            context: crate::stages::host::cleanse(&json!({
                "message": "System exception during flow execution.",
                "stage": stage,
                "error": detail,
                "request_id": request_id,
            })),
            at_ms: self.clock.now_ms(),
        };
        self.events.record(&*self.store, event);
        request_id
    }

    /// A configured flow.
    pub fn flow(&self, slug: &str) -> Option<&FlowDef> {
        self.flows.get(slug)
    }

    /// A configured binding.
    pub fn binding(&self, name: &str) -> Option<&Binding> {
        self.bindings.get(name)
    }

    /// `GET /api/v3/flows/executor/<slug>/?query=…`
    pub fn get(&self, s: &mut Session, slug: &str, query: &str) -> Response {
        self.run(s, slug, query, None)
    }

    /// `POST /api/v3/flows/executor/<slug>/?query=…` with a JSON body.
    pub fn post(&self, s: &mut Session, slug: &str, query: &str, body: &Value) -> Response {
        self.run(s, slug, query, Some(body))
    }

    fn run(&self, s: &mut Session, slug: &str, query: &str, body: Option<&Value>) -> Response {
        let Some(flow) = self.flows.get(slug) else {
            return Response::NotFound;
        };
        self.events.flush(&*self.store);
        let restored = self.maybe_restore(s, query);
        if let Some(p) = &s.plan {
            if p.flow_slug != slug {
                tracing::info!(target: "executor", "Found existing plan for other flow, deleting plan");
                s.plan = None;
            }
        }
        if s.plan.is_none() {
            s.plan = Some(self.plan_flow(flow, s.user_id.as_deref(), Map::new()));
            s.get_params = query.to_string();
        }
        let entry = s.plan.as_ref().and_then(|p| p.stages.first().cloned());
        match entry {
            None => self.finish(s, flow),
            Some(PlanEntry::Confirm { header, key_hash }) => {
                let confirm = Confirm {
                    header: &header,
                    key_hash: &key_hash,
                    just_read: restored,
                };
                self.confirm(s, flow, query, &confirm, body)
            }
            Some(PlanEntry::Stage { name }) => self.stage(s, flow, query, &name, body),
        }
    }

    fn plan_flow(
        &self,
        flow: &FlowDef,
        user_id: Option<&str>,
        mut context: Map<String, Value>,
    ) -> Plan {
        if let Some(id) = user_id {
            if let Ok(Some(u)) = self.store.user(id) {
                context.insert(
                    "pending_user".into(),
                    serde_json::to_value(u).unwrap_or(Value::Null),
                );
            }
        }
        Plan {
            flow_slug: flow.slug.clone(),
            stages: flow
                .stages
                .iter()
                .map(|n| PlanEntry::Stage { name: n.clone() })
                .collect(),
            context,
        }
    }

    /// authentik's executor token check: a valid `flow_token` replaces the session's
    /// plan with the token's snapshot, marked `is_restored`. Whether it did.
    fn maybe_restore(&self, s: &mut Session, query: &str) -> bool {
        let Some(key) = query_param(query, "flow_token") else {
            return false;
        };
        if key.is_empty() || key.len() > 255 {
            return false;
        }
        let hash = hash_key(&key);
        let stored = match self.store.token(&hash, self.clock.now_ms()) {
            // A decoy (no user) is never restored.
            Ok(Some(t)) if !t.token.user_id.is_empty() => t,
            Ok(_) => return false,
            Err(e) => {
                tracing::error!(target: "executor", error = %e, "token lookup failed");
                return false;
            }
        };
        let same = s.plan.as_ref().is_some_and(|p| {
            p.context
                .get("is_restored")
                .and_then(|t| t.get("identifier"))
                .and_then(Value::as_str)
                == Some(stored.token.identifier.as_str())
        });
        if same {
            // The page keeps `flow_token` in its query: the session already runs
            // this token's plan.
            return false;
        }
        if stored.revoke_on_execution {
            let _ = self.store.delete_token(&hash);
        }
        let mut plan: Plan = match serde_json::from_value(stored.plan) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "executor", error = %e, "Failed to restore token plan");
                return false;
            }
        };
        plan.context.insert(
            "is_restored".into(),
            serde_json::to_value(&stored.token).unwrap_or(Value::Null),
        );
        s.plan = Some(plan);
        s.get_params = query.to_string();
        s.consent_token = None;
        true
    }

    fn decorate(&self, s: &mut Session, flow: &FlowDef, mut v: Value) -> Response {
        if let Value::Object(m) = &mut v {
            m.insert(
                "flow_info".into(),
                json!({
                    "title": flow.title,
                    "background": "",
                    "cancel_url": "/flows/-/cancel/",
                    "layout": "stacked",
                }),
            );
            if !s.messages.is_empty() {
                let msgs = std::mem::take(&mut s.messages);
                m.insert(
                    "messages".into(),
                    serde_json::to_value(msgs).unwrap_or_default(),
                );
            }
        }
        Response::Challenge(v)
    }

    fn deny(&self, s: &mut Session, flow: &FlowDef, message: Option<String>) -> Response {
        let pending = s
            .plan
            .as_ref()
            .map(|p| pending_display(&p.context))
            .unwrap_or_default();
        s.plan = None;
        s.get_params.clear();
        let v = json!({
            "component": "ak-stage-access-denied",
            "pending_user": pending,
            "pending_user_avatar": "",
            "error_message": message.unwrap_or_else(|| "Unknown error".into()),
        });
        self.decorate(s, flow, v)
    }

    fn finish(&self, s: &mut Session, flow: &FlowDef) -> Response {
        s.plan = None;
        let to = match query_param(&s.get_params, "next") {
            Some(n) => match same_origin_target(&self.base_url, &n) {
                Some(to) => to,
                None => {
                    s.messages.push(Message::error("Invalid next URL"));
                    "/".into()
                }
            },
            None => "/".into(),
        };
        s.get_params.clear();
        self.decorate(s, flow, json!({"component": "xak-flow-redirect", "to": to}))
    }

    fn advance(&self, s: &mut Session, flow: &FlowDef, query: &str) -> Response {
        let Some(plan) = s.plan.as_mut() else {
            return self.finish(s, flow);
        };
        if !plan.stages.is_empty() {
            plan.stages.remove(0);
        }
        if plan.stages.is_empty() {
            self.finish(s, flow)
        } else {
            Response::Redirect(executor_url(&flow.slug, query))
        }
    }

    fn confirm(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        c: &Confirm<'_>,
        body: Option<&Value>,
    ) -> Response {
        let Confirm {
            header,
            key_hash,
            just_read,
        } = *c;
        let now = self.clock.now_ms();
        let failed = |e: &dyn std::fmt::Display| StageError::Internal(e.to_string());
        let submitted = body
            .and_then(|b| b.get("token"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let confirmed = body.is_some()
            && s.consent_token
                .as_deref()
                .is_some_and(|t| constant_time_eq(t, submitted));
        if confirmed {
            s.consent_token = None;
            // One statement deletes and returns: of two browsers confirming the
            // same link, exactly one proceeds.
            return match self.store.consume_token(key_hash, now) {
                Ok(Some(_)) => self.advance(s, flow, query),
                Ok(None) => self.deny(s, flow, Some(MSG_LINK_USED.into())),
                Err(e) => self.flow_error(s, flow, "confirmation", &failed(&e)),
            };
        }
        // A plan restored in this very request was read with its token just now.
        if !just_read {
            match self.store.token(key_hash, now) {
                Ok(Some(_)) => {}
                Ok(None) => return self.deny(s, flow, Some(MSG_LINK_USED.into())),
                Err(e) => return self.flow_error(s, flow, "confirmation", &failed(&e)),
            }
        }
        match entropy::uuid4(&*self.entropy) {
            Ok(token) => self.consent_prompt(s, flow, header, token),
            Err(e) => self.flow_error(s, flow, "confirmation", &failed(&e)),
        }
    }

    /// The confirmation challenge, with a fresh consent token kept in the session.
    fn consent_prompt(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        header: &str,
        token: String,
    ) -> Response {
        s.consent_token = Some(token.clone());
        let pending = s
            .plan
            .as_ref()
            .map(|p| pending_display(&p.context))
            .unwrap_or_default();
        self.decorate(
            s,
            flow,
            json!({
                "component": "ak-stage-consent",
                "pending_user": pending,
                "pending_user_avatar": "",
                "header_text": header,
                "permissions": [],
                "additional_permissions": [],
                "token": token,
            }),
        )
    }

    fn flow_error(&self, s: &mut Session, flow: &FlowDef, stage: &str, e: &StageError) -> Response {
        let request_id = self.record_system_exception(stage, &e.to_string());
        if matches!(e, StageError::Panicked(_)) {
            return self.deny(s, flow, None);
        }
        self.decorate(
            s,
            flow,
            json!({"component": "ak-stage-flow-error", "request_id": request_id}),
        )
    }

    fn stage(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        name: &str,
        body: Option<&Value>,
    ) -> Response {
        let Some(binding) = self.bindings.get(name) else {
            let e = StageError::Internal(format!("stage binding '{name}' does not exist"));
            return self.flow_error(s, flow, name, &e);
        };
        if self.refuse_if_quarantined(binding) {
            return self.quarantined(s, flow, query, binding);
        }
        // A panic in any stage, built in or linked in-process, becomes an error here:
        // the flow is denied and an event recorded, as for a panic in a plugin library.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_binding(s, flow, query, name, binding, body)
        }));
        let result = match ran {
            Ok(Ok(result)) => result,
            Ok(Err(response)) => return response,
            Err(panic) => {
                if let StageImpl::Plugin { namespace, .. } = &binding.imp {
                    let stage = name.to_string();
                    let plugin = namespace.clone();
                    (metrics().plugin_panics)
                        .get_or_create(&PanicLabels { plugin, stage })
                        .inc();
                }
                Err(StageError::Panicked(panic_text(&*panic)))
            }
        };
        match (&binding.imp, result) {
            (StageImpl::Plugin { .. }, Err(e)) => self.plugin_failed(s, flow, query, binding, e),
            (_, result) => self.apply(s, flow, query, name, result),
        }
    }

    /// Calls the binding's hook; `Err` is an answer decided before any hook ran.
    fn run_binding(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        name: &str,
        binding: &Binding,
        body: Option<&Value>,
    ) -> Result<Result<HookResult, StageError>, Response> {
        match &binding.imp {
            StageImpl::Builtin(b) => {
                let mut login = None;
                let Some(plan) = s.plan.as_mut() else {
                    return Err(self.finish(s, flow));
                };
                let r = match body {
                    Some(body) => b.post(body, &mut plan.context, &*self.store, &mut login),
                    None => b.get(&mut plan.context, &*self.store, &mut login),
                };
                if login.is_some() {
                    s.user_id = login;
                }
                Ok(r)
            }
            StageImpl::Plugin {
                stage,
                namespace,
                version,
            } => {
                if body.is_some() && binding.invalid_response_action != InvalidResponseAction::Retry
                {
                    let keep = binding.invalid_response_action
                        == InvalidResponseAction::RestartWithContext;
                    let ctx = match (&s.plan, keep) {
                        (Some(p), true) => p.context.clone(),
                        _ => Map::new(),
                    };
                    s.plan = Some(self.plan_flow(flow, s.user_id.as_deref(), ctx));
                    return Err(Response::Redirect(executor_url(&flow.slug, query)));
                }
                if s.key.is_empty() {
                    match entropy::hex(&*self.entropy, 16) {
                        Ok(k) => s.key = k,
                        Err(e) => {
                            let e = StageError::Internal(e.to_string());
                            return Err(self.flow_error(s, flow, name, &e));
                        }
                    }
                }
                let Some(plan) = s.plan.as_ref() else {
                    return Err(self.finish(s, flow));
                };
                let call = PluginCall {
                    stage: &**stage,
                    namespace,
                    version,
                    kind: &binding.kind,
                    flow,
                    name,
                    requester: s.user_id.as_deref(),
                    query,
                    session_key: &s.key,
                    hook_timeout_ms: binding.fault.hook_timeout_ms,
                    accept_language: &s.accept_language,
                    default_locale: binding.default_locale.as_deref(),
                };
                Ok(self.call_plugin(&call, plan, body))
            }
        }
    }

    fn call_plugin(
        &self,
        call: &PluginCall<'_>,
        plan: &Plan,
        body: Option<&Value>,
    ) -> Result<HookResult, StageError> {
        let PluginCall {
            stage,
            namespace,
            flow,
            name,
            requester,
            query,
            session_key,
            ..
        } = *call;
        let mut context_json = serde_json::to_string(&plan.context)
            .map_err(|e| StageError::BadContext(e.to_string()))?;
        self.add_brand(&mut context_json, &flow.slug);
        let locale = request_locale(
            &plan.context,
            call.accept_language,
            call.default_locale,
            &self.i18n,
        );
        let req = StageRequest {
            flow_slug: &flow.slug,
            flow_designation: &flow.designation,
            stage_name: name,
            query,
            base_url: &self.base_url,
            locale: &locale,
            requester_id: requester,
            context_json: &context_json,
        };
        let host = RequestHost {
            store: &*self.store,
            cache: &*self.cache,
            mail: &*self.mail,
            clock: &*self.clock,
            entropy: &*self.entropy,
            plan,
            namespace,
            stage_name: name,
            session_key,
            mail_limit: self.mail_limit,
            from_address: &self.from_address,
            state_writes: Default::default(),
            pending_token: Default::default(),
        };
        let (hook, token) = match (body, plan.context.get("is_restored")) {
            (Some(_), _) => ("challenge_invalid", None),
            (None, Some(t)) => {
                let token: FlowToken = serde_json::from_value(t.clone())
                    .map_err(|e| StageError::BadContext(format!("is_restored: {e}")))?;
                ("restore", Some(token))
            }
            (None, None) => ("get", None),
        };
        // At ERROR level like the request's span, so error lines always carry it.
        let _span = tracing::error_span!(
            target: "hook",
            "hook",
            plugin = call.namespace,
            version = call.version,
            stage = name,
            kind = call.kind,
            hook,
            flow = %flow.slug,
        )
        .entered();
        let started = Instant::now();
        let result = match (body, &token) {
            (Some(b), _) => stage.challenge_invalid(&req, b, &host),
            (None, Some(token)) => stage.restore(&req, token, &host),
            (None, None) => stage.get(&req, &host),
        };
        let took = started.elapsed();
        record_hook(call, hook, &result, took);
        self.report_if_slow(call, hook, took);
        // A token the hook created without mailing it is stored now, before its
        // result is applied; a failure fails the hook as the write would have.
        let stored = host.write_pending_token();
        let mut result = result?;
        stored?;
        result.context_set.extend(host.flow_state_update());
        Ok(result)
    }

    /// Appends the flow's brand to a serialized plan context as its last key (so it
    /// wins over a `brand` the plan may hold). Not stored in the plan: a session
    /// that only looked at a flow stays empty, and a restored link gets today's brand.
    fn add_brand(&self, context_json: &mut String, slug: &str) {
        let Some(brand) = self.brands.get(slug).filter(|b| !b.is_empty()) else {
            return;
        };
        if !context_json.ends_with('}') {
            return;
        }
        context_json.pop();
        if context_json.len() > 1 {
            context_json.push(',');
        }
        context_json.push_str("\"brand\":");
        context_json.push_str(brand);
        context_json.push('}');
    }

    fn apply(
        &self,
        s: &mut Session,
        flow: &FlowDef,
        query: &str,
        name: &str,
        result: Result<HookResult, StageError>,
    ) -> Response {
        let r = match result {
            Ok(r) => r,
            Err(e) => return self.flow_error(s, flow, name, &e),
        };
        s.messages.extend(r.messages);
        if let Some(plan) = s.plan.as_mut() {
            for (k, v) in r.context_set {
                plan.context.insert(k, v);
            }
        }
        match r.outcome {
            Outcome::Challenge(v) => self.decorate(s, flow, v),
            Outcome::StageOk => self.advance(s, flow, query),
            Outcome::StageInvalid(m) => self.deny(s, flow, m),
        }
    }
}
