//! What every HTTP request leaves behind: a request id (`X-Request-Id` on the
//! answer; the `request_id` of any `system_exception` event it causes), a `request`
//! span carrying it around every log line the request writes, hooks included, and
//! its count and time in the [metrics](mod@crate::system::metrics) and, when
//! configured, in a `Server-Timing` header.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use crate::system::metrics::{metrics, HttpLabels, RouteLabels};

/// The response header naming the request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, in its extensions for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The middleware: names, traces, counts and times the request.
pub async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // Any token is a method to HTTP: only the standard ones become label values.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let id = request_id();
    req.extensions_mut().insert(RequestId(id.clone()));
    // At ERROR level, so the id is on error lines whatever the filter keeps.
    let span = tracing::error_span!(target: "http", "request", request_id = %id, %method, %route);
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let took = started.elapsed();
    if state.settings.server_timing {
        let dur = format!("app;dur={:.3}", took.as_secs_f64() * 1000.0);
        if let Ok(v) = HeaderValue::from_str(&dur) {
            resp.headers_mut().insert("server-timing", v);
        }
    }
    count(route, method, resp.status().as_u16(), took);
    resp
}

/// 16 hex digits from the system's generator (not the executor's entropy, which
/// stages draw on and tests replay).
fn request_id() -> String {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => hex::encode(b),
        Err(_) => "unavailable".into(),
    }
}

/// Counts and times an answer by its route (the pattern, never the path asked for,
/// so a scan of random paths adds one label value: `unmatched`) and method.
fn count(route: String, method: &str, status: u16, took: std::time::Duration) {
    let m = metrics();
    let labels = RouteLabels { route };
    m.http_seconds
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
    let labels = HttpLabels {
        route: labels.route,
        method: method.to_string(),
        status,
    };
    m.http_requests.get_or_create(&labels).inc();
}
