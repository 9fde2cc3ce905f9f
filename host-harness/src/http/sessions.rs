//! Browser sessions of `host-harness serve`.
//!
//! - A session is created only when a request leaves state worth keeping (a plan
//!   that moved past its start, a signed-in user, a pending message or confirmation);
//!   a visitor who only looks at a flow's first stage gets no session and no cookie.
//! - Sessions live in two least-recently-used tables, anonymous and signed-in; at the
//!   cap the least recently used anonymous session goes first, a signed-in one only
//!   when no anonymous one is left. Insertion and eviction are O(1).
//! - Idle and absolute expiry, checked on every lookup; stored rows past the idle
//!   limit are swept by the host's maintenance loop.
//! - The id and the CSRF token are replaced whenever the signed-in user changes
//!   (sign-in), so a session id planted before sign-in is worthless after it.
//! - With a shared store (several hosts), every request reads the stored session and
//!   writes it back when it changed; keys are SHA-256 digests of the cookie.

use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use plugin_api::token::{constant_time_eq, sha256_hex};
use serde::{Deserialize, Serialize};

use crate::flow::{Executor, Session};
use crate::storage::HostStore;
use crate::system::entropy::{self, Entropy, EntropyError};

/// Limits on the session table.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Most sessions kept in memory.
    pub max_sessions: usize,
    /// A session unused this long (ms) is gone.
    pub idle_ms: i64,
    /// A session older than this (ms) is gone, however busy.
    pub absolute_ms: i64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 100_000,
            idle_ms: 60 * 60_000,
            absolute_ms: 24 * 3_600_000,
        }
    }
}

/// How often, at most, a session's last-seen time is rewritten (ms): stored sessions
/// are written only when they change, so this bounds the writes a busy session costs.
const SEEN_GRANULARITY_MS: i64 = 60_000;

/// What a browser session holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WebSession {
    /// The executor's state.
    pub flow: Session,
    /// SHA-256 of the double-submit CSRF token (the token itself is only in the
    /// browser's cookie, never in storage).
    csrf_hash: String,
    /// When the session was created (Unix ms).
    #[serde(default)]
    pub created_ms: i64,
    /// When it was last used, to the minute (Unix ms).
    #[serde(default)]
    pub seen_ms: i64,
    /// Replaced by a rotated session or ended; a request still holding it starts
    /// afresh.
    #[serde(skip)]
    retired: bool,
}

impl WebSession {
    /// Whether `sent` (the `X-CSRFToken` header) is this session's token; constant
    /// time. A session without a token (a new one) accepts nothing.
    pub fn csrf_matches(&self, sent: &str) -> bool {
        !self.csrf_hash.is_empty() && constant_time_eq(&self.csrf_hash, &sha256_hex(sent))
    }

    fn expired(&self, now_ms: i64, limits: &SessionLimits) -> bool {
        now_ms - self.created_ms > limits.absolute_ms || now_ms - self.seen_ms > limits.idle_ms
    }
}

/// The session a request runs in.
pub struct Picked {
    /// Its cookie value; `None` for a new session not stored yet.
    id: Option<String>,
    session: Arc<Mutex<WebSession>>,
    /// The stored text, when it was just read from the shared store.
    stored: Option<String>,
}

impl Picked {
    fn fresh() -> Self {
        Self {
            id: None,
            session: Arc::default(),
            stored: None,
        }
    }

    /// Whether this is a stored session (not one made for this request).
    pub fn is_stored(&self) -> bool {
        self.id.is_some()
    }

