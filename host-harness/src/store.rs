//! Storage of users, flow tokens and events: a trait and two backends (memory, SQLite).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use plugin_api::{FlowToken, User};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// A uniqueness rule was violated.
    #[error("{0} already exists")]
    Conflict(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Login name (unique).
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email (may be empty).
    pub email: String,
    /// Whether the account may sign in.
    pub is_active: bool,
    /// Password hash (PHC string), if any.
    pub password_hash: Option<String>,
}

/// A stored flow token with what only the host sees.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    /// SHA-256 of the key.
    pub key_hash: String,
    /// The public part.
    pub token: FlowToken,
    /// Delete as soon as the executor restores it.
    pub revoke_on_execution: bool,
    /// The plan snapshot (JSON).
    pub plan: Value,
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Action (`email_sent`, `configuration_error`, …).
    pub action: String,
    /// Context object.
    pub context: Value,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// What the host persists.
pub trait Store: Send + Sync {
    /// Creates a user and returns it with its id.
    fn create_user(&self, user: &NewUser) -> Result<User, StoreError>;
    /// A user by id.
    fn user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// A user by username, or by email (case-insensitive).
    fn find_user(&self, identifier: &str) -> Result<Option<User>, StoreError>;
    /// All users, by id.
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Sets `is_active`; `false` if the user does not exist.
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError>;
    /// Sets the email; `false` if the user does not exist.
    fn set_email(&self, id: &str, email: &str) -> Result<bool, StoreError>;
    /// Sets the password hash; `false` if the user does not exist.
    fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError>;
    /// The password hash of a user.
    fn password_hash(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Stores a flow token.
    fn insert_token(&self, token: &StoredToken) -> Result<(), StoreError>;
    /// A token by key hash that has not expired at `now_ms`; expired rows with that
    /// hash are deleted (authentik's lookup).
    fn token(&self, key_hash: &str, now_ms: i64) -> Result<Option<StoredToken>, StoreError>;
    /// Deletes and returns a non-expired token; `None` if it is gone. Atomic: of two
    /// concurrent callers, one gets it.
    fn consume_token(&self, key_hash: &str, now_ms: i64) -> Result<Option<FlowToken>, StoreError>;
    /// Deletes a token whatever its state; whether it existed.
    fn delete_token(&self, key_hash: &str) -> Result<bool, StoreError>;
    /// Deletes the tokens of a user issued by a stage; how many.
    fn revoke_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, StoreError>;
    /// Number of stored tokens (expired included).
    fn token_count(&self) -> Result<u64, StoreError>;
    /// Records an event.
    fn add_event(&self, event: &Event) -> Result<(), StoreError>;
    /// Events with this action (all when `None`), oldest first.
    fn events(&self, action: Option<&str>) -> Result<Vec<Event>, StoreError>;
}

#[derive(Default)]
struct Mem {
    next_id: u64,
    users: Vec<(User, Option<String>)>,
    tokens: HashMap<String, StoredToken>,
    events: Vec<Event>,
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

fn same_identity(u: &User, identifier: &str) -> bool {
    u.username == identifier || (!u.email.is_empty() && u.email.eq_ignore_ascii_case(identifier))
}

impl Store for MemoryStore {
    fn create_user(&self, n: &NewUser) -> Result<User, StoreError> {
        let mut m = self.lock();
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
            locale: String::new(),
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
        Ok(self
            .lock()
            .users
            .iter()
            .find(|(u, _)| same_identity(u, identifier))
            .map(|(u, _)| u.clone()))
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.lock().users.iter().map(|(u, _)| u.clone()).collect())
    }
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError> {
        Ok(self.with_user(id, |u, _| u.is_active = active))
    }
    fn set_email(&self, id: &str, email: &str) -> Result<bool, StoreError> {
        Ok(self.with_user(id, |u, _| u.email = email.to_string()))
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
        let mut m = self.lock();
        if m.tokens
            .values()
            .any(|x| x.token.identifier == t.token.identifier)
            || m.tokens.contains_key(&t.key_hash)
        {
            return Err(StoreError::Conflict(format!(
                "token '{}'",
                t.token.identifier
            )));
        }
        m.tokens.insert(t.key_hash.clone(), t.clone());
        Ok(())
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

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    is_active INTEGER NOT NULL,
    locale TEXT NOT NULL DEFAULT '',
    password_hash TEXT
);
CREATE INDEX users_email ON users (lower(email));
CREATE TABLE flow_tokens (
    key_hash TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    flow_slug TEXT NOT NULL,
    stage_name TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    intent TEXT NOT NULL,
    revoke_on_execution INTEGER NOT NULL,
    plan TEXT NOT NULL
);
CREATE INDEX flow_tokens_user_stage ON flow_tokens (user_id, stage_name);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    context TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"#];

/// SQLite, the embedded default: one file, migrated at open.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn row_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: Some(r.get::<_, i64>(0)?.to_string()),
        username: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        is_active: r.get(4)?,
        locale: r.get(5)?,
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

fn conflict(e: rusqlite::Error, what: String) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what)
        }
        e => StoreError::Db(e),
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
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool, StoreError> {
        Ok(self.conn().prepare_cached(sql)?.execute(p)? > 0)
    }
}

