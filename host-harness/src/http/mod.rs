//! `host-harness serve`: the flow executor over HTTP with authentik's protocol.
//! Imports `flow`, `storage` (sessions) and `system`.
//!
//! - `GET /if/flow/<slug>/?…` serves the flow page, which passes its own query
//!   string as the single `query` parameter of every executor call.
//! - `GET`/`POST /api/v3/flows/executor/<slug>/?query=…` answer challenge JSON (200),
//!   a raw 302 to the same URL when a stage passed and more follow, 404 for an unknown
//!   flow, 400 for a malformed or oversized body, 403 for a missing CSRF token,
//!   408 for a body that does not arrive in time.
//! - `GET /flows/-/cancel/` drops the running plan; `POST /flows/-/logout/` (with
//!   the CSRF header) ends the session.
//! - A server-side session per browser, made only once there is state to keep
//!   ([`sessions`]): an HttpOnly, SameSite=Lax cookie (Secure when the public base
//!   URL is https). Signed-in sessions must send the CSRF token (double-submit:
//!   cookie `ih_csrf`, header `X-CSRFToken`) on POST.
//! - Security headers on every answer (CSP, no framing, no sniffing, no referrer).
//! - Connection limits and timeouts ([`server`]).
//! - Flash messages ride on each challenge as `messages` and are cleared once sent.
//! - Hooks run on the blocking pool, never on the runtime's worker threads.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::flow::{Executor, Response as FlowResponse};
use crate::system::clock::ManualClock;

pub mod health;
pub mod observe;
pub mod server;
pub mod sessions;
pub mod test_clock;

pub use server::{connection_capacity, ServerLimits};
pub use sessions::{SessionLimits, Sessions};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Session cookie name.
pub const SESSION_COOKIE: &str = "ih_session";
/// CSRF cookie name (readable by the page's script).
pub const CSRF_COOKIE: &str = "ih_csrf";
/// The page's Content-Security-Policy: its own script and style only, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

/// How the HTTP server runs.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Connection limits and timeouts.
    pub server: ServerLimits,
    /// Session table limits.
    pub sessions: SessionLimits,
    /// Keep sessions in the executor's store too, so hosts sharing a store
    /// (PostgreSQL) serve one browser session. Between hosts the last write wins.
    pub shared_sessions: bool,
    /// The executor's clock when it is moved by hand (`serve --clock manual`): then,
    /// and only then, `/-/test/clock` is routed ([`test_clock`]).
    pub test_clock: Option<Arc<ManualClock>>,
    /// Add `Server-Timing: app;dur=<ms>` to every answer (`[http] server_timing`).
    pub server_timing: bool,
}

/// Shared state of the server.
pub struct AppState {
    /// The executor.
    pub executor: Executor,
    /// The browser sessions.
    pub sessions: Sessions,
    settings: HttpSettings,
    secure: bool,
}

impl AppState {
    /// Wraps an executor with default settings; cookies are `Secure` when its base
    /// URL is https. Sessions live in this process.
    pub fn new(executor: Executor) -> Arc<Self> {
        Self::with_settings(executor, HttpSettings::default())
    }

    /// Like [`AppState::new`]; with `shared`, sessions are also kept in the
    /// executor's store (see [`HttpSettings::shared_sessions`]).
    pub fn with_shared_sessions(executor: Executor, shared: bool) -> Arc<Self> {
        Self::with_settings(
            executor,
            HttpSettings {
                shared_sessions: shared,
                ..Default::default()
            },
        )
    }

    /// Wraps an executor with these settings.
    pub fn with_settings(executor: Executor, settings: HttpSettings) -> Arc<Self> {
        let secure = executor.base_url.starts_with("https://");
        let shared = settings.shared_sessions.then(|| executor.store.clone());
        Arc::new(Self {
            sessions: Sessions::new(shared, settings.sessions.clone()),
            executor,
            settings,
            secure,
        })
    }

