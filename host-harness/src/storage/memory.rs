//! Everything in process memory: for tests and benchmarks. Not durable.

use std::collections::HashMap;
use std::sync::Mutex;

use plugin_api::{FlowToken, User};

use super::Finish;
use super::{
    email_clash, username_clash, Claim, Event, NewUser, OutboxCounts, OutboxOutcome, OutboxRow,
    OutboxStore, QueuedMail, SessionStore, Store, StoreError, StoredToken,
};

#[derive(Default)]
struct Mem {
    next_id: u64,
    users: Vec<(User, Option<String>)>,
    tokens: HashMap<String, StoredToken>,
    events: Vec<Event>,
    outbox: MemOutbox,
    sessions: HashMap<String, (String, i64)>,
}

/// Everything in process memory; for tests and benchmarks.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Mem>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Mem {
    fn insert_token(&mut self, t: &StoredToken) -> Result<(), StoreError> {
        let taken = self
            .tokens
            .values()
            .any(|x| x.token.identifier == t.token.identifier);
        if taken || self.tokens.contains_key(&t.key_hash) {
            return Err(StoreError::Conflict(format!(
                "token '{}'",
                t.token.identifier
            )));
        }
        self.tokens.insert(t.key_hash.clone(), t.clone());
        Ok(())
    }

    fn outbox_push(&mut self, mail: &QueuedMail, now_ms: i64, due_ms: i64) -> bool {
        let q = &mut self.outbox;
        if q.rows
            .iter()
            .any(|r| r.row.mail.message_id == mail.message_id)
        {
            return false;
        }
        q.next_id += 1;
        let id = q.next_id;
        q.rows.push(Queued {
            row: OutboxRow {
                id,
                mail: mail.clone(),
                attempts: 0,
                created_ms: now_ms,
            },
            state: if mail.decoy {
                State::Decoy
            } else {
                State::Pending
            },
            next_at_ms: due_ms,
            lease_until_ms: 0,
        });
        true
    }
}

fn email_is(u: &User, value: &str) -> bool {
    !u.email.is_empty() && u.email.to_lowercase() == value.to_lowercase()
}

impl Store for MemoryStore {
    fn create_user(&self, n: &NewUser) -> Result<User, StoreError> {
        let mut m = self.lock();
        if m.users.iter().any(|(u, _)| email_is(u, &n.username)) {
            return Err(username_clash(&n.username));
        }
        if !n.email.is_empty()
            && m.users
                .iter()
                .any(|(u, _)| u.username.to_lowercase() == n.email.to_lowercase())
        {
            return Err(email_clash(&n.email));
        }
        if m.users.iter().any(|(u, _)| u.username == n.username) {
            return Err(StoreError::Conflict(format!("user '{}'", n.username)));
        }
        m.next_id += 1;
        let user = User {
            id: Some(m.next_id.to_string()),
            username: n.username.clone(),
            name: n.name.clone(),
            email: n.email.clone(),
            is_active: n.is_active,
            locale: n.locale.clone(),
            attributes: Default::default(),
        };
        m.users.push((user.clone(), n.password_hash.clone()));
        Ok(user)
    }
    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .lock()
            .users
            .iter()
            .find(|(u, _)| u.id.as_deref() == Some(id))
            .map(|(u, _)| u.clone()))
    }
    fn find_user(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        let m = self.lock();
        let by_email = || m.users.iter().find(|(u, _)| email_is(u, identifier));
        let by_name = || m.users.iter().find(|(u, _)| u.username == identifier);
        let found = if identifier.contains('@') {
            by_email().or_else(by_name)
        } else {
            by_name().or_else(by_email)
        };
        Ok(found.map(|(u, _)| u.clone()))
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.lock().users.iter().map(|(u, _)| u.clone()).collect())
    }
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError> {
        Ok(self.with_user(id, |u, _| u.is_active = active))
    }
    fn set_email(&self, id: &str, email: &str) -> Result<bool, StoreError> {
        let mut m = self.lock();
        let clash = !email.is_empty()
            && m.users.iter().any(|(u, _)| {
                u.id.as_deref() != Some(id) && u.username.to_lowercase() == email.to_lowercase()
            });
        if clash {
            return Err(email_clash(email));
        }
        match m
            .users
            .iter_mut()
            .find(|(u, _)| u.id.as_deref() == Some(id))
        {
            Some((u, _)) => {
                u.email = email.to_string();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        Ok(self.with_user(id, |_, h| *h = Some(hash.to_string())))
    }
    fn password_hash(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .users
            .iter()
            .find(|(u, _)| u.id.as_deref() == Some(id))
            .and_then(|(_, h)| h.clone()))
    }
    fn insert_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        self.lock().insert_token(t)
    }
    fn token(&self, key_hash: &str, now_ms: i64) -> Result<Option<StoredToken>, StoreError> {
        let mut m = self.lock();
        match m.tokens.get(key_hash) {
            Some(t) if t.token.expires_ms < now_ms => {
                m.tokens.remove(key_hash);
                Ok(None)
            }
            other => Ok(other.cloned()),
        }
    }
    fn consume_token(&self, key_hash: &str, now_ms: i64) -> Result<Option<FlowToken>, StoreError> {
        let mut m = self.lock();
        Ok(m.tokens
            .remove(key_hash)
            .filter(|t| t.token.expires_ms >= now_ms)
            .map(|t| t.token))
    }
    fn delete_token(&self, key_hash: &str) -> Result<bool, StoreError> {
        Ok(self.lock().tokens.remove(key_hash).is_some())
    }
    fn revoke_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let before = m.tokens.len();
        m.tokens
            .retain(|_, t| !(t.token.user_id == user_id && t.token.stage_name == stage_name));
        Ok((before - m.tokens.len()) as u64)
    }
    fn token_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().tokens.len() as u64)
    }
    fn token_sweep(&self, now_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let old: Vec<String> = m
            .tokens
            .iter()
            .filter(|(_, t)| t.token.expires_ms < now_ms)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for k in &old {
            m.tokens.remove(k);
        }
        Ok(old.len() as u64)
    }
    fn add_event(&self, e: &Event) -> Result<(), StoreError> {
        self.lock().events.push(e.clone());
        Ok(())
    }
    fn events(&self, action: Option<&str>) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|e| action.is_none_or(|a| e.action == a))
            .cloned()
            .collect())
    }
}

