//! `GET`/`POST /-/test/clock`: the served host's hand-moved clock, routed only when
//! `serve --clock manual` made one (refused unless serve listens on loopback). A
//! test moves time with `POST {"advance_ms": N}` to reach a token's expiry or the
//! end of a rate-limit window against a running host; both answer `{"now_ms": …}`.
//! The JSON body keeps a web page from posting here: a cross-origin JSON POST needs
//! a CORS preflight, which this server never grants.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::AppState;

/// The most one request moves the clock: a year.
pub const MAX_ADVANCE_MS: u64 = 366 * 24 * 3_600_000;

/// Body of `POST /-/test/clock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    /// Milliseconds to move forward (0 to [`MAX_ADVANCE_MS`]).
    pub advance_ms: u64,
}

fn now(state: &AppState) -> Response {
    Json(json!({ "now_ms": state.executor.clock.now_ms() })).into_response()
}

/// `GET /-/test/clock`.
pub async fn read(State(state): State<Arc<AppState>>) -> Response {
    now(&state)
}

/// `POST /-/test/clock`: moves the clock forward.
pub async fn advance(State(state): State<Arc<AppState>>, Json(a): Json<Advance>) -> Response {
    let Some(clock) = &state.settings.test_clock else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if a.advance_ms > MAX_ADVANCE_MS {
        let msg = format!("advance_ms must be at most {MAX_ADVANCE_MS}");
        return super::error(StatusCode::BAD_REQUEST, msg);
    }
    clock.advance(a.advance_ms as i64);
    tracing::info!(target: "serve", advance_ms = a.advance_ms, "test clock moved");
    now(&state)
}