    /// Number of sessions held in memory.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn cookie_headers(&self, resp: &mut Response, id: &str, csrf: &str, max_age: Option<u32>) {
        let secure = if self.secure { "; Secure" } else { "" };
        let age = max_age
            .map(|a| format!("; Max-Age={a}"))
            .unwrap_or_default();
        for c in [
            format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{secure}{age}"),
            format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Lax{secure}{age}"),
        ] {
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The routes, with the security headers on every response.
pub fn router(state: Arc<AppState>) -> Router {
    let mut routes = Router::new();
    if state.settings.test_clock.is_some() {
        routes = routes.route(
            "/-/test/clock",
            get(test_clock::read).post(test_clock::advance),
        );
    }
    routes
        .route("/if/flow/{slug}/", get(page))
        .route(
            "/api/v3/flows/executor/{slug}/",
            get(exec_get).post(exec_post),
        )
        .route("/-/health/live/", get(health::live))
        .route("/-/health/ready/", get(health::ready))
        .route("/flows/-/cancel/", get(cancel))
        .route("/flows/-/logout/", post(logout))
        .route(
            "/static/flow.js",
            get(|| async {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("../../web/flow.js"),
                )
            }),
        )
        .route(
            "/static/flow.css",
            get(|| async {
                static_file(
                    "text/css; charset=utf-8",
                    include_str!("../../web/flow.css"),
                )
            }),
        )
        .route(
            "/",
            get(|| async {
                static_file(
                    "text/html; charset=utf-8",
                    include_str!("../../web/index.html"),
                )
            }),
        )
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// The monitoring routes, for a listener of their own (`serve --metrics-listen`):
/// `/metrics` and the two health endpoints. Not on the flow listener: delivery
/// counts move only for real accounts, so a public `/metrics` would tell which
/// addresses have one.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .route("/-/health/live/", get(health::live))
        .route("/-/health/ready/", get(health::ready))
        .with_state(state)
}

/// CSP, no framing, no MIME sniffing, no referrer (links carry `flow_token`), and
/// HSTS when the public base URL is https.
async fn security_headers(State(st): State<Arc<AppState>>, mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if st.secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(st): State<Arc<AppState>>, Path(slug): Path<String>) -> Response {
    if st.executor.flow(&slug).is_none() {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    static_file(
        "text/html; charset=utf-8",
        include_str!("../../web/flow.html"),
    )
}

/// `GET /flows/-/cancel/`: drops the running plan (kept or shared sessions alike).
async fn cancel(State(st): State<Arc<AppState>>, id: ReqId, headers: HeaderMap) -> Response {
    let cookie = cookie(&headers, SESSION_COOKIE);
    let st2 = st.clone();
    let done = blocking(&id, move || {
        with_session(&st2, cookie.as_deref(), |s| {
            s.flow.plan = None;
            s.flow.get_params.clear();
        })
    })
    .await;
    match done {
        Ok(Ok(((), cookies))) => {
            let mut resp = (StatusCode::FOUND, [(header::LOCATION, "/")]).into_response();
            if let Some(c) = cookies {
                st.cookie_headers(&mut resp, &c.id, &c.csrf, None);
            }
            resp
        }
        Ok(Err(e)) => internal_error(&st, &id, Some(e.to_string())),
        Err(e) => internal_error(&st, &id, Some(e.to_string())),
    }
}

/// `POST /flows/-/logout/` with the CSRF header: ends the session.
async fn logout(State(st): State<Arc<AppState>>, id: ReqId, headers: HeaderMap) -> Response {
    let cookie = cookie(&headers, SESSION_COOKIE);
    let sent = csrf_header(&headers);
    let st2 = st.clone();
    let done = blocking(&id, move || {
        let now = st2.executor.clock.now_ms();
        let picked = st2
            .sessions
            .prepare(st2.sessions.open(cookie.as_deref(), now), now);
        let mut s = picked.lock();
        // A request without a session has nothing to end.
        if picked.is_stored() && !s.csrf_matches(&sent) {
            return false;
        }
        st2.sessions.end(&picked, &mut s);
        true
    })
    .await;
    match done {
        Ok(true) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            st.cookie_headers(&mut resp, "", "", Some(0));
            resp
        }
        Ok(false) => error(StatusCode::FORBIDDEN, "CSRF token missing or incorrect."),
        Err(e) => internal_error(&st, &id, Some(e.to_string())),
    }
}

/// The request's id, when the [`observe`] middleware gave it one.
type ReqId = Option<axum::Extension<observe::RequestId>>;

/// Runs `f` on the blocking pool inside the request's span, as request `id` (a
/// `system_exception` it records carries that id).
async fn blocking<T: Send + 'static>(
    id: &ReqId,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    let id = id.as_ref().map(|e| e.0 .0.clone());
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        match id {
            Some(id) => crate::flow::in_request(&id, f),
            None => f(),
        }
    })
    .await
}

fn csrf_header(headers: &HeaderMap) -> String {
    headers
        .get("x-csrftoken")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn exec_get(
    State(st): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    id: ReqId,
    headers: HeaderMap,
) -> Response {
    let call = Call {
        slug,
        query: q.get("query").cloned().unwrap_or_default(),
        id,
        body: None,
    };
    run(st, call, headers).await
}

async fn exec_post(
    State(st): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    id: ReqId,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let value = match read_json_body(&st, &headers, body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let call = Call {
        slug,
        query: q.get("query").cloned().unwrap_or_default(),
        id,
        body: Some(value),
    };
    run(st, call, headers).await
}

/// One executor call asked for over HTTP.
struct Call {
    slug: String,
    query: String,
    id: ReqId,
    body: Option<Value>,
}

/// The body as a JSON object (empty ⇒ `{}`), within [`MAX_BODY`] bytes and the
/// body timeout; a declared length over the limit is refused before reading.
async fn read_json_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    let too_large = || {
        error(
            StatusCode::BAD_REQUEST,
            format!("request body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        // Read a moderately oversized body before answering, so the client sees the
        // answer instead of a reset; a huge declared length is answered at once.
        if n <= DRAIN_LIMIT {
            let _ = tokio::time::timeout(st.settings.server.body_timeout, drain(body)).await;
        }
        return Err(too_large());
    }
    let bytes =
        match tokio::time::timeout(st.settings.server.body_timeout, to_bytes(body, MAX_BODY)).await
        {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return Err(too_large()),
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                ))
            }
        };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "request body must be a JSON object",
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )),
    }
}

