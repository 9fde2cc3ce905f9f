//! The conformance battery every stage plugin must pass, against [`FakeHost`]:
//! properties about how a stage behaves whatever it does, so any plugin (in-process
//! or loaded from its library) can be checked by its author, in its own tests, or
//! with `host-harness check-plugin <library>`.
//!
//! ```
//! # use plugin_api::testing::conformance::check_stage_kind;
//! # fn demo(plugin: &dyn plugin_api::Plugin) {
//! let report = check_stage_kind(plugin, "my-kind", &serde_json::json!({}));
//! for p in &report {
//!     println!("{p}");
//! }
//! assert!(report.iter().all(|p| p.passed));
//! # }
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::{FakeFlow, FakeHost};
use crate::stage::{Plugin, Stage};
use crate::types::{FlowToken, HookResult, StageRequest, User};
use crate::{HostError, StageError};

/// A hook that takes longer fails the property it runs in (the run waits for it).
pub const SLOW_HOOK: Duration = Duration::from_secs(5);

/// Every host service a stage can call, in the order they fail in turn.
pub const SERVICES: [&str; 15] = [
    "user",
    "set_user_active",
    "create_flow_token",
    "flow_token",
    "consume_flow_token",
    "revoke_flow_tokens",
    "cache_get",
    "cache_set",
    "flow_state_get",
    "flow_state_set",
    "host_info",
    "rate_limit",
    "emit_event",
    "enqueue_mail",
    "fill_random",
];

/// One property's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Its name (`garbage_context_is_an_error`, …).
    pub name: &'static str,
    /// Whether the stage holds it.
    pub passed: bool,
    /// What was checked, or what broke it.
    pub detail: String,
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{verdict} {}: {}", self.name, self.detail)
    }
}

type Check = fn(&Subject<'_>) -> Result<String, String>;

/// The properties, in the order they run.
const PROPERTIES: [(&str, Check); 7] = [
    ("config_schema_and_new_stage_agree", schema_agrees),
    ("garbage_context_is_an_error", garbage_context),
    ("garbage_post_body_is_an_error", garbage_bodies),
    ("failing_host_services_are_errors", failing_services),
    ("repeated_get_mails_at_most_once", one_mail_per_reload),
    ("no_secret_in_events_or_logs", no_secret_leaks),
    ("deterministic_under_fixed_clock_and_seed", deterministic),
];

/// What the battery checks: one stage kind of a plugin, with a configuration the
/// kind accepts.
struct Subject<'a> {
    plugin: &'a dyn Plugin,
    kind: &'a str,
    config: &'a Value,
}

/// Runs every property on `kind` of `plugin`, built with `config`. Never panics: a
/// panic fails the property it happens in; a configuration the kind refuses is one
/// failed property, `configuration_accepted`, and nothing else runs.
pub fn check_stage_kind(plugin: &dyn Plugin, kind: &str, config: &Value) -> Vec<Property> {
    let subject = Subject {
        plugin,
        kind,
        config,
    };
    let built = catch_unwind(AssertUnwindSafe(|| subject.stage().map(drop)))
        .unwrap_or_else(|p| Err(format!("new_stage panicked: {}", panic_text(&*p))));
    if let Err(detail) = built {
        // Nothing else can run; one line says why.
        return vec![Property {
            name: "configuration_accepted",
            passed: false,
            detail,
        }];
    }
    PROPERTIES
        .iter()
        .map(|(name, check)| {
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&subject)))
                .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&*p))));
            Property {
                name,
                passed: outcome.is_ok(),
                detail: outcome.unwrap_or_else(|e| e),
            }
        })
        .collect()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// The user the flows run for, in the host and as `pending_user`.
fn user() -> User {
    User {
        id: Some("1".into()),
        username: "conformance".into(),
        name: "Conformance Test".into(),
        email: "conformance@example.com".into(),
        is_active: true,
        ..Default::default()
    }
}

fn host() -> FakeHost {
    FakeHost::new().with_user(user())
}

impl Subject<'_> {
    fn stage(&self) -> Result<Box<dyn Stage>, String> {
        self.plugin
            .new_stage(self.kind, "conformance", &self.config.to_string())
            .map_err(|e| format!("the configuration given was refused: {e}"))
    }
}

