//! PostgreSQL: several hosts share one truth. Versioned migrations run at start-up
//! under an advisory lock; a connection pool; single statements or transactions
//! wherever an operation must be atomic (token consume, outbox claim with
//! `FOR UPDATE SKIP LOCKED`).

use plugin_api::{FlowToken, User};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};
use r2d2::PooledConnection;

use crate::storage::pool::{self, Manager, Pool};
use serde_json::Value;

use super::admin::{sql, EntryState, OutboxAdmin, OutboxEntry, Requeue};
use super::schema::{migrations, Dialect};
use super::Finish;
use super::{
    corrupt_outbox, email_clash, initial_state, oldest_first, username_clash, Claim, Event,
    NewUser, OutboxCounts, OutboxOutcome, OutboxRow, OutboxStore, QueuedMail, SessionStore, Store,
    StoreError, StoredToken,
};

/// Stores everything in PostgreSQL.
pub struct PostgresStore {
    pool: Pool,
}

fn db(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(e)
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`), in `schema` (created if missing; `public`
    /// when `None`), and runs pending migrations. Several hosts may start at once.
    pub fn open(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let pool = pool::pool(url, schema, 16, std::time::Duration::from_secs(5))
            .map_err(StoreError::backend_text)?;
        let store = Self { pool };
        store.migrate(schema)?;
        Ok(store)
    }

    fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(db)
    }

    fn migrate(&self, schema: Option<&str>) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(7317001)")
            .map_err(db)?;
        if let Some(s) = schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET LOCAL search_path TO \"{s}\""
            ))
            .map_err(db)?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        )
        .map_err(db)?;
        let done: i64 = tx
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        for (i, sql) in migrations(Dialect::Postgres)
            .iter()
            .enumerate()
            .skip(done as usize)
        {
            tx.batch_execute(sql).map_err(db)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&((i + 1) as i32)],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }
}

/// Column `i` of `r`; a NULL or a type that does not fit is corrupt data, never a
/// panic.
fn col<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn row_user(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: Some(col::<i64>(r, 0)?.to_string()),
        username: col(r, 1)?,
        name: col(r, 2)?,
        email: col(r, 3)?,
        is_active: col(r, 4)?,
        locale: col(r, 5)?,
        attributes: Default::default(),
    })
}

const USER_COLS: &str = "id, username, name, email, is_active, locale";
const TOKEN_COLS: &str =
    "key_hash, identifier, user_id, flow_slug, stage_name, expires_ms, intent, revoke_on_execution, plan";

fn row_token(r: &Row) -> Result<StoredToken, StoreError> {
    Ok(StoredToken {
        key_hash: col(r, 0)?,
        token: FlowToken {
            identifier: col(r, 1)?,
            user_id: col(r, 2)?,
            flow_slug: col(r, 3)?,
            stage_name: col(r, 4)?,
            expires_ms: col(r, 5)?,
            intent: col(r, 6)?,
        },
        revoke_on_execution: col(r, 7)?,
        plan: col::<Value>(r, 8)?,
    })
}

/// Another user whose email is this username.
const CLASH_USERNAME: &str =
    "SELECT 1 FROM users WHERE email <> '' AND lower(email) = lower($1) AND id <> $2 LIMIT 1";
/// Another user whose username is this email.
const CLASH_EMAIL: &str =
    "SELECT 1 FROM users WHERE lower(username) = lower($1) AND id <> $2 LIMIT 1";

/// Serialises writes of usernames and emails across hosts for the transaction, so
/// the clash checks and the write are one step.
fn lock_identities(tx: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("SELECT pg_advisory_xact_lock(7317002)")
        .map_err(db)
}

fn clashes(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    value: &str,
    own_id: i64,
) -> Result<bool, StoreError> {
    Ok(tx.query_opt(sql, &[&value, &own_id]).map_err(db)?.is_some())
}

fn id_of(id: &str) -> Option<i64> {
    id.parse().ok()
}

impl Store for PostgresStore {
    fn create_user(&self, n: &NewUser) -> Result<User, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        lock_identities(&mut tx)?;
        if clashes(&mut tx, CLASH_USERNAME, &n.username, -1)? {
            return Err(username_clash(&n.username));
        }
        if !n.email.is_empty() && clashes(&mut tx, CLASH_EMAIL, &n.email, -1)? {
            return Err(email_clash(&n.email));
        }
        let row = tx
            .query_one(
                &format!("INSERT INTO users (username, name, email, is_active, password_hash, locale) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLS}"),
                &[&n.username, &n.name, &n.email, &n.is_active, &n.password_hash, &n.locale],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("user '{}'", n.username))
                } else {
                    db(e)
                }
            })?;
        let user = row_user(&row)?;
        tx.commit().map_err(db)?;
        Ok(user)
    }
    fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let Some(id) = id_of(id) else { return Ok(None) };
        self.conn()?
            .query_typed_opt(
                &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
                &[(&id, Type::INT8)],
            )
            .map_err(db)?
            .map(|r| row_user(&r))
            .transpose()
    }
    fn find_user(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        self
            .conn()?
            .query_typed_opt(
                &format!("SELECT {USER_COLS} FROM users WHERE username = $1 OR (email <> '' AND lower(email) = lower($1)) ORDER BY (username = $1) DESC, id LIMIT 1"),
                &[(&identifier, Type::TEXT)],
            )
            .map_err(db)?
            .map(|r| row_user(&r))
            .transpose()
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.conn()?
            .query(&format!("SELECT {USER_COLS} FROM users ORDER BY id"), &[])
            .map_err(db)?
            .iter()
            .map(row_user)
            .collect::<Result<_, _>>()
    }
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError> {
        let Some(id) = id_of(id) else {
            return Ok(false);
        };
        Ok(self
            .conn()?
            .execute(
                "UPDATE users SET is_active = $2 WHERE id = $1",
                &[&id, &active],
            )
            .map_err(db)?
            > 0)
    }
    fn set_email(&self, id: &str, email: &str) -> Result<bool, StoreError> {
        let Some(id) = id_of(id) else {
            return Ok(false);
        };
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        lock_identities(&mut tx)?;
        if !email.is_empty() && clashes(&mut tx, CLASH_EMAIL, email, id)? {
            return Err(email_clash(email));
        }
        let n = tx
            .execute("UPDATE users SET email = $2 WHERE id = $1", &[&id, &email])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n > 0)
    }
    fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        let Some(id) = id_of(id) else {
            return Ok(false);
        };
        Ok(self
            .conn()?
            .execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[&id, &hash],
            )
            .map_err(db)?
            > 0)
    }
    fn password_hash(&self, id: &str) -> Result<Option<String>, StoreError> {
        let Some(id) = id_of(id) else { return Ok(None) };
        Ok(self
            .conn()?
            .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id])
            .map_err(db)?
            .map(|r| col::<Option<String>>(&r, 0))
            .transpose()?
            .flatten())
    }
    fn insert_token(&self, t: &StoredToken) -> Result<(), StoreError> {
        insert_token(&mut *self.conn()?, t)
    }
    fn token(&self, key_hash: &str, now_ms: i64) -> Result<Option<StoredToken>, StoreError> {
        let mut c = self.conn()?;
        c.execute_typed(
            "DELETE FROM flow_tokens WHERE key_hash = $1 AND expires_ms < $2",
            &[(&key_hash, Type::TEXT), (&now_ms, Type::INT8)],
        )
        .map_err(db)?;
        c.query_typed_opt(
            &format!("SELECT {TOKEN_COLS} FROM flow_tokens WHERE key_hash = $1"),
            &[(&key_hash, Type::TEXT)],
        )
        .map_err(db)?
        .map(|r| row_token(&r))
        .transpose()
    }
    fn consume_token(&self, key_hash: &str, now_ms: i64) -> Result<Option<FlowToken>, StoreError> {
        Ok(self
            .conn()?
            .query_typed_opt(
                &format!("DELETE FROM flow_tokens WHERE key_hash = $1 RETURNING {TOKEN_COLS}"),
                &[(&key_hash, Type::TEXT)],
            )
            .map_err(db)?
            .map(|r| row_token(&r))
            .transpose()?
            .filter(|t| t.token.expires_ms >= now_ms)
            .map(|t| t.token))
    }
    fn delete_token(&self, key_hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .execute("DELETE FROM flow_tokens WHERE key_hash = $1", &[&key_hash])
            .map_err(db)?
            > 0)
    }
    fn revoke_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, StoreError> {
        self.conn()?
            .execute_typed(
                "DELETE FROM flow_tokens WHERE user_id = $1 AND stage_name = $2",
                &[(&user_id, Type::TEXT), (&stage_name, Type::TEXT)],
            )
            .map_err(db)
    }
    fn token_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()?
            .query_one("SELECT count(*) FROM flow_tokens", &[])
            .map_err(db)?
            .try_get::<_, i64>(0)
            .map_err(db)? as u64)
    }
    fn token_sweep(&self, now_ms: i64, limit: usize) -> Result<u64, StoreError> {
        self.conn()?
            .execute(
                "DELETE FROM flow_tokens WHERE key_hash IN
                 (SELECT key_hash FROM flow_tokens WHERE expires_ms < $1 LIMIT $2
                  FOR UPDATE SKIP LOCKED)",
                &[&now_ms, &(limit as i64)],
            )
            .map_err(db)
    }
    fn add_event(&self, e: &Event) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT INTO events (action, context, at_ms) VALUES ($1, $2, $3)",
                &[&e.action, &e.context, &e.at_ms],
            )
            .map_err(db)?;
        Ok(())
    }
    fn events(&self, action: Option<&str>) -> Result<Vec<Event>, StoreError> {
        self
            .conn()?
            .query(
                "SELECT action, context, at_ms FROM events WHERE $1::TEXT IS NULL OR action = $1 ORDER BY id",
                &[&action],
            )
            .map_err(db)?
            .iter()
            .map(|r| Ok(Event { action: col(r, 0)?, context: col(r, 1)?, at_ms: col(r, 2)? }))
            .collect::<Result<_, StoreError>>()
    }
}

fn insert_token(c: &mut impl GenericClient, t: &StoredToken) -> Result<(), StoreError> {
    c.execute_typed(
        &format!("INSERT INTO flow_tokens ({TOKEN_COLS}) VALUES {TOKEN_PARAMS}"),
        &token_params(t),
    )
    .map_err(|e| token_conflict(e, t))?;
    Ok(())
}

/// The placeholders of a token row, `$1`…`$9`, in [`TOKEN_COLS`] order.
const TOKEN_PARAMS: &str = "($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// A token row's values with their types (typed statements take one round trip;
/// untyped ones are prepared first).
fn token_params(t: &StoredToken) -> [(&(dyn ToSql + Sync), Type); 9] {
    [
        (&t.key_hash, Type::TEXT),
        (&t.token.identifier, Type::TEXT),
        (&t.token.user_id, Type::TEXT),
        (&t.token.flow_slug, Type::TEXT),
        (&t.token.stage_name, Type::TEXT),
        (&t.token.expires_ms, Type::INT8),
        (&t.token.intent, Type::TEXT),
        (&t.revoke_on_execution, Type::BOOL),
        (&t.plan, Type::JSONB),
    ]
}

fn token_conflict(e: postgres::Error, t: &StoredToken) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("token '{}'", t.token.identifier))
    } else {
        db(e)
    }
}

fn outbox_push(
    c: &mut impl GenericClient,
    mail: &QueuedMail,
    now_ms: i64,
    due_ms: i64,
) -> Result<bool, StoreError> {
    let meta = serde_json::to_value(mail).map_err(corrupt_outbox)?;
    let state = initial_state(mail);
    let n = c
        .execute_typed(
            "INSERT INTO outbox (message_id, meta, raw, state, next_at_ms, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
            &[
                (&mail.message_id, Type::TEXT),
                (&meta, Type::JSONB),
                (&mail.raw, Type::BYTEA),
                (&state, Type::TEXT),
                (&due_ms, Type::INT8),
                (&now_ms, Type::INT8),
            ],
        )
        .map_err(db)?;
    Ok(n == 1)
}

impl OutboxStore for PostgresStore {
    fn outbox_push(&self, mail: &QueuedMail, now_ms: i64, due_ms: i64) -> Result<bool, StoreError> {
        outbox_push(&mut *self.conn()?, mail, now_ms, due_ms)
    }

    fn outbox_push_with_token(
        &self,
        token: &StoredToken,
        mail: &QueuedMail,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError> {
        // One statement (a data-modifying CTE): atomic, one round trip, one commit.
        let meta = serde_json::to_value(mail).map_err(corrupt_outbox)?;
        let state = initial_state(mail);
        let mut params = token_params(token).to_vec();
        params.extend_from_slice(&[
            (&mail.message_id as &(dyn ToSql + Sync), Type::TEXT),
            (&meta, Type::JSONB),
            (&mail.raw, Type::BYTEA),
            (&state, Type::TEXT),
            (&due_ms, Type::INT8),
            (&now_ms, Type::INT8),
        ]);
        let n = self
            .conn()?
            .execute_typed(
                &format!(
                    "WITH token AS (INSERT INTO flow_tokens ({TOKEN_COLS}) VALUES {TOKEN_PARAMS})
                     INSERT INTO outbox (message_id, meta, raw, state, next_at_ms, created_ms)
                     VALUES ($10, $11, $12, $13, $14, $15) ON CONFLICT (message_id) DO NOTHING"
                ),
                &params,
            )
            .map_err(|e| token_conflict(e, token))?;
        Ok(n == 1)
    }

    fn outbox_sweep_decoys(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        self.conn()?
            .execute(
                "DELETE FROM outbox WHERE id IN
                 (SELECT id FROM outbox WHERE state = 'decoy' AND created_ms < $1 LIMIT $2
                  FOR UPDATE SKIP LOCKED)",
                &[&before_ms, &(limit as i64)],
            )
            .map_err(db)
    }

    fn outbox_claim(&self, claim: Claim) -> Result<Vec<OutboxRow>, StoreError> {
        let (now_ms, lease_ms, limit) = (claim.now_ms, claim.lease_ms, claim.limit);
        // SKIP LOCKED: hosts claiming at the same moment take different rows.
        let rows = self
            .conn()?
            .query(
                "UPDATE outbox SET state = 'sending', lease_until_ms = $2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE (state = 'pending' AND next_at_ms <= $1)
                        OR (state = 'sending' AND lease_until_ms <= $1)
                     ORDER BY next_at_ms, id LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, meta, raw, attempts, created_ms",
                &[&now_ms, &now_ms.saturating_add(lease_ms), &(limit as i64)],
            )
            .map_err(db)?;
        let out = rows
            .iter()
            .map(|r| {
                let mut mail: QueuedMail =
                    serde_json::from_value(col::<Value>(r, 1)?).map_err(corrupt_outbox)?;
                mail.raw = col(r, 2)?;
                Ok(OutboxRow {
                    id: col(r, 0)?,
                    mail,
                    attempts: col::<i32>(r, 3)? as u32,
                    created_ms: col(r, 4)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(oldest_first(out))
    }

    fn outbox_finish(&self, done: Finish<'_>) -> Result<(), StoreError> {
        let Finish { id, outcome, event } = done;
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db)?;
        match outcome {
            OutboxOutcome::Sent => tx
                .execute("UPDATE outbox SET state = 'sent', raw = ''::bytea, last_error = NULL, meta = meta #- '{route,password}' WHERE id = $1", &[&id]),
            OutboxOutcome::Retry { at_ms, error } => tx.execute(
                "UPDATE outbox SET state = 'pending', next_at_ms = $2, last_error = $3 WHERE id = $1",
                &[&id, at_ms, error],
            ),
            OutboxOutcome::Dead { error } => {
                tx.execute("UPDATE outbox SET state = 'dead', last_error = $2, meta = meta #- '{route,password}' WHERE id = $1", &[&id, error])
            }
        }
        .map_err(db)?;
        if let Some(e) = event {
            tx.execute(
                "INSERT INTO events (action, context, at_ms) VALUES ($1, $2, $3)",
                &[&e.action, &e.context, &e.at_ms],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut out = OutboxCounts::default();
        for r in self
            .conn()?
            .query("SELECT state, count(*) FROM outbox GROUP BY state", &[])
            .map_err(db)?
        {
            let n = col::<i64>(&r, 1)? as u64;
            out.add(col::<&str>(&r, 0)?, n);
        }
        Ok(out)
    }

    fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.conn()?
            .query_one(
                "SELECT min(next_at_ms) FROM outbox WHERE state = 'pending'",
                &[],
            )
            .map_err(db)?
            .try_get::<_, Option<i64>>(0)
            .map_err(db)
    }
}

/// A session write as one statement: the CTE turns `synchronous_commit` off for the
/// statement's own transaction (`set_config(…, true)` is transaction-local), so the
/// write does not wait for a WAL flush and the pooled connection's later
/// transactions still do.
const SESSION_UPSERT: &str = "WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
    INSERT INTO sessions (key, data, updated_ms) SELECT $1, $2, $3 FROM async
    ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_ms = EXCLUDED.updated_ms";

impl SessionStore for PostgresStore {
    fn session_load(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()?
            .query_typed_opt(
                "SELECT data FROM sessions WHERE key = $1",
                &[(&key, Type::TEXT)],
            )
            .map_err(db)?
            .map(|r| col(&r, 0))
            .transpose()
    }
    fn session_save(&self, key: &str, data: &str, now_ms: i64) -> Result<(), StoreError> {
        // A session write lost in a database crash costs a browser one step; it need
        // not wait for the WAL flush. One statement, so one round trip: the CTE sets
        // `synchronous_commit` for the statement's own (implicit) transaction.
        self.conn()?
            .execute_typed(
                SESSION_UPSERT,
                &[
                    (&key, Type::TEXT),
                    (&data, Type::TEXT),
                    (&now_ms, Type::INT8),
                ],
            )
            .map_err(db)?;
        Ok(())
    }
    fn session_delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM sessions WHERE key = $1", &[&key])
            .map_err(db)?;
        Ok(())
    }
    fn session_sweep(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError> {
        self.conn()?
            .execute(
                "DELETE FROM sessions WHERE key IN
                 (SELECT key FROM sessions WHERE updated_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&before_ms, &(limit as i64)],
            )
            .map_err(db)
    }
}

fn postgres_entry(r: &Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        id: col(r, 0)?,
        row_state: col(r, 1)?,
        attempts: col::<i32>(r, 2)? as u32,
        created_ms: col(r, 3)?,
        next_at_ms: col(r, 4)?,
        last_error: col(r, 5)?,
        mail: serde_json::from_value(col::<Value>(r, 6)?).map_err(corrupt_outbox)?,
        size: col::<i32>(r, 7)? as u64,
    })
}

impl OutboxAdmin for PostgresStore {
    fn outbox_entries(
        &self,
        state: Option<EntryState>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let statement = sql::postgres(&sql::entries(state));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        (self.conn()?)
            .query(&statement, &[&limit])
            .map_err(db)?
            .iter()
            .map(postgres_entry)
            .collect()
    }

    fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        let statement = sql::postgres(&sql::entry());
        (self.conn()?)
            .query_opt(&statement, &[&id])
            .map_err(db)?
            .as_ref()
            .map(postgres_entry)
            .transpose()
    }

    fn outbox_requeue(&self, which: Requeue, now_ms: i64) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        match which {
            Requeue::One(id) => c.execute(&sql::postgres(&sql::requeue_one()), &[&now_ms, &id]),
            Requeue::AllDead => c.execute(&sql::postgres(&sql::requeue_dead()), &[&now_ms]),
        }
        .map_err(db)
    }

    fn outbox_purge_dead(&self, before_ms: i64) -> Result<u64, StoreError> {
        (self.conn()?)
            .execute(&sql::postgres(sql::PURGE_DEAD), &[&before_ms])
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test database (`TEST_POSTGRES_URL`, else the local `test` database); `None`
    /// outside CI when it is unreachable, a failure under `CI=true`.
    fn client() -> Option<postgres::Client> {
        let url = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(c) => Some(c),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: PostgreSQL unreachable at {url}: {e}");
                None
            }
            Err(e) => panic!("PostgreSQL unreachable at {url} under CI=true: {e}"),
        }
    }

    #[test]
    fn a_session_write_leaves_synchronous_commit_on_for_the_connection() {
        let Some(mut c) = client() else { return };
        c.batch_execute(
            "CREATE TEMP TABLE sessions (key TEXT PRIMARY KEY, data TEXT NOT NULL, updated_ms BIGINT NOT NULL)",
        )
        .unwrap();
        let n = c
            .execute_typed(
                SESSION_UPSERT,
                &[(&"k", Type::TEXT), (&"{}", Type::TEXT), (&1i64, Type::INT8)],
            )
            .unwrap();
        assert_eq!(n, 1);
        let after: String = c.query_one("SHOW synchronous_commit", &[]).unwrap().get(0);
        assert_eq!(
            after, "on",
            "the session write's setting leaked to the connection"
        );
        let inside: String = c
            .query_one(
                "WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
                 SELECT current_setting('synchronous_commit') FROM async",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(inside, "off", "the CTE sets it for its own statement");
    }
}