/// Bodies up to this size are read and dropped before a "too large" answer.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Reads a body to its end (at most [`DRAIN_LIMIT`] bytes), keeping nothing.
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
}

/// Runs `f` on the session named by `cookie` (or a new one) and records the outcome
/// (new session, rotation, shared write). Blocking: call on the blocking pool.
fn with_session<T>(
    st: &AppState,
    cookie: Option<&str>,
    f: impl FnOnce(&mut sessions::WebSession) -> T,
) -> Result<(T, Option<sessions::Cookies>), crate::system::entropy::EntropyError> {
    let now = st.executor.clock.now_ms();
    let picked = st.sessions.prepare(st.sessions.open(cookie, now), now);
    let mut s = picked.lock();
    let user_before = s.flow.user_id.clone();
    let out = f(&mut s);
    let cookies = st.sessions.commit(
        &picked,
        &mut s,
        user_before.as_deref(),
        &st.executor,
        &*st.executor.entropy,
    )?;
    Ok((out, cookies))
}

/// What a flow request comes to before it is an HTTP response.
enum Answer {
    Flow(FlowResponse),
    Forbidden,
}

async fn run(st: Arc<AppState>, call: Call, headers: HeaderMap) -> Response {
    let Call {
        slug,
        query,
        id,
        body,
    } = call;
    if st.executor.flow(&slug).is_none() {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let known = cookie(&headers, SESSION_COOKIE);
    let sent_csrf = csrf_header(&headers);
    let accept_language = (headers.get(axum::http::header::ACCEPT_LANGUAGE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let st2 = st.clone();
    let joined = blocking(&id, move || {
        with_session(&st2, known.as_deref(), |s| {
            if body.is_some() && s.flow.user_id.is_some() && !s.csrf_matches(&sent_csrf) {
                return Answer::Forbidden;
            }
            s.flow.accept_language = accept_language;
            Answer::Flow(match &body {
                None => st2.executor.get(&mut s.flow, &slug, &query),
                Some(b) => st2.executor.post(&mut s.flow, &slug, &query, b),
            })
        })
    })
    .await;
    let (outcome, new_cookies) = match joined {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return internal_error(&st, &id, Some(e.to_string())),
        Err(e) => return internal_error(&st, &id, Some(e.to_string())),
    };
    let mut resp = match outcome {
        Answer::Forbidden => error(StatusCode::FORBIDDEN, "CSRF token missing or incorrect."),
        Answer::Flow(FlowResponse::Challenge(v)) => (StatusCode::OK, Json(v)).into_response(),
        Answer::Flow(FlowResponse::Redirect(to)) => {
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
        Answer::Flow(FlowResponse::NotFound) => {
            (StatusCode::NOT_FOUND, "Not Found").into_response()
        }
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = new_cookies {
        st.cookie_headers(&mut resp, &c.id, &c.csrf, None);
    }
    resp
}

/// A 500 with a `system_exception` event: the request could not be handled at all
/// (randomness unavailable, a panic outside every stage).
fn internal_error(st: &AppState, id: &ReqId, detail: Option<String>) -> Response {
    let detail = detail.unwrap_or_else(|| "request failed".into());
    tracing::error!(target: "http", error = %detail, "request failed");
    let record = || st.executor.record_system_exception("http", &detail);
    match id {
        Some(id) => crate::flow::in_request(&id.0 .0, record),
        None => record(),
    };
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.settings.server.clone();
    server::run(listener, router(state), limits, shutdown).await
}

/// Serves [`metrics_router`] on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.settings.server.clone();
    server::run(listener, metrics_router(state), limits, shutdown).await
}

/// A server running on its own thread and runtime (tests, embedding).
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts serving `state` on `listener`.
    pub fn start(listener: std::net::TcpListener, state: Arc<AppState>) -> std::io::Result<Self> {
        Self::spawn(listener, state, false)
    }

    /// Starts serving [`metrics_router`] of `state` on `listener`.
    pub fn start_metrics(
        listener: std::net::TcpListener,
        state: Arc<AppState>,
    ) -> std::io::Result<Self> {
        Self::spawn(listener, state, true)
    }

    fn spawn(
        listener: std::net::TcpListener,
        state: Arc<AppState>,
        metrics: bool,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(target: "http", error = %e, "cannot start runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            let stop = async move {
                                let _ = rx.await;
                            };
                            let served = if metrics {
                                serve_metrics(l, st, stop).await
                            } else {
                                serve(l, st, stop).await
                            };
                            if let Err(e) = served {
                                tracing::error!(target: "http", error = %e, "server stopped");
                            }
                        }
                        Err(e) => tracing::error!(target: "http", error = %e, "bad listener"),
                    }
                });
            })?;
        Ok(Self {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