/// `Ok` unless the hook panicked or overran [`SLOW_HOOK`].
fn clean(what: &str, run: impl FnOnce() -> Result<HookResult, StageError>) -> Result<(), String> {
    let started = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(run));
    let took = started.elapsed();
    match r {
        Err(p) => Err(format!("{what}: panicked: {}", panic_text(&*p))),
        Ok(Err(StageError::Panicked(m))) => Err(format!("{what}: panicked: {m}")),
        _ if took > SLOW_HOOK => Err(format!("{what}: took {took:?}")),
        _ => Ok(()),
    }
}

fn token() -> FlowToken {
    FlowToken {
        identifier: "conformance".into(),
        user_id: "1".into(),
        flow_slug: "test-flow".into(),
        stage_name: "conformance".into(),
        expires_ms: i64::MAX,
        intent: "verification".into(),
    }
}

/// A value of a JSON type `types` does not allow, if there is one.
fn wrong_value(types: &[&str]) -> Option<Value> {
    let candidates = [
        ("integer", json!(12345)),
        ("string", json!("conformance-wrong-type")),
        ("boolean", json!(true)),
        ("array", json!([1])),
        ("object", json!({"conformance": 1})),
    ];
    candidates
        .into_iter()
        .find(|(t, _)| !(types.contains(t) || *t == "integer" && types.contains(&"number")))
        .map(|(_, v)| v)
}

fn schema_agrees(s: &Subject<'_>) -> Result<String, String> {
    s.stage()?;
    let manifest = s.plugin.manifest();
    let kind = (manifest.stages.iter().find(|k| k.kind == s.kind))
        .ok_or_else(|| format!("the manifest has no stage kind '{}'", s.kind))?;
    let props = kind
        .config_schema
        .get("properties")
        .and_then(Value::as_object);
    let mut refused = 0;
    for (name, prop) in props.into_iter().flatten() {
        let types: Vec<&str> = match prop.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let Some(bad) = wrong_value(&types) else {
            continue;
        };
        let mut config = s.config.as_object().cloned().unwrap_or_default();
        config.insert(name.clone(), bad.clone());
        let got = s
            .plugin
            .new_stage(s.kind, "conformance", &Value::Object(config).to_string());
        match got {
            Err(StageError::Config(m)) if m.contains(name.as_str()) => refused += 1,
            Err(StageError::Config(m)) => {
                return Err(format!(
                    "`{name}` = {bad} was refused without naming the field: {m}"
                ))
            }
            Err(e) => return Err(format!("`{name}` = {bad}: not a configuration error: {e}")),
            Ok(_) => {
                return Err(format!(
                    "`{name}` = {bad} was accepted; the schema says {types:?}"
                ))
            }
        }
    }
    Ok(format!(
        "the configuration given is accepted; {refused} field(s) of a wrong type refused, naming the field"
    ))
}

const GARBAGE_CONTEXTS: [&str; 8] = [
    "not json",
    "[]",
    "null",
    r#"{"pending_user": 5}"#,
    r#"{"pending_user": {"id": [], "email": {}}}"#,
    r#"{"pending_user": {"username": "x", "email": "not an address"}, "email": 7}"#,
    r#"{"is_restored": "garbage", "email_sent": "yes"}"#,
    r#"{"flow_state": {"x": [1, 2]}, "prompt_data": null}"#,
];

fn garbage_context(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    for ctx in GARBAGE_CONTEXTS {
        let host = host();
        let req = StageRequest {
            flow_slug: "test-flow",
            flow_designation: "recovery",
            stage_name: "conformance",
            query: "",
            base_url: "https://id.example.com",
            locale: "",
            requester_id: None,
            context_json: ctx,
        };
        clean(&format!("get with context {ctx}"), || {
            stage.get(&req, &host)
        })?;
        clean(&format!("POST with context {ctx}"), || {
            stage.challenge_invalid(&req, &json!({}), &host)
        })?;
        clean(&format!("restore with context {ctx}"), || {
            stage.restore(&req, &token(), &host)
        })?;
    }
    Ok(format!(
        "{} malformed contexts, each through every hook",
        GARBAGE_CONTEXTS.len()
    ))
}

