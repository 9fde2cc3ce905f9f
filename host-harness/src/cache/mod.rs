//! The shared cache: a trait with TTLs and an atomic sliding-window rate limiter;
//! the in-process backend here, Redis and PostgreSQL beside it. Imports only
//! `storage` (for the PostgreSQL connection pool).

use std::collections::HashMap;
use std::sync::Mutex;

mod postgres;
mod redis;

pub use self::postgres::PostgresCache;
pub use self::redis::RedisCache;
use plugin_api::ratelimit::sliding_window;
use plugin_api::RateLimit;

/// A cache failure (the in-process cache never fails; remote ones can).
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// What a cache offers hosts and plugins.
pub trait Cache: Send + Sync {
    /// Reads a live entry.
    fn get(&self, key: &str, now_ms: i64) -> Result<Option<String>, CacheError>;
    /// Writes an entry living `ttl_ms` (0 = not stored).
    fn set(&self, key: &str, value: &str, ttl_ms: u64, now_ms: i64) -> Result<(), CacheError>;
    /// Sliding window over allowed attempts, atomically: see
    /// [`plugin_api::Host::rate_limit`].
    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, CacheError>;
    /// Deletes up to `limit` entries expired at `now_ms` (per kind of entry); how
    /// many. Backends that expire entries themselves (Redis) do nothing.
    fn sweep(&self, now_ms: i64, limit: usize) -> Result<u64, CacheError> {
        let _ = (now_ms, limit);
        Ok(0)
    }
}

enum Slot {
    Text(String),
    Attempts(Vec<i64>),
}

struct Entry {
    slot: Slot,
    expires_ms: i64,
}

/// In-process cache: one mutex over a map; expired entries are dropped when met and
/// swept every few thousand writes.
#[derive(Default)]
pub struct MemoryCache {
    map: Mutex<(HashMap<String, Entry>, u32)>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Entry>, u32)> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, key: &str, slot: Slot, ttl_ms: u64, now_ms: i64) {
        let mut g = self.lock();
        let (map, writes) = &mut *g;
        *writes += 1;
        if *writes % 4096 == 0 {
            map.retain(|_, e| e.expires_ms > now_ms);
        }
        if ttl_ms == 0 {
            map.remove(key);
            return;
        }
        let expires_ms = now_ms.saturating_add(ttl_ms.min(i64::MAX as u64) as i64);
        map.insert(key.to_string(), Entry { slot, expires_ms });
    }

    /// Number of stored entries (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Cache for MemoryCache {
    fn get(&self, key: &str, now_ms: i64) -> Result<Option<String>, CacheError> {
        let g = self.lock();
        Ok(match g.0.get(key) {
            Some(Entry {
                slot: Slot::Text(s),
                expires_ms,
            }) if *expires_ms > now_ms => Some(s.clone()),
            _ => None,
        })
    }

    fn set(&self, key: &str, value: &str, ttl_ms: u64, now_ms: i64) -> Result<(), CacheError> {
        self.put(key, Slot::Text(value.to_string()), ttl_ms, now_ms);
        Ok(())
    }

    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, CacheError> {
        // The entry lives the window truncated to whole seconds (authentik's
        // `int(total_seconds())`); under one second nothing is kept.
        let ttl_ms = (window_ms / 1000) * 1000;
        let mut g = self.lock();
        let (map, _) = &mut *g;
        let mut attempts: Vec<i64> = match map.get(key) {
            Some(Entry {
                slot: Slot::Attempts(v),
                expires_ms,
            }) if *expires_ms > now_ms => v.clone(),
            _ => Vec::new(),
        };
        let decision = sliding_window(&mut attempts, window_ms, max, now_ms);
        if decision == RateLimit::Allowed {
            if ttl_ms == 0 {
                map.remove(key);
            } else {
                let expires_ms = now_ms.saturating_add(ttl_ms as i64);
                map.insert(
                    key.to_string(),
                    Entry {
                        slot: Slot::Attempts(attempts),
                        expires_ms,
                    },
                );
            }
        }
        Ok(decision)
    }
}
