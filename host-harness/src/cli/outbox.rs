//! `outbox`: list, show, retry and purge queued mail in a host's storage, also
//! while hosts serve from it. Nothing printed holds a message body, link, token or
//! SMTP setting: entries show recipients, subject, route by name, state and errors.

use anyhow::Context;
use host_harness::storage::admin::{EntryState, OutboxAdmin, OutboxEntry, Requeue};
use host_harness::system::clock::{Clock, SystemClock};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::OutboxCommand;

/// `outbox list|show|retry|purge` on the store at `database` (`schema` for
/// PostgreSQL).
pub fn run(database: &str, schema: Option<&str>, command: OutboxCommand) -> anyhow::Result<()> {
    let store = host_harness::config::open_outbox_admin(database, schema)?;
    let now_ms = SystemClock.now_ms();
    match command {
        OutboxCommand::List { state, to, limit } => list(&*store, state, to.as_deref(), limit),
        OutboxCommand::Show { id } => {
            let entry = store
                .outbox_entry(id)?
                .with_context(|| format!("no outbox entry {id}"))?;
            println!("{}", serde_json::to_string_pretty(&view(&entry, true))?);
            Ok(())
        }
        OutboxCommand::Retry { id, all_dead } => {
            let which = match (id, all_dead) {
                (Some(id), false) => Requeue::One(id),
                _ => Requeue::AllDead,
            };
            let n = store.outbox_requeue(which, now_ms)?;
            if let Requeue::One(id) = which {
                anyhow::ensure!(n == 1, "no dead or waiting outbox entry {id}");
            }
            println!("requeued {n}");
            Ok(())
        }
        OutboxCommand::Purge { older_than, .. } => {
            let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
            let before = now_ms.saturating_sub(age);
            let n = store.outbox_purge_dead(before)?;
            println!("purged {n} dead entries queued before {}", rfc3339(before));
            Ok(())
        }
    }
}

/// Prints up to `limit` entries as JSON lines. Without `to` the store applies the
/// limit; with it, every entry in `state` is read and filtered here (recipients are
/// inside the stored metadata).
fn list(
    store: &dyn OutboxAdmin,
    state: Option<EntryState>,
    to: Option<&str>,
    limit: usize,
) -> anyhow::Result<()> {
    let read = if to.is_some() { u64::MAX } else { limit as u64 };
    let entries = store.outbox_entries(state, read)?;
    let shown = entries
        .iter()
        .filter(|e| to.is_none_or(|a| e.is_to(a)))
        .take(limit);
    for e in shown {
        println!("{}", serde_json::to_string(&view(e, false))?);
    }
    Ok(())
}

/// What is printed of an entry; `detailed` adds the sender, the displayed
/// recipients and the stored size.
fn view(e: &OutboxEntry, detailed: bool) -> Value {
    let state = e.state();
    let waiting = matches!(state, EntryState::Queued | EntryState::Retrying);
    let mut v = json!({
        "id": e.id,
        "state": state,
        "attempts": e.attempts,
        "queued_at": rfc3339(e.created_ms),
        "next_attempt_at": waiting.then(|| rfc3339(e.next_at_ms)),
        "to": e.mail.envelope_to,
        "subject": e.mail.subject,
        "route": e.route(),
        "last_error": e.last_error,
    });
    if detailed {
        v["message_id"] = e.mail.message_id.clone().into();
        v["from"] = e.mail.envelope_from.clone().into();
        v["to_display"] = json!(e.mail.to_display);
        v["size_bytes"] = e.size.into();
    }
    v
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}
