//! SQLite: one file, versioned migrations, single statements where an operation
//! must be atomic.

use std::path::Path;
use std::sync::Mutex;

use plugin_api::{FlowToken, User};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::admin::{sql, EntryState, OutboxAdmin, OutboxEntry, Requeue};
use super::group_commit::GroupCommit;
use super::schema::{migrations, Dialect};
use super::Finish;
use super::{
    corrupt_outbox, email_clash, initial_state, oldest_first, username_clash, Claim, Event,
    NewUser, OutboxCounts, OutboxOutcome, OutboxRow, OutboxStore, QueuedMail, SessionStore, Store,
    StoreError, StoredToken,
};

/// SQLite, the embedded default: one file, migrated at open.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Outbox writes of concurrent requests, committed together.
    outbox_writes: GroupCommit<OutboxWrite>,
}

/// One request's outbox write: a mail, and the token its link carries if any.
struct OutboxWrite {
    token: Option<StoredToken>,
    mail: QueuedMail,
    now_ms: i64,
    due_ms: i64,
}

impl OutboxWrite {
    fn apply(&self, c: &Connection) -> Result<bool, StoreError> {
        if let Some(t) = &self.token {
            insert_token(c, t)?;
        }
        outbox_push(c, &self.mail, self.now_ms, self.due_ms)
    }
}

fn row_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: Some(r.get::<_, i64>(0)?.to_string()),
        username: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        is_active: r.get(4)?,
        locale: r.get(5)?,
        attributes: Default::default(),
    })
}

const USER_COLS: &str = "id, username, name, email, is_active, locale";

fn row_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<(StoredToken, String)> {
    Ok((
        StoredToken {
            key_hash: r.get(0)?,
            token: FlowToken {
                identifier: r.get(1)?,
                user_id: r.get(2)?,
                flow_slug: r.get(3)?,
                stage_name: r.get(4)?,
                expires_ms: r.get(5)?,
                intent: r.get(6)?,
            },
            revoke_on_execution: r.get(7)?,
            plan: Value::Null,
        },
        r.get(8)?,
    ))
}

const TOKEN_COLS: &str =
    "key_hash, identifier, user_id, flow_slug, stage_name, expires_ms, intent, revoke_on_execution, plan";

/// Another user whose email is this username.
const CLASH_USERNAME: &str =
    "SELECT 1 FROM users WHERE email != '' AND lower(email) = lower(?1) AND id != ?2 LIMIT 1";
/// Another user whose username is this email.
const CLASH_EMAIL: &str =
    "SELECT 1 FROM users WHERE lower(username) = lower(?1) AND id != ?2 LIMIT 1";

fn clashes(c: &Connection, sql: &str, value: &str, own_id: i64) -> Result<bool, StoreError> {
    Ok(c.prepare_cached(sql)?
        .query_row(params![value, own_id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn conflict(e: rusqlite::Error, what: String) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what)
        }
        e => e.into(),
    }
}

/// SQLite's errors by kind: a damaged file or a value of the wrong type is
/// corrupt data, anything else a backend failure (busy, I/O, …).
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, DatabaseCorrupt | NotADatabase) =>
            {
                StoreError::Corrupt(e.to_string())
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::backend(e),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }
    /// A private in-memory SQLite database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }
    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in migrations(Dialect::Sqlite)
            .iter()
            .enumerate()
            .skip(done.max(0) as usize)
        {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            outbox_writes: GroupCommit::default(),
        })
    }
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool, StoreError> {
        Ok(self.conn().prepare_cached(sql)?.execute(p)? > 0)
    }

    /// Writes a batch of outbox writes in one transaction, each in its own savepoint
    /// so that one refused write (a taken token) leaves the others in. When the
    /// transaction cannot start or commit, every write fails with its error.
    fn commit_outbox(&self, writes: Vec<OutboxWrite>) -> Vec<Result<bool, StoreError>> {
        let mut c = self.conn();
        let mut results = Vec::with_capacity(writes.len());
        let committed = (|| {
            let mut tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if let [only] = writes.as_slice() {
                let r = only.apply(&tx);
                let failed = r.is_err();
                results.push(r);
                if failed {
                    return Ok(()); // dropping `tx` rolls the token back
                }
            } else {
                for w in &writes {
                    let sp = tx.savepoint()?;
                    let r = w.apply(&sp);
                    if r.is_ok() {
                        sp.commit()?;
                    }
                    results.push(r);
                }
            }
            tx.commit()
        })();
        match committed {
            Ok(()) => results,
            Err(e) => {
                let e = StoreError::from(e);
                writes.iter().map(|_| Err(e.same_kind())).collect()
            }
        }
    }
}

