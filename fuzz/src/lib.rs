//! Fuzz targets for the host and the email stage. Each function takes the fuzzer's
//! bytes, drives one part of the product with them, and panics only when an
//! invariant breaks (a panic anywhere inside is a finding too). The `cargo fuzz`
//! binaries in `fuzz_targets/` call these; FUZZING.md says how to run them.
//!
//! Prompts lose their password fields in the hosts built here: a valid password
//! costs an Argon2id hash (tens of milliseconds), which would hold the fuzzers to a
//! few executions a second without reaching anything new.

use std::sync::{Arc, Mutex, OnceLock};

use email_stage_plugin::EmailStagePlugin;
use host_harness::cache::MemoryCache;
use host_harness::config::{self, Backends, HostConfig, MailConfig};
use host_harness::flow::client::FlowClient;
use host_harness::flow::{same_origin_target, Executor, FlowDef, Session};
use host_harness::http::{AppState, HttpSettings, SessionLimits};
use host_harness::mail::OutboxConfig;
use host_harness::maintenance::{sweep_once, Housekeeping};
use host_harness::stages::builtin::{Builtin, KINDS};
use host_harness::storage::{HostStore, MemoryStore};
use host_harness::system::clock::{Clock, ManualClock};
use host_harness::system::entropy::SystemEntropy;
use plugin_api::testing::FakeHost;
use plugin_api::{FlowToken, Plugin, Stage, StageRequest, User};
use serde_json::{json, Map, Value};

const BASE: &str = "https://id.example.test/auth";

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn plugins() -> &'static [Arc<dyn Plugin>] {
    static P: OnceLock<Vec<Arc<dyn Plugin>>> = OnceLock::new();
    P.get_or_init(|| vec![Arc::new(EmailStagePlugin)])
}

/// The host configuration (TOML) parsed and validated: never a panic.
pub fn host_config(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(mut cfg) = toml::from_str::<HostConfig>(t) else {
        return;
    };
    // A CA file is read whole; the fuzzer must not name /dev/zero.
    cfg.mail.ca_file = None;
    let _ = config::validate(&cfg, plugins());
}

/// A stage configuration (JSON) for the email stage and every built-in kind.
pub fn stage_config(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(stage) = EmailStagePlugin.new_stage("email", "fuzz", t) {
        assert!(
            stage.mail_route().is_some(),
            "an email stage always has a route"
        );
    }
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        for kind in KINDS {
            let _ = Builtin::from_config(kind, &v);
        }
    }
}

/// authentik's duration grammar.
pub fn duration(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(d) = email_stage_plugin::duration::parse(t) {
        let _ = (d.as_millis(), d.whole_seconds());
    }
}

fn request(context_json: &str) -> StageRequest<'_> {
    StageRequest {
        flow_slug: "recover",
        flow_designation: "recovery",
        stage_name: "fuzz",
        query: "next=%2Fapp",
        base_url: BASE,
        locale: "",
        requester_id: None,
        context_json,
    }
}

/// A plan context (JSON text) handed to every hook of the email stage, and the
/// built-in stages that need no password hash: errors are fine, panics are not.
pub fn plan_context(data: &[u8]) {
    static STAGE: OnceLock<Box<dyn Stage>> = OnceLock::new();
    let Some(t) = text(data) else { return };
    let stage = STAGE.get_or_init(|| {
        EmailStagePlugin
            .new_stage("email", "fuzz", "{}")
            .expect("default email stage")
    });
    let jane = User {
        id: Some("7".into()),
        username: "jane".into(),
        email: "jane@example.com".into(),
        ..Default::default()
    };
    let host = FakeHost::new().with_user(jane);
    let req = request(t);
    let _ = stage.get(&req, &host);
    let _ = stage.challenge_invalid(&req, &json!({}), &host);
    let token = FlowToken {
        identifier: "t".into(),
        user_id: "7".into(),
        flow_slug: "recover".into(),
        stage_name: "fuzz".into(),
        expires_ms: i64::MAX,
        intent: "verification".into(),
    };
    let _ = stage.restore(&req, &token, &host);
    if let Ok(Value::Object(ctx)) = serde_json::from_str::<Value>(t) {
        builtins_on(ctx);
    }
}

fn builtins_on(ctx: Map<String, Value>) {
    let store = MemoryStore::new();
    let configs = [
        ("identification", json!({})),
        ("context_from_prompt", json!({"map": {"email": "email"}})),
        ("user_login", Value::Null),
        (
            "prompt",
            json!({"fields": [{"field_key": "email", "type": "email"}]}),
        ),
    ];
    for (kind, cfg) in configs {
        let b = Builtin::from_config(kind, &cfg)
            .expect("built-in kind")
            .expect("valid configuration");
        let mut c = ctx.clone();
        let mut login = None;
        let _ = b.get(&mut c, &store, &mut login);
    }
}

/// A host on the reference flows without password fields (plus a flow that
/// finishes at once, for `next`), in memory, on a manual clock.
struct FuzzHost {
    ex: Executor,
    clock: Arc<ManualClock>,
    store: Arc<dyn HostStore>,
}