fn parse_plan(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("token plan: {e}")))
}

impl Store for SqliteStore {
    fn create_user(&self, n: &NewUser) -> Result<User, StoreError> {
        let c = self.conn();
        c.prepare_cached(
            "INSERT INTO users (username, name, email, is_active, password_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![n.username, n.name, n.email, n.is_active, n.password_hash])
        .map_err(|e| conflict(e, format!("user '{}'", n.username)))?;
        let id = c.last_insert_rowid();
        Ok(User {
            id: Some(id.to_string()),
            username: n.username.clone(),
            name: n.name.clone(),
            email: n.email.clone(),
            is_active: n.is_active,
            locale: String::new(),
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
                "SELECT {USER_COLS} FROM users WHERE username = ?1 OR (email != '' AND lower(email) = lower(?1)) ORDER BY username = ?1 DESC, id LIMIT 1"
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
        self.update(
            "UPDATE users SET email = ?2 WHERE id = ?1",
            params![id, email],
        )
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
        let plan = t.plan.to_string();
        self.conn()
            .prepare_cached(&format!(
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
    fn add_event(&self, e: &Event) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("INSERT INTO events (action, context, at_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![e.action, e.context.to_string(), e.at_ms])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(hash: &str, user: &str, stage: &str, expires_ms: i64) -> StoredToken {
        StoredToken {
            key_hash: hash.into(),
            token: FlowToken {
                identifier: format!("id-{hash}"),
                user_id: user.into(),
                flow_slug: "f".into(),
                stage_name: stage.into(),
                expires_ms,
                intent: "verification".into(),
            },
            revoke_on_execution: false,
            plan: serde_json::json!({"stages": []}),
        }
    }

    fn exercise(s: &dyn Store) {
        let u = s
            .create_user(&NewUser {
                username: "jane".into(),
                email: "Jane@Example.com".into(),
                ..Default::default()
            })
            .unwrap();
        let id = u.id.clone().unwrap();
        assert!(matches!(
            s.create_user(&NewUser {
                username: "jane".into(),
                ..Default::default()
            }),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.find_user("jane@example.com").unwrap(), Some(u.clone()));
        assert_eq!(s.find_user("jane").unwrap(), Some(u.clone()));
        assert_eq!(s.find_user("nobody").unwrap(), None);
        assert!(s.set_active(&id, true).unwrap());
        assert!(s.user(&id).unwrap().unwrap().is_active);
        assert!(!s.set_active("999", true).unwrap());
        assert!(s.set_password_hash(&id, "h").unwrap());
        assert_eq!(s.password_hash(&id).unwrap().as_deref(), Some("h"));

        s.insert_token(&token("a", &id, "st", 100)).unwrap();
        s.insert_token(&token("b", &id, "st", 100)).unwrap();
        s.insert_token(&token("c", &id, "other", 100)).unwrap();
        assert!(matches!(
            s.insert_token(&token("a", &id, "st", 1)),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.token("a", 50).unwrap().unwrap().plan["stages"],
            serde_json::json!([])
        );
        assert_eq!(
            s.consume_token("a", 50).unwrap().unwrap().identifier,
            "id-a"
        );
        assert_eq!(s.consume_token("a", 50).unwrap(), None);
        assert_eq!(s.token("b", 101).unwrap(), None, "expired");
        assert_eq!(s.token_count().unwrap(), 1, "expired row deleted on lookup");
        s.insert_token(&token("d", &id, "st", 100)).unwrap();
        assert_eq!(s.revoke_tokens(&id, "st").unwrap(), 1);
        assert_eq!(s.token_count().unwrap(), 1);

        s.add_event(&Event {
            action: "x".into(),
            context: serde_json::json!({"a": 1}),
            at_ms: 1,
        })
        .unwrap();
        s.add_event(&Event {
            action: "y".into(),
            context: serde_json::json!({}),
            at_ms: 2,
        })
        .unwrap();
        assert_eq!(s.events(Some("x")).unwrap().len(), 1);
        assert_eq!(s.events(None).unwrap().len(), 2);
    }

    fn consume_races(s: std::sync::Arc<dyn Store>) {
        s.insert_token(&token("race", "1", "st", 100)).unwrap();
        let winners: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.consume_token("race", 1).unwrap().is_some() as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1, "exactly one concurrent consumer gets the token");
    }

    #[test]
    fn concurrent_consume_has_one_winner() {
        consume_races(std::sync::Arc::new(MemoryStore::new()));
        let dir = tempfile::tempdir().unwrap();
        consume_races(std::sync::Arc::new(
            SqliteStore::open(&dir.path().join("r.db")).unwrap(),
        ));
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::new());
    }

    #[test]
    fn sqlite_store_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        exercise(&SqliteStore::open(&path).unwrap());
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(
            again.users().unwrap().len(),
            1,
            "data survives a reopen; migrations not rerun"
        );
    }
}
