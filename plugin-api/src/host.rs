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
    /// Stores a flow token with a snapshot of the current plan. A host may write it
    /// together with the hook's next [`Host::enqueue_mail`] (one transaction, so the
    /// mail carrying its link and the token are stored together or not at all); a
    /// storage failure is then reported by that call, or fails the hook if nothing
    /// follows. Token reads of the same hook see it either way.
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
    prefix fn fill_random(buf: &mut [u8] => RSliceMut<'_, u8>)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// Reads a value the calling stage stored for the running flow with
    /// [`Host::flow_state_set`]; `None` if unset. Keys belong to the calling stage
    /// binding, and the values die with the plan (the flow ends or starts again).
    prefix fn flow_state_get(key: &str => RStr<'_>)
        -> Result<Option<String>, HostError> => RResult<ROption<RString>, FfiError>;
    /// Stores `value` under `key` for the rest of the running flow, for the calling
    /// stage binding only; an empty value deletes it. Written with the hook's
    /// result, so a hook that fails writes nothing, and the value travels with the
    /// plan (into a link's flow token too). It is not secret: it is part of the
    /// plan context. See [`check_flow_state`] for the limits.
    ///
    /// Last field of the prefix (fixed since 0.2): plugins built against 0.2 or later may rely on
    /// every service up to here.
    #[sabi(last_prefix_field)]
    prefix fn flow_state_set(key: &str => RStr<'_>, value: &str => RStr<'_>)
        -> Result<(), HostError> => RResult<(), FfiError>;
    /// The host's product name and version (`host-harness 0.1.0`), for a plugin's
    /// diagnostics. Appended in 0.3.1: from a host built against 0.3.0 a plugin
    /// gets [`HostError::Unsupported`].
    appended fn host_info() -> Result<String, HostError> => RResult<RString, FfiError>;
}

/// Longest flow-state key, in bytes.
pub const FLOW_STATE_MAX_KEY: usize = 128;
/// Longest flow-state value, in bytes.
pub const FLOW_STATE_MAX_VALUE: usize = 4096;
/// Most flow-state keys one stage binding may hold.
pub const FLOW_STATE_MAX_KEYS: usize = 32;

/// The limits every host applies to [`Host::flow_state_set`]: a non-empty key of
/// at most [`FLOW_STATE_MAX_KEY`] bytes, a value of at most
/// [`FLOW_STATE_MAX_VALUE`] bytes, and at most [`FLOW_STATE_MAX_KEYS`] keys per
/// stage (`keys_after`: how many the stage would hold after the write).
pub fn check_flow_state(key: &str, value: &str, keys_after: usize) -> Result<(), HostError> {
    if key.is_empty() || key.len() > FLOW_STATE_MAX_KEY {
        return Err(HostError::Rejected(format!(
            "flow state key must be 1-{FLOW_STATE_MAX_KEY} bytes"
        )));
    }
    if value.len() > FLOW_STATE_MAX_VALUE {
        return Err(HostError::Rejected(format!(
            "flow state value over {FLOW_STATE_MAX_VALUE} bytes"
        )));
    }
    if keys_after > FLOW_STATE_MAX_KEYS {
        return Err(HostError::Rejected(format!(
            "a stage holds at most {FLOW_STATE_MAX_KEYS} flow state keys"
        )));
    }
    Ok(())
}
