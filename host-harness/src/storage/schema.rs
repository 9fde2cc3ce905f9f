//! The tables of the SQL stores, written once for SQLite and PostgreSQL. Column
//! types differ between the dialects only by name, so each table is a template
//! whose `{placeholders}` a [`Dialect`] fills; each store lists its migrations
//! from these pieces (their numbering predates this module and differs per store).

/// Which SQL the templates are rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// `template` with every column-type placeholder filled.
    pub fn render(self, template: &str) -> String {
        let types: [(&str, &str); 5] = match self {
            Dialect::Sqlite => [
                ("{id}", "INTEGER PRIMARY KEY AUTOINCREMENT"),
                ("{int}", "INTEGER"),
                ("{bool}", "INTEGER"),
                ("{json}", "TEXT"),
                ("{bytes}", "BLOB"),
            ],
            Dialect::Postgres => [
                ("{id}", "BIGSERIAL PRIMARY KEY"),
                ("{int}", "BIGINT"),
                ("{bool}", "BOOLEAN"),
                ("{json}", "JSONB"),
                ("{bytes}", "BYTEA"),
            ],
        };
        types
            .iter()
            .fold(template.to_string(), |sql, (k, v)| sql.replace(k, v))
    }

    /// The pieces rendered and joined into one migration.
    pub fn migration(self, pieces: &[&str]) -> String {
        pieces.iter().map(|p| self.render(p)).collect()
    }
}

/// Users: the host's accounts.
pub const USERS: &str = "
CREATE TABLE users (
    id {id},
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    is_active {bool} NOT NULL,
    locale TEXT NOT NULL DEFAULT '',
    password_hash TEXT
);
CREATE INDEX users_email ON users (lower(email));
";

/// Flow tokens by key hash, each with its plan snapshot.
pub const FLOW_TOKENS: &str = "
CREATE TABLE flow_tokens (
    key_hash TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    flow_slug TEXT NOT NULL,
    stage_name TEXT NOT NULL,
    expires_ms {int} NOT NULL,
    intent TEXT NOT NULL,
    revoke_on_execution {bool} NOT NULL,
    plan {json} NOT NULL
);
CREATE INDEX flow_tokens_user_stage ON flow_tokens (user_id, stage_name);
";

/// Audit events.
pub const EVENTS: &str = "
CREATE TABLE events (
    id {id},
    action TEXT NOT NULL,
    context {json} NOT NULL,
    at_ms {int} NOT NULL
);
";

/// The outbox as first created (the `decoy` state came later, per dialect). In
/// SQLite `id` is a plain `INTEGER PRIMARY KEY` (a rowid, reused after deletes).
pub const OUTBOX: &str = "
CREATE TABLE outbox (
    id {outbox_id},
    message_id TEXT NOT NULL UNIQUE,
    meta {json} NOT NULL,
    raw {bytes} NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at_ms {int} NOT NULL,
    lease_until_ms {int} NOT NULL DEFAULT 0,
    created_ms {int} NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_at_ms);
";

/// Browser sessions shared by hosts.
pub const SESSIONS: &str = "
CREATE TABLE sessions (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_ms {int} NOT NULL
);
";

/// Indexes for the maintenance sweeps.
pub const SWEEP_INDEXES: &str = "
CREATE INDEX sessions_updated ON sessions (updated_ms);
CREATE INDEX flow_tokens_expiry ON flow_tokens (expires_ms);
";

/// Case-insensitive username lookups (added with decoys).
pub const USERS_USERNAME_LOWER: &str = "
CREATE INDEX users_username_lower ON users (lower(username));
";

/// [`OUTBOX`] rendered for `d`.
pub fn outbox(d: Dialect) -> String {
    let id = match d {
        Dialect::Sqlite => "INTEGER PRIMARY KEY",
        Dialect::Postgres => "{id}",
    };
    d.render(&OUTBOX.replace("{outbox_id}", id))
}

/// The migrations of `d`'s store, applied in order. Their numbering predates this
/// module: PostgreSQL created the outbox in its first migration, SQLite in its
/// second, so the lists differ in length.
pub fn migrations(d: Dialect) -> Vec<String> {
    match d {
        Dialect::Sqlite => sqlite(),
        Dialect::Postgres => postgres(),
    }
}

/// SQLite's migrations (`PRAGMA user_version` counts those that ran).
fn sqlite() -> Vec<String> {
    let d = Dialect::Sqlite;
    vec![
        d.migration(&[USERS, FLOW_TOKENS, EVENTS]),
        outbox(d),
        d.migration(&[SESSIONS]),
        d.migration(&[SWEEP_INDEXES]),
        decoy_state() + USERS_USERNAME_LOWER,
    ]
}

/// Decoys (anti-enumeration) get a state of their own; SQLite changes a CHECK only
/// by rebuilding the table. Passwords of rows written before routes were stored by
/// reference are removed once those rows are done.
fn decoy_state() -> String {
    let v2 = outbox(Dialect::Sqlite)
        .replace("CREATE TABLE outbox (", "CREATE TABLE outbox_v2 (")
        .replace("'sent', 'dead')", "'sent', 'dead', 'decoy')")
        .replace(
            "CREATE INDEX outbox_due ON outbox (state, next_at_ms);\n",
            "",
        );
    v2 + r#"
INSERT INTO outbox_v2 (id, message_id, meta, raw, state, attempts, next_at_ms, lease_until_ms, created_ms, last_error)
    SELECT id, message_id, meta, raw, state, attempts, next_at_ms, lease_until_ms, created_ms, last_error FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_at_ms);
UPDATE outbox SET meta = json_remove(meta, '$.route.password') WHERE state IN ('sent', 'dead');
"#
}

/// PostgreSQL's migrations (`schema_migrations` records those that ran).
fn postgres() -> Vec<String> {
    let d = Dialect::Postgres;
    vec![
        d.migration(&[USERS, FLOW_TOKENS, EVENTS]) + &outbox(d),
        d.migration(&[SESSIONS]),
        d.migration(&[SWEEP_INDEXES]),
        PG_DECOY_STATE.to_string() + USERS_USERNAME_LOWER,
    ]
}

/// Decoys (anti-enumeration) get a state of their own; passwords of rows written
/// before routes were stored by reference are removed once those rows are done.
const PG_DECOY_STATE: &str = r#"
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'sending', 'sent', 'dead', 'decoy'));
UPDATE outbox SET meta = meta #- '{route,password}' WHERE state IN ('sent', 'dead');
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_in_both_dialects() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let all = d.migration(&[
                USERS,
                FLOW_TOKENS,
                EVENTS,
                SESSIONS,
                SWEEP_INDEXES,
                USERS_USERNAME_LOWER,
            ]) + &outbox(d);
            assert!(!all.contains('{'), "{d:?}: {all}");
        }
    }
}
