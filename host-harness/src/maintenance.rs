//! Housekeeping a serving host runs in the background: expired flow tokens, idle
//! stored sessions, old decoy mails and expired cache entries (PostgreSQL cache) are
//! deleted in bounded batches, so no table grows without end however many requests
//! arrive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::cache::Cache;
use crate::storage::HostStore;
use crate::system::clock::Clock;
use crate::system::metrics::metrics;

/// What the sweeps keep and how often they run.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// Time between rounds.
    pub every: Duration,
    /// Stored sessions unused this long (ms) are deleted.
    pub session_idle_ms: i64,
    /// Decoy mails older than this (ms) are deleted.
    pub decoy_age_ms: i64,
    /// Rows deleted per statement; a round repeats until less comes back.
    pub batch: usize,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            session_idle_ms: 60 * 60_000,
            decoy_age_ms: 10 * 60_000,
            batch: 1_000,
        }
    }
}

/// Rows deleted by one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired flow tokens.
    pub tokens: u64,
    /// Idle stored sessions.
    pub sessions: u64,
    /// Old decoy mails.
    pub decoys: u64,
    /// Expired cache entries.
    pub cache: u64,
}

/// Runs one round now.
pub fn sweep_once(
    store: &dyn HostStore,
    cache: &dyn Cache,
    now_ms: i64,
    h: &Housekeeping,
) -> Swept {
    let drain = |what: &str, f: &dyn Fn() -> Result<u64, String>| {
        let mut total = 0;
        loop {
            match f() {
                Ok(n) => {
                    total += n;
                    if n < h.batch as u64 {
                        return total;
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "maintenance", what, error = %e, "sweep failed");
                    return total;
                }
            }
        }
    };
    let text = |e: crate::storage::StoreError| e.to_string();
    let swept = Swept {
        tokens: drain("tokens", &|| {
            store.token_sweep(now_ms, h.batch).map_err(text)
        }),
        sessions: drain("sessions", &|| {
            store
                .session_sweep(now_ms - h.session_idle_ms, h.batch)
                .map_err(text)
        }),
        decoys: drain("decoys", &|| {
            store
                .outbox_sweep_decoys(now_ms - h.decoy_age_ms, h.batch)
                .map_err(text)
        }),
        cache: drain("cache", &|| {
            cache.sweep(now_ms, h.batch).map_err(|e| e.to_string())
        }),
    };
    metrics().token("expired", swept.tokens);
    swept
}

/// The background thread; stops when dropped.
pub struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    running: Arc<AtomicBool>,
}

impl Maintenance {
    /// Starts sweeping `store` and `cache` every `h.every`.
    pub fn start(
        store: Arc<dyn HostStore>,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
        h: Housekeeping,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let running = Arc::new(AtomicBool::new(true));
        let (stop2, running2) = (stop.clone(), running.clone());
        let thread = std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || {
                loop {
                    let (lock, cv) = &*stop2;
                    let stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                    let (stopped, _) = cv
                        .wait_timeout_while(stopped, h.every, |s| !*s)
                        .unwrap_or_else(|p| p.into_inner());
                    if *stopped {
                        break;
                    }
                    drop(stopped);
                    let swept = sweep_once(&*store, &*cache, clock.now_ms(), &h);
                    tracing::debug!(target: "maintenance", ?swept, "swept");
                }
                running2.store(false, Ordering::SeqCst);
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            running,
        })
    }

    /// Whether the thread still runs.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{QueuedMail, RouteRef};
    use crate::storage::{MemoryStore, OutboxStore, SessionStore, Store, StoredToken};

    #[test]
    fn a_round_deletes_what_has_expired_in_batches() {
        let s = MemoryStore::new();
        for i in 0..5 {
            s.insert_token(&StoredToken {
                key_hash: format!("k{i}"),
                token: plugin_api::FlowToken {
                    identifier: format!("t{i}"),
                    user_id: String::new(),
                    flow_slug: "f".into(),
                    stage_name: "s".into(),
                    expires_ms: if i < 3 { 10 } else { 10_000 },
                    intent: "verification".into(),
                },
                revoke_on_execution: false,
                plan: serde_json::json!({}),
            })
            .unwrap();
        }
        s.session_save("old", "{}", 0).unwrap();
        s.session_save("new", "{}", 9_000).unwrap();
        let decoy = QueuedMail {
            message_id: "<d@x>".into(),
            envelope_from: "a@b.c".into(),
            envelope_to: vec![],
            to_display: vec![],
            subject: String::new(),
            raw: vec![],
            route: RouteRef::Global,
            decoy: true,
            locale: String::new(),
        };
        s.outbox_push(&decoy, 0, 0).unwrap();
        let h = Housekeeping {
            session_idle_ms: 5_000,
            decoy_age_ms: 5_000,
            batch: 2,
            ..Default::default()
        };
        assert_eq!(
            sweep_once(&s, &crate::cache::MemoryCache::new(), 10_000, &h),
            Swept {
                tokens: 3,
                sessions: 1,
                decoys: 1,
                cache: 0
            }
        );
        assert_eq!(s.token_count().unwrap(), 2);
        assert!(s.session_load("new").unwrap().is_some());
    }
}