/// A JSON value as stored text, written straight into a buffer (faster than
/// `Value`'s `Display`).
fn json_text(v: &Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("JSON value: {e}")))
}

fn parse_plan(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("token plan: {e}")))
}

impl Store for SqliteStore {
    fn create_user(&self, n: &NewUser) -> Result<User, StoreError> {
        let mut c = self.conn();
        // Immediate: the checks and the insert hold the write lock together, also
        // against another process on the same file.
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if clashes(&tx, CLASH_USERNAME, &n.username, -1)? {
            return Err(username_clash(&n.username));
        }
        if !n.email.is_empty() && clashes(&tx, CLASH_EMAIL, &n.email, -1)? {
            return Err(email_clash(&n.email));
        }
        tx.prepare_cached(
            "INSERT INTO users (username, name, email, is_active, password_hash, locale) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![n.username, n.name, n.email, n.is_active, n.password_hash, n.locale])
        .map_err(|e| conflict(e, format!("user '{}'", n.username)))?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(User {
            id: Some(id.to_string()),
            username: n.username.clone(),
            name: n.name.clone(),
            email: n.email.clone(),
            is_active: n.is_active,
            locale: n.locale.clone(),
            attributes: Default::default(),
        })
    }
    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
            .query_row([id], row_user)
            .optional()?)
    }
    fn find_user(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users WHERE username = ?1 OR (email != '' AND lower(email) = lower(?1))
                 ORDER BY (CASE WHEN instr(?1, '@') > 0 THEN lower(email) = lower(?1) ELSE username = ?1 END) DESC, id LIMIT 1"
            ))?
            .query_row([identifier], row_user)
            .optional()?)
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        let c = self.conn();
        let mut s = c.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY id"))?;
        let rows = s.query_map([], row_user)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError> {
        self.update(
            "UPDATE users SET is_active = ?2 WHERE id = ?1",
            params![id, active],
        )
    }
    fn set_email(&self, id: &str, email: &str) -> Result<bool, StoreError> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(false);
        };
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !email.is_empty() && clashes(&tx, CLASH_EMAIL, email, id)? {
            return Err(email_clash(email));
        }
        let n = tx
            .prepare_cached("UPDATE users SET email = ?2 WHERE id = ?1")?
            .execute(params![id, email])?;
        tx.commit()?;
        Ok(n > 0)
    }
    fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        self.update(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![id, hash],
        )
    }
    fn password_hash(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
            .query_row([id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }
    fn insert_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        insert_token(&self.conn(), t)
    }
    fn token(&self, key_hash: &str, now_ms: i64) -> Result<Option<StoredToken>, StoreError> {
        let c = self.conn();
        c.prepare_cached("DELETE FROM flow_tokens WHERE key_hash = ?1 AND expires_ms < ?2")?
            .execute(params![key_hash, now_ms])?;
        let row = c
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM flow_tokens WHERE key_hash = ?1"
            ))?
            .query_row([key_hash], row_token)
            .optional()?;
        match row {
            None => Ok(None),
            Some((mut t, plan)) => {
                t.plan = parse_plan(&plan)?;
                Ok(Some(t))
            }
        }
    }
    fn consume_token(&self, key_hash: &str, now_ms: i64) -> Result<Option<FlowToken>, StoreError> {
        // One statement: of two concurrent consumers only one sees the row.
        let c = self.conn();
        let row = c
            .prepare_cached(&format!(
                "DELETE FROM flow_tokens WHERE key_hash = ?1 RETURNING {TOKEN_COLS}"
            ))?
            .query_row([key_hash], row_token)
            .optional()?;
        Ok(row
            .map(|(t, _)| t)
            .filter(|t| t.token.expires_ms >= now_ms)
            .map(|t| t.token))
    }
    fn delete_token(&self, key_hash: &str) -> Result<bool, StoreError> {
        self.update("DELETE FROM flow_tokens WHERE key_hash = ?1", [key_hash])
    }
    fn revoke_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM flow_tokens WHERE user_id = ?1 AND stage_name = ?2")?
            .execute([user_id, stage_name])? as u64)
    }
    fn token_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM flow_tokens", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }
    fn token_sweep(&self, now_ms: i64, limit: usize) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM flow_tokens WHERE key_hash IN
                 (SELECT key_hash FROM flow_tokens WHERE expires_ms < ?1 LIMIT ?2)",
            )?
            .execute(params![now_ms, limit as i64])? as u64)
    }
    fn add_event(&self, e: &Event) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("INSERT INTO events (action, context, at_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![e.action, json_text(&e.context)?, e.at_ms])?;
        Ok(())
    }
    fn events(&self, action: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let c = self.conn();
        let mut s = c.prepare_cached(
            "SELECT action, context, at_ms FROM events WHERE ?1 IS NULL OR action = ?1 ORDER BY id",
        )?;
        let rows = s.query_map([action], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (action, ctx, at_ms) = row?;
            out.push(Event {
                action,
                context: serde_json::from_str(&ctx)
                    .map_err(|e| StoreError::Corrupt(format!("event context: {e}")))?,
                at_ms,
            });
        }
        Ok(out)
    }
}

