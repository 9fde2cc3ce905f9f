//! The reference host: loads stage plugins, stores users and flow tokens, delivers
//! mail from a background queue and runs whole flows with authentik's executor
//! semantics.
//!
//! The modules, from the bottom up (each imports only those above it in this list;
//! `tests/tests/architecture.rs` checks it):
//!
//! - [`system`]: time, randomness, the log filter.
//! - [`i18n`]: the locale a hook runs in, the brand it is given.
//! - [`import`]: authentik blueprints to a configuration (pure, imports nothing).
//! - [`plan`]: the plan of a running flow.
//! - [`storage`]: users, flow tokens, events, sessions and the mail outbox, behind
//!   traits; memory, SQLite and PostgreSQL.
//! - [`cache`]: cache entries and the rate limiter; in-process, Redis, PostgreSQL.
//! - [`mail`]: delivery from the outbox (workers, SMTP, retries, routes, the mail
//!   directory).
//! - [`stages`]: bindings, the built-in stages, the host handle lent to a hook.
//! - [`flow`]: the executor (plans per session, link restore, confirmation).
//! - [`maintenance`]: background sweeps of expired tokens, sessions, cache rows.
//! - [`http`]: `serve`, the executor over HTTP with sessions.
//! - [`config`]: the TOML model and the assembly of all of the above; imported by
//!   nothing but the commands.
//! - `testing` (feature `testing`): the conformance checks for backends.

#![deny(missing_docs)]

pub mod cache;
pub mod config;
pub mod flow;
pub mod http;
pub mod i18n;
pub mod import;
pub mod mail;
pub mod maintenance;
pub mod plan;
pub mod stages;
pub mod storage;
pub mod system;
#[cfg(feature = "testing")]
pub mod testing;
