//! PostgreSQL as the cache: several hosts on one database server, no Redis.
//!
//! Entries and rate-limit windows live in `UNLOGGED` tables: they are not written
//! to the WAL, so they cost little, and a crash of the database server may lose
//! them (a cache may forget; a lost window only lets a few more attempts through).
//! A read honours the TTL itself; expired rows are deleted in bounded batches by
//! [`Cache::sweep`]. The sliding-window limiter is one function call, one statement:
//! the key's row is locked (`FOR UPDATE`) while the window is decided and written,
//! so concurrent hosts never exceed the limit. Keys are namespaced exactly as in
//! Redis (deployment, then plugin), and the decision is the reference one
//! ([`plugin_api::ratelimit::sliding_window`]), so both backends answer the same
//! sequence of calls the same way.

use std::time::Duration;

use plugin_api::RateLimit;

use super::{Cache, CacheError};
use crate::storage::pool::{self, Pool};

/// Tables and the limiter function; every statement may run again.
const SCHEMA: &str = r#"
CREATE UNLOGGED TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_expiry ON cache_entries (expires_ms);
CREATE UNLOGGED TABLE IF NOT EXISTS cache_windows (
    key TEXT PRIMARY KEY,
    hits BIGINT[] NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_windows_expiry ON cache_windows (expires_ms);
CREATE OR REPLACE FUNCTION cache_rate_limit(
    k TEXT, now_ms BIGINT, window_ms BIGINT, max_hits INTEGER, ttl_ms BIGINT
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    kept BIGINT[];
BEGIN
    INSERT INTO cache_windows (key, hits, expires_ms) VALUES (k, '{}', 0)
        ON CONFLICT (key) DO NOTHING;
    SELECT CASE WHEN w.expires_ms > now_ms
                THEN ARRAY(SELECT h FROM unnest(w.hits) AS h WHERE h > now_ms - window_ms)
                ELSE '{}'::BIGINT[] END
      INTO kept FROM cache_windows w WHERE w.key = k FOR UPDATE;
    IF coalesce(cardinality(kept), 0) >= max_hits THEN
        RETURN (SELECT greatest(min(h) + window_ms - now_ms, 0) FROM unnest(kept) AS h);
    END IF;
    IF ttl_ms > 0 THEN
        UPDATE cache_windows SET hits = kept || now_ms, expires_ms = now_ms + ttl_ms
            WHERE key = k;
    ELSE
        DELETE FROM cache_windows WHERE key = k;
    END IF;
    RETURN -1;
END $$;
"#;

/// A cache in PostgreSQL, every key under `namespace`.
pub struct PostgresCache {
    pool: Pool,
    namespace: String,
}

fn err(e: impl std::fmt::Display) -> CacheError {
    CacheError(e.to_string())
}

impl PostgresCache {
    /// Connects to `url` with a pool of at most `pool_size` connections, in `schema`
    /// (created if missing) when given, and creates the tables if needed. Keys are
    /// prefixed with `namespace:`. Several hosts may start at once.
    pub fn open(
        url: &str,
        schema: Option<&str>,
        namespace: &str,
        pool_size: u32,
    ) -> Result<Self, CacheError> {
        let pool =
            pool::pool(url, schema, pool_size, Duration::from_secs(2)).map_err(CacheError)?;
        let mut c = pool.get().map_err(err)?;
        let mut tx = c.transaction().map_err(err)?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(7317003)")
            .map_err(err)?;
        if let Some(s) = schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET LOCAL search_path TO \"{s}\""
            ))
            .map_err(err)?;
        }
        tx.batch_execute(SCHEMA).map_err(err)?;
        tx.commit().map_err(err)?;
        drop(c);
        Ok(Self {
            pool,
            namespace: namespace.to_string(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<pool::Manager>, CacheError> {
        self.pool.get().map_err(err)
    }
}

impl Cache for PostgresCache {
    fn get(&self, key: &str, now_ms: i64) -> Result<Option<String>, CacheError> {
        let row = self
            .conn()?
            .query_opt(
                "SELECT value FROM cache_entries WHERE key = $1 AND expires_ms > $2",
                &[&self.key(key), &now_ms],
            )
            .map_err(err)?;
        row.map(|r| r.try_get::<_, String>(0).map_err(err))
            .transpose()
    }

    fn set(&self, key: &str, value: &str, ttl_ms: u64, now_ms: i64) -> Result<(), CacheError> {
        let key = self.key(key);
        let mut c = self.conn()?;
        if ttl_ms == 0 {
            c.execute("DELETE FROM cache_entries WHERE key = $1", &[&key])
                .map_err(err)?;
            return Ok(());
        }
        let expires_ms = now_ms.saturating_add(ttl_ms.min(i64::MAX as u64) as i64);
        c.execute(
            "INSERT INTO cache_entries (key, value, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_ms = EXCLUDED.expires_ms",
            &[&key, &value, &expires_ms],
        )
        .map_err(err)?;
        Ok(())
    }

    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, CacheError> {
        // The window lives its length truncated to whole seconds, as in the other
        // backends (authentik's `int(total_seconds())`).
        let ttl_ms = ((window_ms / 1000) * 1000).min(i64::MAX as u64) as i64;
        let window = window_ms.min(i64::MAX as u64) as i64;
        let max = i32::try_from(max).unwrap_or(i32::MAX);
        let retry: i64 = self
            .conn()?
            .query_one(
                "SELECT cache_rate_limit($1, $2, $3, $4, $5)",
                &[&self.key(key), &now_ms, &window, &max, &ttl_ms],
            )
            .map_err(err)?
            .try_get(0)
            .map_err(err)?;
        Ok(if retry < 0 {
            RateLimit::Allowed
        } else {
            RateLimit::Limited {
                retry_after_ms: retry as u64,
            }
        })
    }

    fn sweep(&self, now_ms: i64, limit: usize) -> Result<u64, CacheError> {
        let mut c = self.conn()?;
        let mut n = 0;
        for table in ["cache_entries", "cache_windows"] {
            n += c
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE key IN
                         (SELECT key FROM {table} WHERE expires_ms <= $1 LIMIT $2
                          FOR UPDATE SKIP LOCKED)"
                    ),
                    &[&now_ms, &(limit as i64)],
                )
                .map_err(err)?;
        }
        Ok(n)
    }
}
