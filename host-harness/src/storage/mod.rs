//! Storage of users, flow tokens, events, sessions and the mail outbox: the traits,
//! three backends ([`MemoryStore`], [`SqliteStore`], the embedded default, and
//! [`PostgresStore`]), the outbox's rows ([`QueuedMail`]), the PostgreSQL pool
//! ([`pool`]) and the spool of events kept while the store is down ([`spool`]).
//! Imports only `system`.

use plugin_api::{FlowToken, User};

use serde_json::Value;

pub mod admin;
mod group_commit;
mod memory;
mod outbox;
pub mod pool;
mod postgres;
mod schema;
pub mod spool;
mod sqlite;

pub use self::postgres::PostgresStore;
pub use memory::MemoryStore;
pub use outbox::{QueuedMail, RouteRef};
pub use sqlite::SqliteStore;

/// What kind of failure a [`StoreError`] is: what a caller decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database failed or is unreachable; retrying later may work.
    Unavailable,
    /// A uniqueness rule was violated.
    Conflict,
    /// An identity (username or email) would reach another user's account.
    IdentityClash,
    /// Stored data could not be decoded; retrying will not help.
    Corrupt,
}

/// A storage failure. [`StoreError::kind`] says what kind; the driver's own error,
/// when there is one, is kept as the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable; retrying may work.
    #[error("storage backend: {detail}")]
    Backend {
        /// What failed.
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A uniqueness rule was violated.
    #[error("{0} already exists")]
    Conflict(String),
    /// A username equal to another user's email address, or an email address equal
    /// to another user's username: identifying by either could reach the wrong
    /// account, so neither is stored.
    #[error("{field} '{value}' is another user's {}", field.other())]
    IdentityClash {
        /// The field being written.
        field: Identity,
        /// Its value.
        value: String,
    },
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A backend failure keeping the driver's error as its source.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend {
            detail: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    /// A backend failure described by text only.
    pub fn backend_text(detail: impl Into<String>) -> Self {
        Self::Backend {
            detail: detail.into(),
            source: None,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::Backend { .. } => StoreErrorKind::Unavailable,
            Self::Conflict(_) => StoreErrorKind::Conflict,
            Self::IdentityClash { .. } => StoreErrorKind::IdentityClash,
            Self::Corrupt(_) => StoreErrorKind::Corrupt,
        }
    }

    /// The kind in a word, for answers that must not carry details (health).
    pub fn kind_name(&self) -> &'static str {
        match self.kind() {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::IdentityClash => "identity clash",
            StoreErrorKind::Corrupt => "corrupt data",
        }
    }

    /// An error of the same kind and text, for each of several callers one failure
    /// reached (the driver's error stays with the original).
    pub fn same_kind(&self) -> Self {
        match self {
            Self::Backend { detail, .. } => Self::backend_text(detail.clone()),
            Self::Conflict(s) => Self::Conflict(s.clone()),
            Self::IdentityClash { field, value } => Self::IdentityClash {
                field: *field,
                value: value.clone(),
            },
            Self::Corrupt(s) => Self::Corrupt(s.clone()),
        }
    }

    /// Whether trying again later may succeed (the backend was unavailable).
    pub fn is_transient(&self) -> bool {
        self.kind() == StoreErrorKind::Unavailable
    }
}

/// The two ways a user is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The login name.
    Username,
    /// The email address.
    Email,
}

impl Identity {
    /// The identity a clash of this one is with.
    pub fn other(self) -> Self {
        match self {
            Self::Username => Self::Email,
            Self::Email => Self::Username,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Username => "username",
            Self::Email => "email address",
        })
    }
}

/// The error for a username that is another user's email address.
pub(crate) fn username_clash(username: &str) -> StoreError {
    StoreError::IdentityClash {
        field: Identity::Username,
        value: username.to_string(),
    }
}

/// The error for an email address that is another user's username.
pub(crate) fn email_clash(email: &str) -> StoreError {
    StoreError::IdentityClash {
        field: Identity::Email,
        value: email.to_string(),
    }
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
    /// Preferred locale (BCP 47, e.g. `de`); empty for none.
    pub locale: String,
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
    /// Creates a user and returns it with its id. Refuses a taken username
    /// ([`StoreError::Conflict`]) and a username or email that clashes with another
    /// user's email or username ([`StoreError::IdentityClash`]), atomically.
    fn create_user(&self, user: &NewUser) -> Result<User, StoreError>;
    /// A user by id.
    fn user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// A user by username or email (case-insensitive). An identifier with `@` is
    /// matched by email first, anything else by username first.
    fn find_user(&self, identifier: &str) -> Result<Option<User>, StoreError>;
    /// All users, by id.
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Sets `is_active`; `false` if the user does not exist.
    fn set_active(&self, id: &str, active: bool) -> Result<bool, StoreError>;
    /// Sets the email; `false` if the user does not exist. Refuses an email equal to
    /// another user's username ([`StoreError::IdentityClash`]).
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
    /// Deletes up to `limit` tokens expired before `now_ms`; how many.
    fn token_sweep(&self, now_ms: i64, limit: usize) -> Result<u64, StoreError>;
    /// Records an event.
    fn add_event(&self, event: &Event) -> Result<(), StoreError>;
    /// Events with this action (all when `None`), oldest first.
    fn events(&self, action: Option<&str>) -> Result<Vec<Event>, StoreError>;
}

