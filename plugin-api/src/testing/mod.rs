//! A test kit for plugin authors: [`FakeHost`], every host service in memory, with
//! a clock you move by hand, deterministic randomness, failure and panic injection,
//! and accessors for what the plugin did; and [`build_cdylib`], which builds the
//! plugin's library for a test that loads it through the stable ABI.
//!
//! ```
//! use plugin_api::testing::FakeHost;
//! use plugin_api::Host;
//!
//! let host = FakeHost::new();
//! host.emit_event("hello", &serde_json::json!({"a": 1})).unwrap();
//! assert_eq!(host.events()[0].0, "hello");
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::host::Host;
use crate::ratelimit::sliding_window;
use crate::types::{FlowToken, LogLevel, NewFlowToken, OutgoingMail, RateLimit, User};
use crate::HostError;

pub mod conformance;
mod flow;
mod library;
pub use flow::FakeFlow;
pub use library::{build_artifact, build_cdylib, reported_artifacts, BuildError};

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    tokens: Vec<NewFlowToken>,
    /// Value and expiry (ms since the epoch, on the host's clock).
    cache: HashMap<String, (String, i64)>,
    flow_state: HashMap<String, String>,
    attempts: HashMap<String, Vec<i64>>,
    events: Vec<(String, serde_json::Value)>,
    mails: Vec<OutgoingMail>,
    logs: Vec<(LogLevel, String, String)>,
    fail: Option<HostError>,
    fail_in: Option<(&'static str, HostError)>,
    panic_in: Option<&'static str>,
    from_address: Option<String>,
}

