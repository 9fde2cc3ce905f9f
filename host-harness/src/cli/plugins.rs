//! `plugins release`: ends a stage's quarantine on every host serving from a store,
//! by recording an operator's release there (an event, so it is also audited).

use host_harness::flow::RELEASE_EVENT;
use host_harness::storage::Event;
use host_harness::system::clock::{Clock, SystemClock};
use serde_json::json;

use crate::PluginsCommand;

/// `plugins release <stage>` on the store at `database` (`schema` for PostgreSQL).
pub fn run(database: &str, schema: Option<&str>, command: PluginsCommand) -> anyhow::Result<()> {
    let store = host_harness::config::open_shared_store(database, schema)?;
    match command {
        PluginsCommand::Release { stage } => {
            anyhow::ensure!(!stage.trim().is_empty(), "the stage name is empty");
            store.add_event(&Event {
                action: RELEASE_EVENT.into(),
                context: json!({ "stage": stage, "by": "host-harness plugins release" }),
                at_ms: SystemClock.now_ms(),
            })?;
            println!(
                "released stage '{stage}': hosts serving from this storage call its plugin again \
                 within a second (a stage that is not quarantined is unaffected)"
            );
            Ok(())
        }
    }
}
