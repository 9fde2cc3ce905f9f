//! Redis: one cache for several hosts. The rate limiter is one Lua script over a
//! sorted set, so it is a single atomic round trip however many hosts call it.

use std::sync::Mutex;

use plugin_api::RateLimit;
use redis::{Commands, Script};

use super::{Cache, CacheError};

/// KEYS[1] = key; ARGV = now_ms, window_ms, max, ttl_ms, nonce.
/// Drops attempts at or before now - window; limited ⇒ {0, retry_ms} and nothing
/// recorded; else records now and (re)sets the TTL ⇒ {1, 0}.
const RATE_LIMIT_LUA: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry = tonumber(oldest[2]) + window - now
  if retry < 0 then retry = 0 end
  return {0, retry}
end
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[5])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('DEL', KEYS[1])
end
return {1, 0}
"#;

/// A cache in Redis, every key under `namespace` (one per host deployment).
pub struct RedisCache {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    namespace: String,
    script: Script,
}

fn err(e: impl std::fmt::Display) -> CacheError {
    CacheError(e.to_string())
}

impl RedisCache {
    /// Connects to `url` (`redis://…`); keys are prefixed with `namespace:`.
    pub fn open(url: &str, namespace: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(err)?;
        let conn = client
            .get_connection_with_timeout(std::time::Duration::from_secs(5))
            // The URL holds the password: callers name the backend, redacted.
            .map_err(err)?;
        Ok(Self {
            client,
            conn: Mutex::new(Some(conn)),
            namespace: namespace.to_string(),
            script: Script::new(RATE_LIMIT_LUA),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// Runs `f` on the connection; a failed connection is dropped and made again on
    /// the next call, so the cache recovers when Redis comes back.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, CacheError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(
                self.client
                    .get_connection_with_timeout(std::time::Duration::from_secs(2))
                    .map_err(err)?,
            );
        }
        let conn = guard
            .as_mut()
            .ok_or_else(|| CacheError("no connection".into()))?;
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() {
                    *guard = None;
                }
                Err(err(e))
            }
        }
    }
}

impl Cache for RedisCache {
    fn get(&self, key: &str, _now_ms: i64) -> Result<Option<String>, CacheError> {
        let k = self.key(key);
        self.with(|c| c.get(k))
    }

    fn set(&self, key: &str, value: &str, ttl_ms: u64, _now_ms: i64) -> Result<(), CacheError> {
        let k = self.key(key);
        if ttl_ms == 0 {
            return self.with(|c| c.del(k));
        }
        self.with(|c| c.pset_ex(k, value, ttl_ms))
    }

    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, CacheError> {
        let k = self.key(key);
        let ttl_ms = (window_ms / 1000) * 1000;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(err)?;
        let nonce = u64::from_le_bytes(nonce);
        let (allowed, retry): (i64, i64) = self.with(|c| {
            self.script
                .key(k)
                .arg(now_ms)
                .arg(window_ms)
                .arg(max)
                .arg(ttl_ms)
                .arg(nonce)
                .invoke(c)
        })?;
        Ok(if allowed == 1 {
            RateLimit::Allowed
        } else {
            RateLimit::Limited {
                retry_after_ms: retry.max(0) as u64,
            }
        })
    }
}