/// Every host service in memory. Not for production: randomness is a fixed-seed
/// generator and nothing is persisted. Time is the host's own clock, moved by hand
/// ([`FakeHost::advance`]); cache entries expire against it, as a real host's do.
pub struct FakeHost {
    state: Mutex<State>,
    now: AtomicI64,
    seed: AtomicU64,
    record: AtomicBool,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// An empty host at 2026-01-01T00:00:00Z that records everything.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            now: AtomicI64::new(1_767_225_600_000),
            seed: AtomicU64::new(0x2545_F491_4F6C_DD1D),
            record: AtomicBool::new(true),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, service: &'static str) -> Result<(), HostError> {
        let s = self.lock();
        if s.panic_in == Some(service) {
            drop(s);
            panic!("FakeHost panics in {service}");
        }
        if let Some((name, e)) = &s.fail_in {
            if *name == service {
                return Err(e.clone());
            }
        }
        match &s.fail {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The global `From` address it reports (default `authentik@localhost`).
    pub fn with_from_address(self, address: &str) -> Self {
        self.lock().from_address = Some(address.into());
        self
    }

    /// Adds a user (its `id` must be set).
    pub fn with_user(self, user: User) -> Self {
        let id = user.id.clone().unwrap_or_default();
        self.lock().users.insert(id, user);
        self
    }
    /// Keeps tokens, events, mails and logs (the default) or drops them (benchmarks).
    pub fn recording(self, on: bool) -> Self {
        self.record.store(on, Ordering::Relaxed);
        self
    }
    /// Makes every service fail with `err` from now on (`None` heals).
    pub fn fail_with(&self, err: Option<HostError>) {
        self.lock().fail = err;
    }
    /// Makes only `service` (a [`Host`] method name, e.g. `"cache_get"`) fail with
    /// `err` from now on (`None` heals it).
    pub fn fail_in(&self, service: &'static str, err: Option<HostError>) {
        self.lock().fail_in = err.map(|e| (service, e));
    }
    /// Makes `service` (a [`Host`] method name, e.g. `"user"`) panic.
    pub fn panic_in(&self, service: &'static str) {
        self.lock().panic_in = Some(service);
    }
    /// Moves the clock.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
    /// A user as it is now.
    pub fn stored_user(&self, id: &str) -> Option<User> {
        self.lock().users.get(id).cloned()
    }
    /// Tokens created so far (not removed by consume or revoke calls).
    pub fn tokens(&self) -> Vec<NewFlowToken> {
        self.lock().tokens.clone()
    }
    /// Events emitted so far.
    pub fn events(&self) -> Vec<(String, serde_json::Value)> {
        self.lock().events.clone()
    }
    /// Mails queued so far.
    pub fn mails(&self) -> Vec<OutgoingMail> {
        self.lock().mails.clone()
    }
    /// Log records so far.
    pub fn logs(&self) -> Vec<(LogLevel, String, String)> {
        self.lock().logs.clone()
    }
}

fn public(t: &NewFlowToken) -> FlowToken {
    FlowToken {
        identifier: t.identifier.clone(),
        user_id: t.user_id.clone(),
        flow_slug: String::new(),
        stage_name: t.stage_name.clone(),
        expires_ms: t.expires_ms,
        intent: t.intent.clone(),
    }
}

impl Host for FakeHost {
    fn user(&self, id: &str) -> Result<Option<User>, HostError> {
        self.check("user")?;
        Ok(self.lock().users.get(id).cloned())
    }
    fn set_user_active(&self, id: &str, active: bool) -> Result<bool, HostError> {
        self.check("set_user_active")?;
        Ok(self
            .lock()
            .users
            .get_mut(id)
            .map(|u| u.is_active = active)
            .is_some())
    }
    fn create_flow_token(&self, token: &NewFlowToken) -> Result<(), HostError> {
        self.check("create_flow_token")?;
        if self.record.load(Ordering::Relaxed) {
            self.lock().tokens.push(token.clone());
        }
        Ok(())
    }
    fn flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        self.check("flow_token")?;
        let now = self.now_ms();
        Ok(self
            .lock()
            .tokens
            .iter()
            .find(|t| t.key_hash == key_hash && t.expires_ms >= now)
            .map(public))
    }
    fn consume_flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        self.check("consume_flow_token")?;
        let now = self.now_ms();
        let mut s = self.lock();
        let pos = s.tokens.iter().position(|t| t.key_hash == key_hash);
        Ok(pos
            .map(|i| s.tokens.remove(i))
            .filter(|t| t.expires_ms >= now)
            .map(|t| public(&t)))
    }
    fn revoke_flow_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, HostError> {
        self.check("revoke_flow_tokens")?;
        let mut s = self.lock();
        let before = s.tokens.len();
        s.tokens
            .retain(|t| !(t.user_id == user_id && t.stage_name == stage_name));
        Ok((before - s.tokens.len()) as u64)
    }
    fn cache_get(&self, key: &str) -> Result<Option<String>, HostError> {
        self.check("cache_get")?;
        let now = self.now.load(Ordering::SeqCst);
        let s = self.lock();
        Ok(s.cache
            .get(key)
            .filter(|(_, exp)| now < *exp)
            .map(|(v, _)| v.clone()))
    }
    fn cache_set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), HostError> {
        self.check("cache_set")?;
        let mut s = self.lock();
        if ttl_ms == 0 {
            s.cache.remove(key);
        } else {
            let expires = self
                .now
                .load(Ordering::SeqCst)
                .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
            s.cache
                .insert(key.to_string(), (value.to_string(), expires));
        }
        Ok(())
    }
    fn flow_state_get(&self, key: &str) -> Result<Option<String>, HostError> {
        self.check("flow_state_get")?;
        Ok(self.lock().flow_state.get(key).cloned())
    }
    fn flow_state_set(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.check("flow_state_set")?;
        let mut s = self.lock();
        let after = s.flow_state.len() + usize::from(!s.flow_state.contains_key(key));
        crate::check_flow_state(key, value, after)?;
        if value.is_empty() {
            s.flow_state.remove(key);
        } else {
            s.flow_state.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }
    fn host_info(&self) -> Result<String, HostError> {
        self.check("host_info")?;
        Ok(format!("plugin-api FakeHost {}", crate::API_VERSION))
    }
    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, HostError> {
        self.check("rate_limit")?;
        let mut s = self.lock();
        let attempts = s.attempts.entry(key.to_string()).or_default();
        Ok(sliding_window(attempts, window_ms, max, now_ms))
    }
    fn emit_event(&self, action: &str, context: &serde_json::Value) -> Result<(), HostError> {
        self.check("emit_event")?;
        if self.record.load(Ordering::Relaxed) {
            self.lock()
                .events
                .push((action.to_string(), context.clone()));
        }
        Ok(())
    }
    fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), HostError> {
        self.check("enqueue_mail")?;
        if self.record.load(Ordering::Relaxed) {
            self.lock().mails.push(mail.clone());
        }
        Ok(())
    }
    fn default_from_address(&self) -> String {
        (self.lock().from_address.clone()).unwrap_or_else(|| "authentik@localhost".into())
    }
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        if self.record.load(Ordering::Relaxed) {
            self.lock()
                .logs
                .push((level, target.to_string(), message.to_string()));
        }
    }
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        self.check("fill_random")?;
        // xorshift64*: reproducible, not cryptographic.
        let mut x = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            | 1;
        for b in buf.iter_mut() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
        Ok(())
    }
}