impl MemoryStore {
    fn with_user(&self, id: &str, f: impl FnOnce(&mut User, &mut Option<String>)) -> bool {
        let mut m = self.lock();
        match m
            .users
            .iter_mut()
            .find(|(u, _)| u.id.as_deref() == Some(id))
        {
            Some((u, h)) => {
                f(u, h);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Sending,
    Sent,
    Dead,
    Decoy,
}

struct Queued {
    row: OutboxRow,
    state: State,
    next_at_ms: i64,
    lease_until_ms: i64,
}

/// The outbox in memory (lost when the process ends).
#[derive(Default)]
struct MemOutbox {
    next_id: i64,
    rows: Vec<Queued>,
}

impl OutboxStore for MemoryStore {
    fn outbox_push(&self, mail: &QueuedMail, now_ms: i64, due_ms: i64) -> Result<bool, StoreError> {
        Ok(self.lock().outbox_push(mail, now_ms, due_ms))
    }

    fn outbox_push_with_token(
        &self,
        token: &StoredToken,
        mail: &QueuedMail,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        // One lock for both: no other caller sees the token without its mail.
        let mut m = self.lock();
        m.insert_token(token)?;
        Ok(m.outbox_push(mail, now_ms, due_ms))
    }

    fn outbox_claim(&self, claim: Claim) -> Result<Vec<OutboxRow>, StoreError> {
        let (now_ms, lease_ms, limit) = (claim.now_ms, claim.lease_ms, claim.limit);
        let mut m = self.lock();
        let mut out = Vec::new();
        for r in m.outbox.rows.iter_mut() {
            if out.len() >= limit {
                break;
            }
            let due = (r.state == State::Pending && r.next_at_ms <= now_ms)
                || (r.state == State::Sending && r.lease_until_ms <= now_ms);
            if due {
                r.state = State::Sending;
                r.lease_until_ms = now_ms.saturating_add(lease_ms);
                r.row.attempts += 1;
                out.push(r.row.clone());
            }
        }
        Ok(out)
    }

    fn outbox_finish(&self, done: Finish<'_>) -> Result<(), StoreError> {
        let Finish { id, outcome, event } = done;
        let mut m = self.lock();
        if let Some(e) = event {
            m.events.push(e.clone());
        }
        if let Some(r) = m.outbox.rows.iter_mut().find(|r| r.row.id == id) {
            match outcome {
                OutboxOutcome::Sent => {
                    r.state = State::Sent;
                    // Keep only what the idempotency check needs.
                    r.row.mail.raw = Vec::new();
                }
                OutboxOutcome::Retry { at_ms, .. } => {
                    r.state = State::Pending;
                    r.next_at_ms = *at_ms;
                }
                OutboxOutcome::Dead { .. } => r.state = State::Dead,
            }
        }
        Ok(())
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let m = self.lock();
        let mut c = OutboxCounts::default();
        for r in &m.outbox.rows {
            match r.state {
                State::Pending => c.pending += 1,
                State::Sending => c.sending += 1,
                State::Sent => c.sent += 1,
                State::Dead => c.dead += 1,
                State::Decoy => {}
            }
        }
        Ok(c)
    }

    fn outbox_sweep_decoys(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let mut left = limit;
        m.outbox.rows.retain(|r| {
            let drop = left > 0 && r.state == State::Decoy && r.row.created_ms < before_ms;
            if drop {
                left -= 1;
            }
            !drop
        });
        Ok((limit - left) as u64)
    }

    fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .lock()
            .outbox
            .rows
            .iter()
            .filter(|r| r.state == State::Pending)
            .map(|r| r.next_at_ms)
            .min())
    }
}

impl SessionStore for MemoryStore {
    fn session_load(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().sessions.get(key).map(|(d, _)| d.clone()))
    }
    fn session_save(&self, key: &str, data: &str, now_ms: i64) -> Result<(), StoreError> {
        self.lock()
            .sessions
            .insert(key.to_string(), (data.to_string(), now_ms));
        Ok(())
    }
    fn session_delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().sessions.remove(key);
        Ok(())
    }
    fn session_sweep(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let mut m = self.lock();
        let old: Vec<String> = m
            .sessions
            .iter()
            .filter(|(_, (_, at))| *at < before_ms)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for k in &old {
            m.sessions.remove(k);
        }
        Ok(old.len() as u64)
    }
}
