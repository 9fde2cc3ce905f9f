//! The host's log filter.
//!
//! `RUST_LOG` as given (or a default level), with one cap no setting lifts: the
//! PostgreSQL driver logs every statement's parameters at DEBUG (session data,
//! token hashes, prompt values), so its `query` target stays at INFO.

use tracing_subscriber::filter::{Directive, EnvFilter};

/// Targets whose records would carry secrets below the given level.
const CAPPED: &[&str] = &["tokio_postgres::query=info", "tokio_postgres::prepare=info"];

/// `RUST_LOG` (else `default`, e.g. `warn`) with the caps of this module.
pub fn filter(default: &str) -> EnvFilter {
    let base = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(default),
    };
    CAPPED
        .iter()
        .filter_map(|d| d.parse::<Directive>().ok())
        .fold(base, EnvFilter::add_directive)
}