fn insert_token(c: &Connection, t: &StoredToken) -> Result<(), StoreError> {
    let plan = json_text(&t.plan)?;
    c.prepare_cached(&format!(
        "INSERT INTO flow_tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        t.key_hash,
        t.token.identifier,
        t.token.user_id,
        t.token.flow_slug,
        t.token.stage_name,
        t.token.expires_ms,
        t.token.intent,
        t.revoke_on_execution,
        plan
    ])
    .map_err(|e| conflict(e, format!("token '{}'", t.token.identifier)))?;
    Ok(())
}

fn outbox_push(
    c: &Connection,
    mail: &QueuedMail,
    now_ms: i64,
    due_ms: i64,
) -> Result<bool, StoreError> {
    let meta = serde_json::to_string(mail).map_err(corrupt_outbox)?;
    let n = c
        .prepare_cached(
            "INSERT INTO outbox (message_id, meta, raw, state, next_at_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (message_id) DO NOTHING",
        )?
        .execute(params![
            mail.message_id,
            meta,
            mail.raw,
            initial_state(mail),
            due_ms,
            now_ms
        ])?;
    Ok(n == 1)
}

impl OutboxStore for SqliteStore {
    fn outbox_push(&self, mail: &QueuedMail, now_ms: i64, due_ms: i64) -> Result<bool, StoreError> {
        let write = OutboxWrite {
            token: None,
            mail: mail.clone(),
            now_ms,
            due_ms,
        };
        (self.outbox_writes).submit(write, |batch| self.commit_outbox(batch))
    }

    fn outbox_push_with_token(
        &self,
        token: &StoredToken,
        mail: &QueuedMail,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        let write = OutboxWrite {
            token: Some(token.clone()),
            mail: mail.clone(),
            now_ms,
            due_ms,
        };
        (self.outbox_writes).submit(write, |batch| self.commit_outbox(batch))
    }