fn fuzz_host_in(maildir: &str) -> FuzzHost {
    let mut cfg = config::reference_config(
        "memory://",
        BASE,
        None,
        MailConfig {
            maildir: Some(
                std::env::temp_dir()
                    .join(format!("identity-fuzz-{maildir}-{}", std::process::id())),
            ),
            ..Default::default()
        },
    );
    for s in &mut cfg.stages {
        if let Some(fields) = s.config.get_mut("fields").and_then(Value::as_array_mut) {
            fields.retain(|f| f["type"] != "password");
        }
    }
    cfg.flows.push(FlowDef {
        slug: "finish".into(),
        title: "Finish".into(),
        designation: "authentication".into(),
        stages: vec!["email-change-override".into()],
        brand: None,
    });
    let clock = Arc::new(ManualClock::new(1_767_225_600_000));
    let store: Arc<dyn HostStore> = Arc::new(MemoryStore::new());
    let ex = config::build_executor(
        &cfg,
        plugins(),
        Backends {
            store: store.clone(),
            cache: Arc::new(MemoryCache::new()),
            clock: clock.clone(),
            entropy: Arc::new(SystemEntropy),
            outbox: OutboxConfig {
                workers: 1,
                wake_jitter: std::time::Duration::ZERO,
                ..Default::default()
            },
        },
    )
    .expect("fuzz host");
    FuzzHost { ex, clock, store }
}

fn fuzz_host() -> &'static FuzzHost {
    static HOST: OnceLock<FuzzHost> = OnceLock::new();
    HOST.get_or_init(|| fuzz_host_in("flows"))
}

/// Moves the host's clock on and sweeps what would pile up over a million runs.
fn tidy(h: &FuzzHost) {
    static RUNS: Mutex<u64> = Mutex::new(0);
    h.clock.advance(10 * 60_000);
    let mut runs = RUNS.lock().unwrap_or_else(|p| p.into_inner());
    *runs += 1;
    if *runs % 512 == 0 {
        sweep_once(
            &*h.store,
            &*h.ex.cache,
            i64::MAX / 2,
            &Housekeeping::default(),
        );
    }
}

/// A challenge response (a JSON object) posted to the first stage of each flow and,
/// when that passes, to the next one.
pub fn challenge_body(data: &[u8]) {
    let Ok(body @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let h = fuzz_host();
    for slug in ["recover", "enroll", "email-change"] {
        let mut c = FlowClient::open(&h.ex, slug, "");
        c.get();
        let first = c.post(body.clone());
        if first["component"] != "ak-stage-flow-error" {
            c.post(body.clone());
        }
    }
    tidy(h);
}

fn assert_safe_target(next: &str, to: &str) {
    assert!(
        to.starts_with('/') && !to.starts_with("//"),
        "{next:?} -> {to:?}"
    );
    assert!(
        !to.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
        "{next:?} -> {to:?}"
    );
    let base = url::Url::parse(BASE).expect("base");
    let resolved = base.join(to).expect("a target resolves");
    assert_eq!(resolved.origin(), base.origin(), "{next:?} -> {to:?}");
}

/// `next` after a finished flow: whatever comes in, the redirect stays on this
/// host, as a path that cannot be read as another host.
pub fn next_query(data: &[u8]) {
    let Some(next) = text(data) else { return };
    if let Some(to) = same_origin_target(BASE, next) {
        assert_safe_target(next, &to);
    }
    let ex = &fuzz_host().ex;
    // The same text as the whole query, and as the value of `next`.
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    for query in [next, encoded.as_str()] {
        let mut s = Session::default();
        if let host_harness::flow::Response::Challenge(v) = ex.get(&mut s, "finish", query) {
            if let Some(to) = v["to"].as_str() {
                assert_safe_target(next, to);
            }
        }
    }
}

struct FuzzServer {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    clock: Arc<ManualClock>,
    store: Arc<dyn HostStore>,
    cache: Arc<dyn host_harness::cache::Cache>,
}

fn server() -> &'static FuzzServer {
    static SERVER: OnceLock<FuzzServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let FuzzHost { ex, clock, store } = fuzz_host_in("http");
        let cache = ex.cache.clone();
        let settings = HttpSettings {
            sessions: SessionLimits {
                max_sessions: 1_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let router = host_harness::http::router(AppState::with_settings(ex, settings));
        FuzzServer {
            rt,
            router,
            clock,
            store,
            cache,
        }
    })
}

/// A whole HTTP request to the served host: the first byte picks the method,
/// then lines give the path and query, a `Cookie` and an `X-CSRFToken` header,
/// and the rest is the body. Whatever arrives, the answer is never a 5xx.
pub fn http_executor(data: &[u8]) {
    use tower::ServiceExt;
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |b| *b == b'\n');
    let path = parts.next().unwrap_or_default();
    let cookie = parts.next().unwrap_or_default();
    let csrf = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let method = ["GET", "POST", "PUT", "DELETE"][(m % 4) as usize];
    let mut uri = b"/".to_vec();
    uri.extend_from_slice(path);
    let Ok(req) = axum::http::Request::builder()
        .method(method)
        .uri(uri.as_slice())
        .header("cookie", cookie)
        .header("x-csrftoken", csrf)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
    else {
        return;
    };
    let s = server();
    let resp =
        s.rt.block_on(s.router.clone().oneshot(req))
            .expect("infallible");
    assert!(
        !resp.status().is_server_error(),
        "{} {:?}: {}",
        method,
        String::from_utf8_lossy(&uri),
        resp.status()
    );
    let _ =
        s.rt.block_on(http_body_util::BodyExt::collect(resp.into_body()));
    s.clock.advance(10 * 60_000);
    if s.clock.now_ms() % (512 * 600_000) == 0 {
        sweep_once(&*s.store, &*s.cache, i64::MAX / 2, &Housekeeping::default());
    }
}