/// A mail waiting in the outbox, as claimed by a delivery worker.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// The message (its `message_id` is the idempotency key).
    pub mail: QueuedMail,
    /// Delivery attempts so far, this one included.
    pub attempts: u32,
    /// When it was queued, Unix ms.
    pub created_ms: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxOutcome {
    /// Accepted by the server: never sent again.
    Sent,
    /// Failed transiently: try again at this instant.
    Retry {
        /// Next attempt, Unix ms.
        at_ms: i64,
        /// What went wrong.
        error: String,
    },
    /// Failed for good (dead letter).
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// How many outbox rows are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting (possibly for a retry time).
    pub pending: u64,
    /// Claimed by a worker.
    pub sending: u64,
    /// Delivered.
    pub sent: u64,
    /// Given up.
    pub dead: u64,
}

impl OutboxCounts {
    /// Counts `n` rows in `state` (a row state of the SQL outboxes; `decoy` and
    /// unknown states are not counted).
    pub fn add(&mut self, state: &str, n: u64) {
        match state {
            "pending" => self.pending += n,
            "sending" => self.sending += n,
            "sent" => self.sent += n,
            "dead" => self.dead += n,
            _ => {}
        }
    }
}

/// A claimed batch handed out oldest first (`RETURNING` gives no order).
pub fn oldest_first(mut rows: Vec<OutboxRow>) -> Vec<OutboxRow> {
    rows.sort_by_key(|r| r.id);
    rows
}

/// The row state a new outbox row starts in.
pub fn initial_state(mail: &QueuedMail) -> &'static str {
    if mail.decoy {
        "decoy"
    } else {
        "pending"
    }
}

/// An outbox row whose metadata does not (de)serialize.
pub fn corrupt_outbox(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("outbox row: {e}"))
}

/// What a worker asks of [`OutboxStore::outbox_claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The time of the claim.
    pub now_ms: i64,
    /// How long the claimed rows stay leased.
    pub lease_ms: i64,
    /// At most this many rows.
    pub limit: usize,
}

/// How a claimed row's attempt ended, as [`OutboxStore::outbox_finish`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// The row.
    pub id: i64,
    /// What happened.
    pub outcome: &'a OutboxOutcome,
    /// The event written with it, if any.
    pub event: Option<&'a Event>,
}

/// The durable mail outbox. Claims are atomic, so several workers (or hosts sharing
/// the store) never hold the same message at once; a claim is a lease, so a message
/// held by a worker that died is claimed again when the lease runs out.
pub trait OutboxStore: Send + Sync {
    /// Queues a mail at `now_ms`, due at `due_ms` (a decoy is written the same way
    /// in a state no worker claims). `false` when a mail with the same Message-ID is already queued or
    /// delivered (nothing is added).
    fn outbox_push(&self, mail: &QueuedMail, now_ms: i64, due_ms: i64) -> Result<bool, StoreError>;
    /// Stores `token` and queues `mail` as [`OutboxStore::outbox_push`] does, in one
    /// transaction: both are written or neither (the token is the link the mail
    /// carries), at the cost of one durable commit instead of two. A token that
    /// conflicts with a stored one fails the whole write.
    fn outbox_push_with_token(
        &self,
        token: &StoredToken,
        mail: &QueuedMail,
        now_ms: i64,
        due_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Claims up to `claim.limit` due mails (pending and due, or leased and the
    /// lease run out) for `claim.lease_ms`, counting an attempt for each.
    fn outbox_claim(&self, claim: Claim) -> Result<Vec<OutboxRow>, StoreError>;
    /// Records how an attempt ended, and its event if any, in one write.
    fn outbox_finish(&self, done: Finish<'_>) -> Result<(), StoreError>;
    /// Rows per state.
    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    /// The earliest instant a pending mail is due, if any.
    fn outbox_next_due(&self) -> Result<Option<i64>, StoreError>;
    /// Deletes up to `limit` decoys queued before `before_ms`; how many.
    fn outbox_sweep_decoys(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError>;
}

/// Browser sessions kept in storage, so that hosts sharing a store share sessions.
/// Keys are digests of the session cookie, never the cookie itself.
pub trait SessionStore: Send + Sync {
    /// The stored session data (JSON) under `key`.
    fn session_load(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores session data under `key`, last used at `now_ms`.
    fn session_save(&self, key: &str, data: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Deletes the session under `key` (logout, rotation, expiry).
    fn session_delete(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes up to `limit` sessions last used before `before_ms`; how many.
    fn session_sweep(&self, before_ms: i64, limit: usize) -> Result<u64, StoreError>;
}

/// Storage with an outbox and sessions: what a host needs.
pub trait HostStore: Store + OutboxStore + SessionStore {}

impl<T: Store + OutboxStore + SessionStore> HostStore for T {}
