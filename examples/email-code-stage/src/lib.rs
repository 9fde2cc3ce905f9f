//! Example plugin, built only with the plugin kit: stage kind `email-code`, sign-in
//! with a 6-digit code mailed to the pending user. The code is kept hashed in the
//! flow's own state, wrong codes are limited, codes sent are limited per address,
//! and an unknown user (a placeholder from an identification stage that pretends
//! users exist) gets the same page, messages and timing as a known one: the
//! mail to it is a decoy.

use plugin_api::schemars::JsonSchema;
use plugin_api::{export_plugin, Manifest, Plugin, Stage, StageError, StageKind};
use serde::Deserialize;

mod stage;
#[cfg(test)]
mod tests;

/// Configuration of an `email-code` stage.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(crate = "plugin_api::schemars")]
#[serde(deny_unknown_fields, default)]
pub struct CodeConfig {
    /// Subject of the mail.
    #[schemars(length(min = 1, max = 200))]
    pub subject: String,
    /// Minutes a code stays valid.
    #[schemars(range(min = 1, max = 60))]
    pub valid_minutes: u32,
    /// Wrong codes before the flow is denied.
    #[schemars(range(min = 1, max = 20))]
    pub max_wrong: u32,
    /// Codes mailed per address per hour (the first included).
    #[schemars(range(min = 1, max = 100))]
    pub codes_per_hour: u32,
}

impl Default for CodeConfig {
    fn default() -> Self {
        let subject = "Your sign-in code".into();
        Self {
            subject,
            valid_minutes: 10,
            max_wrong: 5,
            codes_per_hour: 5,
        }
    }
}

/// The plugin: one stage kind, `email-code`.
pub struct EmailCodePlugin;

impl Plugin for EmailCodePlugin {
    fn manifest(&self) -> Manifest {
        let config_schema = plugin_api::config::schema::<CodeConfig>();
        let kind = "email-code".into();
        plugin_api::manifest![StageKind {
            kind,
            component: "xak-form".into(),
            config_schema
        }]
    }
    fn new_stage(
        &self,
        kind: &str,
        _name: &str,
        config: &str,
    ) -> Result<Box<dyn Stage>, StageError> {
        if kind != "email-code" {
            return Err(StageError::UnknownKind(kind.into()));
        }
        Ok(Box::new(stage::CodeStage::new(plugin_api::config::parse(
            config,
        )?)))
    }
}

export_plugin!(EmailCodePlugin);
