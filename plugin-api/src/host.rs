//! The services a host offers to plugins, as a plain Rust trait.

use crate::types::{FlowToken, LogLevel, NewFlowToken, OutgoingMail, RateLimit, User};
use crate::HostError;

/// Host services available to a stage hook.
///
/// A host implements this trait once per request (it knows the running flow and
/// plan) and lends it to the hook as `&dyn Host`. Plugins never keep it past the
/// call. Across the FFI boundary the same trait is reached through
/// [`crate::abi::HostVTable`]; plugin code cannot tell the difference.
pub trait Host {
    /// Looks up a persisted user by id.
    fn user(&self, id: &str) -> Result<Option<User>, HostError>;
    /// Sets `is_active` of a user; only that column is written. `Ok(false)` if the user
    /// does not exist.
    fn set_user_active(&self, id: &str, active: bool) -> Result<bool, HostError>;
    /// Stores a flow token with a snapshot of the current plan.
    fn create_flow_token(&self, token: &NewFlowToken) -> Result<(), HostError>;
    /// Looks up a non-expired flow token by key hash.
    fn flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError>;
    /// Deletes a non-expired flow token and returns it; `None` if another request
    /// consumed it first or it expired. Atomic.
    fn consume_flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError>;
    /// Deletes every token of `user_id` issued by `stage_name`; returns how many.
    fn revoke_flow_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, HostError>;
    /// Reads a cache entry.
    fn cache_get(&self, key: &str) -> Result<Option<String>, HostError>;
    /// Writes a cache entry with a time to live (milliseconds, 0 = drop at once).
    fn cache_set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), HostError>;
    /// Atomic sliding-window limiter: counts recorded attempts `t > now - window`;
    /// if there are `max` or more, answers `Limited` and records nothing; otherwise
    /// records `now` (entry lives `window` truncated to whole seconds) and answers
    /// `Allowed`. Concurrent callers never exceed `max`.
    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, HostError>;
    /// Records an audit event (`configuration_error`, …) with a JSON object context.
    fn emit_event(&self, action: &str, context: &serde_json::Value) -> Result<(), HostError>;
    /// Queues a mail for delivery outside the request; returns at once.
    fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), HostError>;
    /// The global `From` address (authentik's `email.from`).
    fn default_from_address(&self) -> String;
    /// Writes a log record into the host's `tracing` subscriber.
    fn log(&self, level: LogLevel, target: &str, message: &str);
    /// Current time, Unix milliseconds (injectable for tests).
    fn now_ms(&self) -> i64;
    /// Fills `buf` from a cryptographically secure generator (injectable for tests).
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError>;
}