fn garbage_bodies(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    let deep = (0..64).fold(json!(0), |v, _| json!([v]));
    let bodies = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!({"component": 5}),
        json!({"component": "ak-stage-x", "uid_field": ["a"], "token": {}, "code": 1e308}),
        json!({"deep": deep}),
    ];
    let host = host();
    let mut flow = FakeFlow::new(&*stage, &host).pending_user(&user());
    clean("get", || flow.get().map(HookResult::new))?;
    for b in &bodies {
        clean(&format!("POST {b}"), || {
            flow.post(b.clone()).map(HookResult::new)
        })?;
    }
    Ok(format!("{} malformed bodies after a get", bodies.len()))
}

fn failing_services(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    for service in SERVICES {
        let host = host();
        host.fail_in(
            service,
            Some(HostError::Unavailable("conformance: down".into())),
        );
        let mut flow = FakeFlow::new(&*stage, &host).pending_user(&user());
        clean(&format!("get with {service} failing"), || {
            flow.get().map(HookResult::new)
        })?;
        clean(&format!("POST with {service} failing"), || {
            flow.post(json!({})).map(HookResult::new)
        })?;
    }
    Ok(format!("{} services, each failing in turn", SERVICES.len()))
}

fn one_mail_per_reload(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    let host = host();
    let mut flow = FakeFlow::new(&*stage, &host).pending_user(&user());
    let _ = flow.get();
    let first = host.mails().len();
    let _ = flow.get();
    let _ = flow.get();
    let after = host.mails().len();
    if after > first {
        return Err(format!(
            "the first get queued {first} mail(s); two reloads queued {} more",
            after - first
        ));
    }
    Ok(format!(
        "{first} mail(s) on the first get, none on two reloads"
    ))
}

/// Query values of 16 or more URL-safe characters in the mails' text: the
/// secrets a link carries.
fn link_secrets(host: &FakeHost) -> Vec<String> {
    let mut out = Vec::new();
    for m in host.mails() {
        let text = String::from_utf8_lossy(&m.raw)
            .replace("=\r\n", "")
            .replace("=3D", "=");
        for part in text.split(['?', '&']).skip(1) {
            let Some((_, v)) = part.split_once('=') else {
                continue;
            };
            let v: String = (v.chars())
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if v.len() >= 16 && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

fn no_secret_leaks(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    let host = host();
    let mut flow = FakeFlow::new(&*stage, &host).pending_user(&user());
    let _ = flow.get();
    let _ = flow.post(json!({}));
    let secrets = link_secrets(&host);
    let events = serde_json::to_string(&host.events()).unwrap_or_default();
    let logs: String = host
        .logs()
        .iter()
        .map(|(_, t, m)| format!("{t} {m}\n"))
        .collect();
    for secret in &secrets {
        if events.contains(secret.as_str()) {
            return Err("a link's secret appears in an event".into());
        }
        if logs.contains(secret.as_str()) {
            return Err("a link's secret appears in a log line".into());
        }
    }
    Ok(format!(
        "{} link secret(s) mailed; none in {} event(s) or {} log line(s)",
        secrets.len(),
        host.events().len(),
        host.logs().len()
    ))
}

/// What a run shows, without what is random by design (MIME boundaries).
fn observe(s: &Subject<'_>) -> Result<String, String> {
    let stage = s.stage()?;
    let host = host();
    let mut flow = FakeFlow::new(&*stage, &host).pending_user(&user());
    let outcomes = [flow.get(), flow.post(json!({})), flow.get()];
    let mails: Vec<_> = (host.mails().iter())
        .map(|m| {
            (
                m.message_id.clone(),
                m.envelope_to.clone(),
                m.subject.clone(),
            )
        })
        .collect();
    let context: Map<String, Value> = flow.context().clone();
    Ok(format!(
        "{outcomes:?}|{context:?}|{:?}|{mails:?}|{:?}",
        host.events(),
        host.tokens()
            .iter()
            .map(|t| &t.key_hash)
            .collect::<Vec<_>>()
    ))
}

fn deterministic(s: &Subject<'_>) -> Result<String, String> {
    let (a, b) = (observe(s)?, observe(s)?);
    if a != b {
        return Err(
            "two runs on identical hosts differ (outcomes, context, events, mails or tokens)"
                .into(),
        );
    }
    Ok("two runs on identical hosts: same outcomes, context, events, mails and tokens".into())
}