/// Wraps any [`Host`] and records the name of every service a plugin calls, in
/// order; the wrapper is generated from the one declaration of the services, so a
/// new service is recorded without touching this file.
///
/// ```
/// use plugin_api::testing::{FakeHost, Recording};
/// use plugin_api::Host;
///
/// let host = Recording::new(FakeHost::new());
/// host.now_ms();
/// host.cache_get("k").unwrap();
/// assert_eq!(host.calls(), ["now_ms", "cache_get"]);
/// ```
pub struct Recording<H> {
    inner: H,
    calls: Mutex<Vec<&'static str>>,
}

impl<H: Host> Recording<H> {
    /// Records the calls made through it to `inner`.
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }
    /// The host it forwards to.
    pub fn inner(&self) -> &H {
        &self.inner
    }
    /// The services called so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn record(&self, service: &'static str) -> &H {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(service);
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FLOW_STATE_MAX_KEYS, FLOW_STATE_MAX_VALUE};

    #[test]
    fn flow_state_is_kept_deleted_and_bounded() {
        let h = FakeHost::new();
        assert_eq!(h.flow_state_get("k").unwrap(), None);
        h.flow_state_set("k", "v").unwrap();
        assert_eq!(h.flow_state_get("k").unwrap().as_deref(), Some("v"));
        h.flow_state_set("k", "").unwrap();
        assert_eq!(h.flow_state_get("k").unwrap(), None);
        assert!(matches!(
            h.flow_state_set("", "v"),
            Err(HostError::Rejected(_))
        ));
        let big = "x".repeat(FLOW_STATE_MAX_VALUE + 1);
        assert!(matches!(
            h.flow_state_set("k", &big),
            Err(HostError::Rejected(_))
        ));
        for i in 0..FLOW_STATE_MAX_KEYS {
            h.flow_state_set(&format!("k{i}"), "v").unwrap();
        }
        assert!(matches!(
            h.flow_state_set("one-more", "v"),
            Err(HostError::Rejected(_))
        ));
        h.flow_state_set("k0", "replaced").unwrap();
    }

    #[test]
    fn recording_sees_every_service_in_order_including_failures() {
        let h = Recording::new(FakeHost::new());
        h.flow_state_set("a", "b").unwrap();
        h.inner()
            .fail_with(Some(HostError::Unavailable("down".into())));
        assert!(h.user("1").is_err());
        h.log(LogLevel::Info, "t", "m");
        assert_eq!(h.calls(), ["flow_state_set", "user", "log"]);
    }

    #[test]
    fn cache_entries_expire_on_the_hosts_clock() {
        let h = FakeHost::new();
        h.cache_set("k", "v", 1_000).unwrap();
        h.advance(999);
        assert_eq!(h.cache_get("k").unwrap().as_deref(), Some("v"));
        h.advance(1);
        assert_eq!(h.cache_get("k").unwrap(), None, "expired at its TTL");
        h.cache_set("k", "w", 10).unwrap();
        h.cache_set("k", "", 0).unwrap();
        assert_eq!(h.cache_get("k").unwrap(), None, "TTL 0 deletes");
    }

    #[test]
    fn failures_and_panics_are_injectable() {
        let h = FakeHost::new();
        h.fail_with(Some(HostError::Unavailable("down".into())));
        assert!(h.cache_get("k").is_err());
        h.fail_with(None);
        assert!(h.cache_get("k").is_ok());
        h.panic_in("user");
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.user("1"))).is_err());
    }
}
