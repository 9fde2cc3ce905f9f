//! The plan of a running flow: the stage bindings left to run and the context.
//! Shared by the executor, the per-call host handle (which snapshots it into flow
//! tokens) and the HTTP sessions; it imports nothing of the host.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlanEntry {
    /// A configured stage binding.
    Stage {
        /// Binding name.
        name: String,
    },
    /// The confirmation step of a restored link; consumes the token on POST.
    Confirm {
        /// Header text.
        header: String,
        /// Hash of the link's token.
        key_hash: String,
    },
}

/// A flow plan: what remains to run and the context.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Flow the plan belongs to.
    pub flow_slug: String,
    /// Remaining entries; the first is current.
    pub stages: Vec<PlanEntry>,
    /// Plan context.
    pub context: Map<String, Value>,
}