    /// Locks the session; one request of a session runs at a time.
    pub fn lock(&self) -> MutexGuard<'_, WebSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// New cookie values to send.
pub struct Cookies {
    /// Session id.
    pub id: String,
    /// CSRF token.
    pub csrf: String,
}

struct Table {
    anon: LruCache<String, Arc<Mutex<WebSession>>>,
    signed: LruCache<String, Arc<Mutex<WebSession>>>,
}

impl Table {
    /// The session under `id`, marked most recently used.
    fn get(&mut self, id: &str) -> Option<Arc<Mutex<WebSession>>> {
        if let Some(s) = self.anon.get(id) {
            return Some(s.clone());
        }
        self.signed.get(id).cloned()
    }
}

/// The sessions of one server.
pub struct Sessions {
    table: Mutex<Table>,
    shared: Option<Arc<dyn HostStore>>,
    limits: SessionLimits,
}

fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Sessions {
    /// An empty table; with `shared`, sessions are also kept in that store.
    pub fn new(shared: Option<Arc<dyn HostStore>>, limits: SessionLimits) -> Self {
        Self {
            table: Mutex::new(Table {
                anon: LruCache::unbounded(),
                signed: LruCache::unbounded(),
            }),
            shared,
            limits,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions held in memory.
    pub fn len(&self) -> usize {
        let t = self.table();
        t.anon.len() + t.signed.len()
    }

    /// Whether no session is held in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live session named by `cookie`, or a new one.
    pub fn open(&self, cookie: Option<&str>, now_ms: i64) -> Picked {
        let Some(id) = cookie.filter(|c| valid_id(c)) else {
            return Picked::fresh();
        };
        let found = self.table().get(id);
        if let Some(session) = found {
            return Picked {
                id: Some(id.to_string()),
                session,
                stored: None,
            };
        }
        // A session another host started (shared store), read outside the lock.
        let Some((ws, raw)) = self.load(id) else {
            return Picked::fresh();
        };
        if ws.expired(now_ms, &self.limits) {
            self.forget(id);
            return Picked::fresh();
        }
        let signed = ws.flow.user_id.is_some();
        let session = self.insert(id, Arc::new(Mutex::new(ws)), signed);
        Picked {
            id: Some(id.to_string()),
            session,
            stored: Some(raw),
        }
    }

    /// Checks the locked session before a request uses it: a retired or expired
    /// session is replaced by a new one; with a shared store, the newest stored state
    /// is read. Returns the session to use (`picked` may change).
    pub fn prepare(&self, picked: Picked, now_ms: i64) -> Picked {
        let mut picked = picked;
        loop {
            let (retired, expired) = {
                let s = picked.lock();
                (
                    s.retired,
                    picked.id.is_some() && s.expired(now_ms, &self.limits),
                )
            };
            if expired {
                if let Some(id) = picked.id.take() {
                    self.forget(&id);
                }
            }
            if retired || expired {
                picked = Picked::fresh();
                continue;
            }
            break;
        }
        if let (Some(id), None) = (picked.id.clone(), &picked.stored) {
            // Another host may have moved this session on since we last saw it.
            if let Some((newer, raw)) = self.load(&id) {
                *picked.lock() = newer;
                picked.stored = Some(raw);
            }
        }
        picked
    }

    /// Records a request's outcome: stores a new session that has state, rotates the
    /// id and CSRF token when the signed-in user changed from `user_before`, and
    /// writes a shared session back when it changed. New cookies to send, if any.
    pub fn commit(
        &self,
        picked: &Picked,
        s: &mut WebSession,
        user_before: Option<&str>,
        ex: &Executor,
        entropy: &dyn Entropy,
    ) -> Result<Option<Cookies>, EntropyError> {
        let now = ex.clock.now_ms();
        let rotate = s.flow.user_id.as_deref() != user_before;
        match &picked.id {
            None if !ex.session_has_state(&s.flow) => Ok(None),
            Some(id) if !rotate => {
                if now - s.seen_ms >= SEEN_GRANULARITY_MS {
                    s.seen_ms = now;
                }
                self.save(id, s, picked.stored.as_deref());
                Ok(None)
            }
            old => {
                let cookies = Cookies {
                    id: entropy::hex(entropy, 32)?,
                    csrf: entropy::hex(entropy, 16)?,
                };
                let moved = WebSession {
                    flow: std::mem::take(&mut s.flow),
                    csrf_hash: sha256_hex(&cookies.csrf),
                    created_ms: now,
                    seen_ms: now,
                    retired: false,
                };
                if let Some(old) = old {
                    s.retired = true;
                    self.forget(old);
                }
                self.save(&cookies.id, &moved, None);
                let signed = moved.flow.user_id.is_some();
                self.insert(&cookies.id, Arc::new(Mutex::new(moved)), signed);
                Ok(Some(cookies))
            }
        }
    }

    /// Ends the session named by `cookie` (logout): gone from memory and storage.
    pub fn end(&self, picked: &Picked, s: &mut WebSession) {
        s.retired = true;
        if let Some(id) = &picked.id {
            self.forget(id);
        }
    }

    fn insert(
        &self,
        id: &str,
        session: Arc<Mutex<WebSession>>,
        signed: bool,
    ) -> Arc<Mutex<WebSession>> {
        let mut t = self.table();
        if let Some(kept) = t.get(id) {
            // A concurrent request loaded it first: keep one copy.
            return kept;
        }
        while t.anon.len() + t.signed.len() >= self.limits.max_sessions.max(1) {
            if t.anon.pop_lru().is_none() && t.signed.pop_lru().is_none() {
                break;
            }
        }
        let tier = if signed { &mut t.signed } else { &mut t.anon };
        tier.put(id.to_string(), session.clone());
        session
    }

    fn forget(&self, id: &str) {
        {
            let mut t = self.table();
            t.anon.pop(id);
            t.signed.pop(id);
        }
        if let Some(store) = &self.shared {
            if let Err(e) = store.session_delete(&sha256_hex(id)) {
                tracing::error!(target: "http", error = %e, "cannot delete session");
            }
        }
    }

    /// The stored session and its stored text.
    fn load(&self, id: &str) -> Option<(WebSession, String)> {
        let store = self.shared.as_ref()?;
        match store.session_load(&sha256_hex(id)) {
            Ok(Some(data)) => serde_json::from_str(&data).ok().map(|s| (s, data)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(target: "http", error = %e, "cannot load session");
                None
            }
        }
    }

    /// Writes the session unless it is unchanged from `before` (the stored text).
    fn save(&self, id: &str, s: &WebSession, before: Option<&str>) {
        let Some(store) = &self.shared else {
            return;
        };
        let saved = serde_json::to_string(s)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                if before == Some(data.as_str()) {
                    return Ok(());
                }
                store
                    .session_save(&sha256_hex(id), &data, s.seen_ms)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::error!(target: "http", error = %e, "cannot save session");
        }
    }
}