    fn outbox_sweep_decoys(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM outbox WHERE id IN
                 (SELECT id FROM outbox WHERE state = 'decoy' AND created_ms < ?1 LIMIT ?2)",
            )?
            .execute(params![before_ms, limit as i64])? as u64)
    }

    fn outbox_claim(&self, claim: Claim) -> Result<Vec<OutboxRow>, StoreError> {
        let (now_ms, lease_ms, limit) = (claim.now_ms, claim.lease_ms, claim.limit);
        // One statement: concurrent claimers (threads or processes) never get the same row.
        let c = self.conn();
        let mut stmt = c.prepare_cached(
            "UPDATE outbox SET state = 'sending', lease_until_ms = ?2, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE (state = 'pending' AND next_at_ms <= ?1)
                    OR (state = 'sending' AND lease_until_ms <= ?1)
                 ORDER BY next_at_ms, id LIMIT ?3)
             RETURNING id, meta, raw, attempts, created_ms",
        )?;
        let rows = stmt.query_map(
            params![now_ms, now_ms.saturating_add(lease_ms), limit as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, meta, raw, attempts, created_ms) = row?;
            let mut mail: QueuedMail = serde_json::from_str(&meta).map_err(corrupt_outbox)?;
            mail.raw = raw;
            out.push(OutboxRow {
                id,
                mail,
                attempts: attempts as u32,
                created_ms,
            });
        }
        Ok(oldest_first(out))
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare_cached("SELECT state, count(*) FROM outbox GROUP BY state")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        let mut out = OutboxCounts::default();
        for row in rows {
            let (state, n) = row?;
            out.add(&state, n);
        }
        Ok(out)
    }

    fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT min(next_at_ms) FROM outbox WHERE state = 'pending'")?
            .query_row([], |r| r.get::<_, Option<i64>>(0))?)
    }

    fn outbox_finish(&self, done: Finish<'_>) -> Result<(), StoreError> {
        let Finish { id, outcome, event } = done;
        let mut c = self.conn();
        let tx = c.transaction()?;
        match outcome {
            // The body is no longer needed; the row stays for the idempotency check.
            OutboxOutcome::Sent => tx
                .prepare_cached("UPDATE outbox SET state = 'sent', raw = x'', last_error = NULL, meta = json_remove(meta, '$.route.password') WHERE id = ?1")?
                .execute(params![id])?,
            OutboxOutcome::Retry { at_ms, error } => tx
                .prepare_cached("UPDATE outbox SET state = 'pending', next_at_ms = ?2, last_error = ?3 WHERE id = ?1")?
                .execute(params![id, at_ms, error])?,
            OutboxOutcome::Dead { error } => tx
                .prepare_cached("UPDATE outbox SET state = 'dead', last_error = ?2, meta = json_remove(meta, '$.route.password') WHERE id = ?1")?
                .execute(params![id, error])?,
        };
        if let Some(e) = event {
            tx.prepare_cached("INSERT INTO events (action, context, at_ms) VALUES (?1, ?2, ?3)")?
                .execute(params![e.action, json_text(&e.context)?, e.at_ms])?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl SessionStore for SqliteStore {
    fn session_load(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT data FROM sessions WHERE key = ?1")?
            .query_row([key], |r| r.get::<_, String>(0))
            .optional()?)
    }
    fn session_save(&self, key: &str, data: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO sessions (key, data, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms",
            )?
            .execute(params![key, data, now_ms])?;
        Ok(())
    }
    fn session_delete(&self, key: &str) -> Result<(), StoreError> {
        self.update("DELETE FROM sessions WHERE key = ?1", [key])?;
        Ok(())
    }
    fn session_sweep(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "DELETE FROM sessions WHERE key IN
                 (SELECT key FROM sessions WHERE updated_ms < ?1 LIMIT ?2)",
            )?
            .execute(params![before_ms, limit as i64])? as u64)
    }
}

