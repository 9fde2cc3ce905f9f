//! authentik's email verification stage as a stable-ABI stage plugin.
//!
//! The stage sends the flow's pending user a mail with a one-time link back into the
//! flow, shows "check your inbox" with a rate-limited "Send Email again.", and passes
//! when the link is confirmed (optionally activating the user). The behaviour follows
//! `shared/spec/email-stage.md`; deliberate deviations are listed in the README and
//! each has a configuration switch.
//!
//! The logic ([`EmailStage`]) is plain Rust over [`plugin_api::Host`]; this crate
//! exports it as a `cdylib` through [`plugin_api::export_plugin!`] and as an `rlib`
//! for in-process use.

#![deny(missing_docs)]

pub mod compose;
pub mod config;
pub mod duration;
pub mod i18n;
pub mod link;
mod stage;
pub mod templates;

pub use stage::{
    challenge, post_challenge, too_many_attempts, EmailStage, COMPONENT, CONSENT_HEADER,
    MSG_NO_PENDING_USER, MSG_SENT, MSG_TEMPLATE_ERROR, MSG_VERIFIED, RATE_LIMIT_PREFIX,
};

use plugin_api::{Manifest, Plugin, Stage, StageError, StageKind};

/// The stage kind this plugin provides.
pub const KIND: &str = "email";

/// The plugin: one stage kind, `email`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmailStagePlugin;

impl Plugin for EmailStagePlugin {
    fn manifest(&self) -> Manifest {
        plugin_api::manifest![StageKind {
            kind: KIND.into(),
            component: COMPONENT.into(),
            config_schema: config::schema(),
        }]
    }

    fn new_stage(
        &self,
        kind: &str,
        name: &str,
        config_json: &str,
    ) -> Result<Box<dyn Stage>, StageError> {
        match kind {
            KIND => Ok(Box::new(EmailStage::new(name, config_json)?)),
            other => Err(StageError::UnknownKind(other.into())),
        }
    }
}

plugin_api::export_plugin!(EmailStagePlugin);
