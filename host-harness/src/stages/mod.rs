//! Stage bindings: a plugin's stage or a built-in one under a configured name, the
//! host's own built-in stages ([`builtin`]) and the host handle lent to a plugin for
//! one hook call ([`host`]). Imports storage, cache, mail, system and the plan;
//! never the flow executor.

use plugin_api::Stage;
use serde::{Deserialize, Serialize};

pub mod builtin;
pub mod fault;
pub mod host;

use builtin::Builtin;
use fault::{Breaker, FaultPolicy};

/// What happens when a stage answers a POST with an invalid response.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvalidResponseAction {
    /// Show the stage again (default).
    #[default]
    Retry,
    /// Start the flow again with an empty context.
    Restart,
    /// Start the flow again keeping the context.
    RestartWithContext,
}

/// How a binding runs.
pub enum StageImpl {
    /// Built into the host.
    Builtin(Builtin),
    /// From a plugin.
    Plugin {
        /// The stage instance.
        stage: Box<dyn Stage>,
        /// Cache namespace (the plugin's name).
        namespace: String,
        /// The plugin's version (a metric label).
        version: String,
    },
}

/// A configured stage binding.
pub struct Binding {
    /// Binding name.
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Implementation.
    pub imp: StageImpl,
    /// What an invalid response does.
    pub invalid_response_action: InvalidResponseAction,
    /// What a failing or slow plugin hook does (unused by built-in stages).
    pub fault: FaultPolicy,
    /// Panics counted against [`Binding::fault`] and the quarantine in force.
    pub breaker: Breaker,
    /// The stage's `default_locale`.
    pub default_locale: Option<String>,
}

/// The host's own limit on mail, whatever the plugins do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimit {
    /// Mails one browser session may queue within the window (0 = no limit).
    pub per_session: u32,
    /// The window, ms.
    pub window_ms: u64,
}

impl Default for MailLimit {
    fn default() -> Self {
        Self {
            per_session: 10,
            window_ms: 600_000,
        }
    }
}
