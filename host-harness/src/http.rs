//! `host-harness serve`: the flow executor over HTTP with authentik's protocol.
//!
//! - `GET /if/flow/<slug>/?…` serves the flow page, which passes its own query
//!   string as the single `query` parameter of every executor call.
//! - `GET`/`POST /api/v3/flows/executor/<slug>/?query=…` answer challenge JSON (200),
//!   a raw 302 to the same URL when a stage passed and more follow, 404 for an unknown
//!   flow, 400 for a malformed or oversized body, 403 for a missing CSRF token.
//! - A server-side session per browser: an HttpOnly, SameSite=Lax cookie (Secure
//!   when the public base URL is https). Signed-in sessions must send the CSRF token
//!   (double-submit: cookie `ih_csrf`, header `X-CSRFToken`) on POST.
//! - Flash messages ride on each challenge as `messages` and are cleared once sent.
//! - Hooks run on the blocking pool, never on the runtime's worker threads.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plugin_api::token::{constant_time_eq, sha256_hex};
use serde_json::{json, Value};

use crate::executor::{Executor, Response as FlowResponse, Session};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Session cookie name.
pub const SESSION_COOKIE: &str = "ih_session";
/// CSRF cookie name (readable by the page's script).
pub const CSRF_COOKIE: &str = "ih_csrf";
/// Most sessions kept; the oldest idle ones are dropped beyond this.
const MAX_SESSIONS: usize = 100_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct WebSession {
    flow: Session,
    csrf: String,
}

/// What [`AppState::session`] found.
struct Picked {
    id: String,
    session: Arc<Mutex<WebSession>>,
    fresh: bool,
    /// The stored text when the session was just read from the shared store.
    stored: Option<String>,
}

/// A session and when it was last used; requests of one session run one at a time.
struct Slot {
    session: Arc<Mutex<WebSession>>,
    last_used: u64,
}

/// Shared state of the server.
pub struct AppState {
    /// The executor.
    pub executor: Executor,
    sessions: Mutex<HashMap<String, Slot>>,
    secure: bool,
    persist: bool,
    tick: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// Wraps an executor; cookies are `Secure` when its base URL is https. Sessions
    /// live in this process.
    pub fn new(executor: Executor) -> Arc<Self> {
        Self::with_shared_sessions(executor, false)
    }

    /// Like [`AppState::new`]; with `shared`, sessions are also written to the
    /// executor's store after each request and read from it before, so hosts sharing
    /// a store (PostgreSQL) serve the same browser session. Between hosts the last
    /// write wins.
    pub fn with_shared_sessions(executor: Executor, shared: bool) -> Arc<Self> {
        let secure = executor.base_url.starts_with("https://");
        Arc::new(Self {
            executor,
            sessions: Mutex::new(HashMap::new()),
            secure,
            persist: shared,
            tick: Default::default(),
        })
    }

    /// The stored session and its stored text.
    fn stored(&self, id: &str) -> Option<(WebSession, String)> {
        if !self.persist {
            return None;
        }
        match self.executor.store.session_load(&sha256_hex(id)) {
            Ok(Some(data)) => serde_json::from_str(&data).ok().map(|s| (s, data)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(target: "http", error = %e, "cannot load session");
                None
            }
        }
    }