/// An entry from a row of [`sql::entries`]'s columns; the inner error is metadata
/// that does not decode.
fn sqlite_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxEntry, StoreError>> {
    let meta: String = r.get(6)?;
    let mail = match serde_json::from_str(&meta) {
        Ok(mail) => mail,
        Err(e) => return Ok(Err(corrupt_outbox(e))),
    };
    Ok(Ok(OutboxEntry {
        id: r.get(0)?,
        row_state: r.get(1)?,
        attempts: r.get::<_, i64>(2)? as u32,
        created_ms: r.get(3)?,
        next_at_ms: r.get(4)?,
        last_error: r.get(5)?,
        mail,
        size: r.get::<_, i64>(7)? as u64,
    }))
}

impl OutboxAdmin for SqliteStore {
    fn outbox_entries(
        &self,
        state: Option<EntryState>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare_cached(&sql::sqlite(&sql::entries(state)))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], sqlite_entry)?;
        rows.map(|r| r?).collect()
    }

    fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare_cached(&sql::sqlite(&sql::entry()))?;
        stmt.query_row([id], sqlite_entry).optional()?.transpose()
    }

    fn outbox_requeue(&self, which: Requeue, now_ms: i64) -> Result<u64, StoreError> {
        let c = self.conn();
        let n = match which {
            Requeue::One(id) => c
                .prepare_cached(&sql::sqlite(&sql::requeue_one()))?
                .execute(params![now_ms, id])?,
            Requeue::AllDead => c
                .prepare_cached(&sql::sqlite(&sql::requeue_dead()))?
                .execute(params![now_ms])?,
        };
        Ok(n as u64)
    }

    fn outbox_purge_dead(&self, before_ms: i64) -> Result<u64, StoreError> {
        let c = self.conn();
        let n = c
            .prepare_cached(&sql::sqlite(sql::PURGE_DEAD))?
            .execute(params![before_ms])?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RouteRef;
    use std::sync::Arc;

    fn write(key: &str, mail: &str) -> (StoredToken, QueuedMail) {
        let token = StoredToken {
            key_hash: key.into(),
            token: FlowToken {
                identifier: key.into(),
                user_id: "1".into(),
                flow_slug: "f".into(),
                stage_name: "s".into(),
                expires_ms: i64::MAX,
                intent: "verification".into(),
            },
            revoke_on_execution: false,
            plan: Value::Null,
        };
        let mail = QueuedMail {
            message_id: mail.into(),
            envelope_from: "a@example.com".into(),
            envelope_to: vec!["b@example.com".into()],
            to_display: vec![],
            subject: "s".into(),
            raw: vec![b'x'; 2000],
            route: RouteRef::Global,
            decoy: false,
            locale: String::new(),
        };
        (token, mail)
    }

    /// Concurrent sends share transactions, yet each is all or nothing: a send whose
    /// token is taken, or whose mail the outbox refuses after its token was written,
    /// leaves nothing, and every other send in the same transaction is stored whole.
    #[test]
    fn grouped_sends_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("g.db")).unwrap());
        s.conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.message_id LIKE '<bad%'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| {
                            // Every fifth key is shared by all threads: one of them wins.
                            let key = match i % 5 {
                                0 => format!("k{i}"),
                                _ => format!("k{t}-{i}"),
                            };
                            let bad = if i % 5 == 1 { "bad" } else { "" };
                            let (tok, mail) = write(&key, &format!("<{bad}{t}-{i}@x>"));
                            match s.outbox_push_with_token(&tok, &mail, 0, 0) {
                                Ok(added) => added,
                                Err(e) if bad.is_empty() => {
                                    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
                                    false
                                }
                                Err(_) => false,
                            }
                        })
                        .count()
                })
            })
            .collect();
        let stored: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(
            stored,
            8 * 60 + 20,
            "one winner per shared key, no refused mail"
        );
        assert_eq!(
            s.token_count().unwrap(),
            stored as u64,
            "tokens without mail"
        );
        assert_eq!(s.outbox_counts().unwrap().pending, stored as u64);
    }
}
