//! What a plugin implements, as plain Rust traits.

use crate::host::Host;
use crate::types::{FlowToken, HookResult, MailRoute, Manifest, StageRequest};
use crate::StageError;

/// One configured stage instance (a stage binding with its validated configuration).
///
/// Hooks take `&self` and may run concurrently from several host threads.
pub trait Stage: Send + Sync {
    /// The executor fetched the challenge (HTTP GET).
    fn get(&self, req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError>;
    /// A challenge response arrived (HTTP POST): called for **every** POST, valid
    /// or not. The name is authentik's, whose executor routes a response here when
    /// the stage does no validation of its own; this hook decides validity itself.
    fn challenge_invalid(
        &self,
        req: &StageRequest<'_>,
        response: &serde_json::Value,
        host: &dyn Host,
    ) -> Result<HookResult, StageError>;
    /// The plan was restored from a flow token and the confirmation step was passed;
    /// `token` is the consumed token. Called instead of [`Stage::get`]. Default:
    /// [`Stage::get`], for a stage that treats a restored plan like any other.
    fn restore(
        &self,
        req: &StageRequest<'_>,
        token: &FlowToken,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let _ = token;
        self.get(req, host)
    }

    /// How this stage's mail is delivered, when it sends any: the host's global
    /// settings or the stage's own SMTP settings. The host asks once, when it builds
    /// the stage, and keeps credentials in memory only: a queued mail names its stage,
    /// never a password. Default: `None` (the stage sends no mail of its own).
    fn mail_route(&self) -> Option<MailRoute> {
        None
    }
}

/// A plugin: a manifest and a constructor for its stage kinds.
pub trait Plugin: Send + Sync + 'static {
    /// Describes the plugin and its stage kinds.
    fn manifest(&self) -> Manifest;
    /// Validates `config_json` for `kind` and builds a stage named `name`.
    fn new_stage(
        &self,
        kind: &str,
        name: &str,
        config_json: &str,
    ) -> Result<Box<dyn Stage>, StageError>;
}