    /// Writes the session unless it is unchanged from `before` (the stored text).
    fn save(&self, id: &str, s: &WebSession, before: Option<&str>) {
        if !self.persist {
            return;
        }
        let saved = serde_json::to_string(s)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                if before == Some(data.as_str()) {
                    return Ok(());
                }
                self.executor
                    .store
                    .session_save(&sha256_hex(id), &data, self.executor.clock.now_ms())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::error!(target: "http", error = %e, "cannot save session");
        }
    }

    /// The session with this id, or a new one (then `fresh`). A session this host
    /// has not seen is looked up in the shared store, outside the map's lock; its
    /// stored text comes back so the caller need not read it again.
    fn session(&self, id: Option<&str>) -> Picked {
        let tick = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(id) = id {
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = map.get_mut(id) {
                slot.last_used = tick;
                return Picked {
                    id: id.to_string(),
                    session: slot.session.clone(),
                    fresh: false,
                    stored: None,
                };
            }
        }
        // A session another host started (shared store).
        if let Some((id, (ws, raw))) = id.and_then(|id| self.stored(id).map(|found| (id, found))) {
            // A concurrent request may have loaded it first: keep one copy.
            let session = self.insert(id.to_string(), Arc::new(Mutex::new(ws)), tick);
            return Picked {
                id: id.to_string(),
                session,
                fresh: false,
                stored: Some(raw),
            };
        }
        let id = random_hex(32);
        let session = Arc::new(Mutex::new(WebSession {
            flow: Session::default(),
            csrf: random_hex(16),
        }));
        let session = self.insert(id.clone(), session, tick);
        Picked {
            id,
            session,
            fresh: true,
            stored: None,
        }
    }

    /// Adds a session unless one with this id is there already; returns the one kept.
    fn insert(
        &self,
        id: String,
        session: Arc<Mutex<WebSession>>,
        tick: u64,
    ) -> Arc<Mutex<WebSession>> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS && !map.contains_key(&id) {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, v)| v.last_used)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let slot = map.entry(id).or_insert(Slot {
            session,
            last_used: tick,
        });
        slot.last_used = tick;
        slot.session.clone()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // A failing OS RNG leaves zeros; refuse to hand out such ids.
    if getrandom::fill(&mut b).is_err() {
        panic!("operating system randomness unavailable");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
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

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/if/flow/{slug}/", get(page))
        .route(
            "/api/v3/flows/executor/{slug}/",
            get(exec_get).post(exec_post),
        )
        .route("/flows/-/cancel/", get(cancel))
        .route(
            "/static/flow.js",
            get(|| async {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("../web/flow.js"),
                )
            }),
        )
        .route(
            "/static/flow.css",
            get(|| async {
                static_file("text/css; charset=utf-8", include_str!("../web/flow.css"))
            }),
        )
        .route(
            "/",
            get(|| async {
                static_file(
                    "text/html; charset=utf-8",
                    include_str!("../web/index.html"),
                )
            }),
        )
        .with_state(state)
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
    static_file("text/html; charset=utf-8", include_str!("../web/flow.html"))
}

async fn cancel(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let slot = st
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|s| s.session.clone());
        if let Some(session) = slot {
            let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
            s.flow.plan = None;
            s.flow.get_params.clear();
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, "/")]).into_response()
}

async fn exec_get(
    State(st): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    run(
        st,
        slug,
        q.get("query").cloned().unwrap_or_default(),
        headers,
        None,
    )
    .await
}

async fn exec_post(
    State(st): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body is larger than {MAX_BODY} bytes"),
            )
        }
    };
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "request body must be a JSON object",
                )
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
        }
    };
    run(
        st,
        slug,
        q.get("query").cloned().unwrap_or_default(),
        headers,
        Some(value),
    )
    .await
}

enum Outcome {
    Flow(FlowResponse),
    Forbidden,
}

async fn run(
    st: Arc<AppState>,
    slug: String,
    query: String,
    headers: HeaderMap,
    body: Option<Value>,
) -> Response {
    if st.executor.flow(&slug).is_none() {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let known = cookie(&headers, SESSION_COOKIE).filter(|id| id.len() == 64);
    let sent_csrf = headers
        .get("x-csrftoken")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_default();
    let st2 = st.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let Picked {
            id,
            session,
            fresh,
            stored,
        } = st2.session(known.as_deref());
        let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
        let mut before = stored;
        if !fresh && before.is_none() {
            // Another host may have moved this session on since we last saw it.
            if let Some((newer, raw)) = st2.stored(&id) {
                *s = newer;
                before = Some(raw);
            }
        }
        let outcome =
            if body.is_some() && s.flow.user_id.is_some() && !constant_time_eq(&s.csrf, &sent_csrf)
            {
                Outcome::Forbidden
            } else {
                let WebSession { flow, .. } = &mut *s;
                Outcome::Flow(match &body {
                    None => st2.executor.get(flow, &slug, &query),
                    Some(b) => st2.executor.post(flow, &slug, &query, b),
                })
            };
        st2.save(&id, &s, before.as_deref());
        (outcome, fresh.then(|| (id, s.csrf.clone())))
    })
    .await;
    let (outcome, new_cookies) = match joined {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(target: "http", error = %e, "request task failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let mut resp = match outcome {
        Outcome::Forbidden => error(StatusCode::FORBIDDEN, "CSRF token missing or incorrect."),
        Outcome::Flow(FlowResponse::Challenge(v)) => (StatusCode::OK, Json(v)).into_response(),
        Outcome::Flow(FlowResponse::Redirect(to)) => {
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
        Outcome::Flow(FlowResponse::NotFound) => {
            (StatusCode::NOT_FOUND, "Not Found").into_response()
        }
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some((id, csrf)) = new_cookies {
        let secure = if st.secure { "; Secure" } else { "" };
        for c in [
            format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{secure}"),
            format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Lax{secure}"),
        ] {
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
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
                            if let Err(e) = serve(l, st, async move {
                                let _ = rx.await;
                            })
                            .await
                            {
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
