//! The reference host: loads stage plugins, stores users and flow tokens, delivers
//! mail from a background queue and runs whole flows with authentik's executor
//! semantics.
//!
//! - [`config`]: the TOML configuration and assembly of an [`executor::Executor`].
//! - [`executor`]: plans, sessions, link restore and the confirmation step.
//! - [`http`]: `host-harness serve`, the executor over HTTP with sessions.
//! - [`builtin`]: the host's own stages (identification, prompt, user write, login).
//! - [`services`]: [`plugin_api::Host`] for one hook call.
//! - [`conformance`]: the checks every storage and cache backend must pass.
//! - [`maildir`]: reads delivered mail back (demo, tests).
//! - [`store`], [`cache`], [`mail`], [`clock`], [`entropy`]: backends, each behind a
//!   trait.
//! - [`maintenance`]: background sweeps of expired tokens, idle sessions, old decoys.
//! - [`spool`]: events kept while the store is down.
//! - [`logging`]: the host's log filter.
//! - [`client`]: drives flows like the flow page does (follows redirects, keeps the session).

#![deny(missing_docs)]

pub mod builtin;
pub mod cache;
pub mod client;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod entropy;
pub mod executor;
pub mod http;
pub mod logging;
pub mod mail;
pub mod maildir;
pub mod maintenance;
pub mod pg;
pub mod services;
pub mod spool;
pub mod store;
