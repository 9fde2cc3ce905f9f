//! What orchestrators and monitoring ask: `GET /-/health/live/` answers while the
//! process serves; `GET /-/health/ready/` answers 200 only when the store and the
//! cache answer and every delivery worker runs, else 503 with one reason per line;
//! `GET /metrics` gives the process's [`metrics`](mod@crate::system::metrics), with the
//! outbox and session gauges read at that moment. None touches a session, and none
//! says more than which part is down.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::flow::Executor;
use crate::system::metrics::{self, metrics as process_metrics};

/// `GET /-/health/live/`.
pub async fn live() -> Response {
    (StatusCode::OK, "live\n").into_response()
}

/// `GET /-/health/ready/`.
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let st2 = st.clone();
    let reasons = tokio::task::spawn_blocking(move || not_ready(&st2.executor))
        .await
        .unwrap_or_else(|e| vec![format!("readiness check failed: {e}")]);
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready\n{}\n", reasons.join("\n"));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// Why the host cannot serve flows now; empty when it can. Each backend is asked
/// the cheapest question it answers (a primary-key lookup).
pub fn not_ready(ex: &Executor) -> Vec<String> {
    let now = ex.clock.now_ms();
    let mut reasons = Vec::new();
    if let Err(e) = ex.store.token(&"0".repeat(64), now) {
        reasons.push(format!("store: {}", e.kind_name()));
    }
    if let Err(e) = ex.cache.get("host/health", now) {
        tracing::warn!(target: "health", error = %e, "cache not ready");
        reasons.push("cache: unavailable".to_string());
    }
    let (alive, started) = ex.mail.workers_alive();
    if alive < started {
        reasons.push(format!(
            "mail: {alive} of {started} delivery workers running"
        ));
    }
    reasons
}

/// `GET /metrics`: every metric as OpenMetrics text; the outbox and session gauges
/// are read now (an unreachable store leaves the outbox gauges as last read).
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let st2 = st.clone();
    let text = tokio::task::spawn_blocking(move || {
        sample_gauges(&st2);
        metrics::encode()
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

fn sample_gauges(st: &AppState) {
    let m = process_metrics();
    m.sessions_live
        .set(i64::try_from(st.session_count()).unwrap_or(i64::MAX));
    let ex = &st.executor;
    let now = ex.clock.now_ms();
    match (ex.store.outbox_counts(), ex.store.outbox_next_due()) {
        (Ok(c), Ok(due)) => {
            let by_state = [
                ("pending", c.pending),
                ("sending", c.sending),
                ("sent", c.sent),
                ("dead", c.dead),
            ];
            let age = due
                .filter(|d| *d <= now)
                .map(|d| std::time::Duration::from_millis((now - d) as u64));
            m.set_outbox(&by_state, age);
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(target: "metrics", error = %e.kind_name(), "outbox gauges not read");
        }
    }
}
