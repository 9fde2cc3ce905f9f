//! The services a host offers to plugins: declared here once, for the plain trait
//! [`Host`], the FFI table [`HostVTable`] and both sides of the boundary (see
//! [`crate::wire`]). Adding a service is one declaration below plus its
//! implementations in each host (and in [`crate::testing::FakeHost`]).

use abi_stable::std_types::{ROption, RResult, RSliceMut, RStr, RString};

use crate::abi::{FfiError, FfiMail, FfiRateLimit};
use crate::types::{FlowToken, LogLevel, NewFlowToken, OutgoingMail, RateLimit, User};
use crate::wire::host_services;
use crate::HostError;

host_services! {
    /// Looks up a persisted user by id.
    prefix fn user(id: &str => RStr<'_>)
        -> Result<Option<User>, HostError> => RResult<ROption<RString>, FfiError>;
    /// Sets `is_active` of a user; only that column is written. `Ok(false)` if the user
    /// does not exist.
    prefix fn set_user_active(id: &str => RStr<'_>, active: bool => bool)
        -> Result<bool, HostError> => RResult<bool, FfiError>;
    /// Stores a flow token with a snapshot of the current plan.
    prefix fn create_flow_token(token: &NewFlowToken => RStr<'_>)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// Looks up a non-expired flow token by key hash.
    prefix fn flow_token(key_hash: &str => RStr<'_>)
        -> Result<Option<FlowToken>, HostError> => RResult<ROption<RString>, FfiError>;
    /// Deletes a non-expired flow token and returns it; `None` if another request
    /// consumed it first or it expired. Atomic.
    prefix fn consume_flow_token(key_hash: &str => RStr<'_>)
        -> Result<Option<FlowToken>, HostError> => RResult<ROption<RString>, FfiError>;
    /// Deletes every token of `user_id` issued by `stage_name`; returns how many.
    prefix fn revoke_flow_tokens(user_id: &str => RStr<'_>, stage_name: &str => RStr<'_>)
        -> Result<u64, HostError> => RResult<u64, FfiError>;
    /// Reads a cache entry.
    prefix fn cache_get(key: &str => RStr<'_>)
        -> Result<Option<String>, HostError> => RResult<ROption<RString>, FfiError>;
    /// Writes a cache entry with a time to live (milliseconds, 0 = drop at once).
    prefix fn cache_set(key: &str => RStr<'_>, value: &str => RStr<'_>, ttl_ms: u64 => u64)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// Atomic sliding-window limiter: counts recorded attempts `t > now - window`;
    /// if there are `max` or more, answers `Limited` and records nothing; otherwise
    /// records `now` (entry lives `window` truncated to whole seconds) and answers
    /// `Allowed`. Concurrent callers never exceed `max`.
    prefix fn rate_limit(key: &str => RStr<'_>, window_ms: u64 => u64, max: u32 => u32, now_ms: i64 => i64)
        -> Result<RateLimit, HostError> => RResult<FfiRateLimit, FfiError>;
    /// Records an audit event (`configuration_error`, …) with a JSON object context.
    prefix fn emit_event(action: &str => RStr<'_>, context: &serde_json::Value => RStr<'_>)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// Queues a mail for delivery outside the request; returns at once.
    prefix fn enqueue_mail(mail: &OutgoingMail => FfiMail<'_>)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// The global `From` address (authentik's `email.from`).
    prefix fn default_from_address() -> String => RString;
    /// Writes a log record into the host's `tracing` subscriber.
    prefix fn log(level: LogLevel => u8, target: &str => RStr<'_>, message: &str => RStr<'_>) -> () => ();
    /// Current time, Unix milliseconds (injectable for tests).
    prefix fn now_ms() -> i64 => i64;
    /// Fills `buf` from a cryptographically secure generator (injectable for tests).
    ///
    /// Last field of the version 0.1 prefix: plugins built against 0.1 may rely on
    /// every service up to here. Append new services below it, as `appended`.
    #[sabi(last_prefix_field)]
    prefix fn fill_random(buf: &mut [u8] => RSliceMut<'_, u8>)
        -> Result<(), HostError> => RResult<(), FfiError>;
}
