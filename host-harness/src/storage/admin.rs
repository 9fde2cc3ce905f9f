//! The operator's view of the outbox (`host-harness outbox`): list, show, retry and
//! purge, on the SQL stores, while hosts deliver from the same store. An entry
//! never carries the message body: it holds the link.

use serde::Serialize;

use super::outbox::{QueuedMail, RouteRef};
use super::StoreError;

/// One outbox row as an operator sees it (never a decoy; the body is left out).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Row id (what `outbox show|retry` take).
    pub id: i64,
    /// The row's state in the store (`pending`, `sending`, `sent`, `dead`).
    pub row_state: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was queued (or last retried by an operator), Unix ms.
    pub created_ms: i64,
    /// When a pending row is due, Unix ms.
    pub next_at_ms: i64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// The mail's metadata; `raw` is empty.
    pub mail: QueuedMail,
    /// Size of the stored message, bytes (0 once sent: the body is dropped then).
    pub size: u64,
}

/// The state names of `outbox list --state`: a pending row is `queued` before its
/// first attempt and `retrying` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting for its first attempt.
    Queued,
    /// Waiting for another attempt after a transient failure.
    Retrying,
    /// Held by a delivery worker now.
    Sending,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up (dead letter).
    Dead,
}

impl EntryState {
    /// Every state, in `list --state`'s order.
    pub const ALL: [EntryState; 5] = [
        EntryState::Queued,
        EntryState::Retrying,
        EntryState::Sending,
        EntryState::Sent,
        EntryState::Dead,
    ];

    /// The state's name (`queued`, …).
    pub fn name(self) -> &'static str {
        match self {
            EntryState::Queued => "queued",
            EntryState::Retrying => "retrying",
            EntryState::Sending => "sending",
            EntryState::Sent => "sent",
            EntryState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for EntryState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|e| e.name()).collect();
                format!("unknown state '{s}' (one of {})", names.join(", "))
            })
    }
}

impl OutboxEntry {
    /// The entry's state, as `outbox list` names it.
    pub fn state(&self) -> EntryState {
        match (self.row_state.as_str(), self.attempts) {
            ("pending", 0) => EntryState::Queued,
            ("pending", _) => EntryState::Retrying,
            ("sending", _) => EntryState::Sending,
            ("sent", _) => EntryState::Sent,
            _ => EntryState::Dead,
        }
    }

    /// Whether any envelope recipient is `address` (ASCII case ignored).
    pub fn is_to(&self, address: &str) -> bool {
        (self.mail.envelope_to.iter()).any(|a| a.eq_ignore_ascii_case(address))
    }

    /// Where it goes, without settings: `global`, `stage:<name>` or `smtp (inline)`.
    pub fn route(&self) -> String {
        match &self.mail.route {
            RouteRef::Global => "global".into(),
            RouteRef::Stage { stage } => format!("stage:{stage}"),
            RouteRef::Smtp(_) => "smtp (inline)".into(),
        }
    }
}

/// What `outbox retry` puts back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// This row, if it is dead or pending.
    One(i64),
    /// Every dead row.
    AllDead,
}

/// Outbox administration; implemented by the SQL stores (an in-memory outbox lives
/// only in the process that serves it).
pub trait OutboxAdmin: Send + Sync {
    /// Up to `limit` rows but decoys, newest first; only entries in `state` when
    /// given.
    fn outbox_entries(
        &self,
        state: Option<EntryState>,
        limit: u64,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// One row, not a decoy.
    fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError>;
    /// Puts rows back in the queue, due at `now_ms`, with a fresh retry budget (no
    /// attempts yet, queued at `now_ms`, so the age limit starts again); how many.
    fn outbox_requeue(&self, which: Requeue, now_ms: i64) -> Result<u64, StoreError>;
    /// Deletes dead rows queued before `before_ms`; how many.
    fn outbox_purge_dead(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The statements of [`OutboxAdmin`], written once with `$n` parameters
/// (PostgreSQL's); [`sql::sqlite`] turns them into SQLite's `?n`. `{len}` is the byte
/// length function.
pub mod sql {
    /// Columns read into an [`super::OutboxEntry`], in this order.
    const COLUMNS: &str =
        "id, state, attempts, created_ms, next_at_ms, last_error, meta, {len}(raw)";

    /// Up to `$1` rows but decoys, newest first; only those in `state` when given.
    pub fn entries(state: Option<super::EntryState>) -> String {
        use super::EntryState as S;
        let only = match state {
            None => "",
            Some(S::Queued) => "AND state = 'pending' AND attempts = 0",
            Some(S::Retrying) => "AND state = 'pending' AND attempts > 0",
            Some(S::Sending) => "AND state = 'sending'",
            Some(S::Sent) => "AND state = 'sent'",
            Some(S::Dead) => "AND state = 'dead'",
        };
        format!(
            "SELECT {COLUMNS} FROM outbox WHERE state <> 'decoy' {only} ORDER BY id DESC LIMIT $1"
        )
    }

    /// Row `$1`, not a decoy.
    pub fn entry() -> String {
        format!("SELECT {COLUMNS} FROM outbox WHERE id = $1 AND state <> 'decoy'")
    }

    /// The `SET` of a requeue at `$1`.
    const REQUEUE: &str = "UPDATE outbox SET state = 'pending', attempts = 0, next_at_ms = $1, created_ms = $1, lease_until_ms = 0";

    /// Requeues row `$2` if it is dead or pending.
    pub fn requeue_one() -> String {
        format!("{REQUEUE} WHERE id = $2 AND state IN ('dead', 'pending')")
    }

    /// Requeues every dead row.
    pub fn requeue_dead() -> String {
        format!("{REQUEUE} WHERE state = 'dead'")
    }

    /// Deletes dead rows queued before `$1`.
    pub const PURGE_DEAD: &str = "DELETE FROM outbox WHERE state = 'dead' AND created_ms < $1";

    /// `statement` in SQLite's dialect.
    pub fn sqlite(statement: &str) -> String {
        statement.replace('$', "?").replace("{len}", "length")
    }

    /// `statement` in PostgreSQL's dialect.
    pub fn postgres(statement: &str) -> String {
        statement.replace("{len}", "octet_length")
    }
}
