//! The email stage's configuration: authentik's field names and defaults, plus the
//! switches that restore authentik's behaviour where we deliberately differ.

use std::path::PathBuf;

use plugin_api::schemars::JsonSchema;
use plugin_api::token::MIN_KEY_LEN;
use plugin_api::{MailRoute, SmtpSettings, StageError};
use serde::{Deserialize, Serialize};

use crate::duration::{self, Duration};
use crate::templates::BUILTIN_TEMPLATES;

/// Which address the resend rate limit is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "plugin_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    /// The address the mail actually goes to (the `email` override when set). Default.
    Recipient,
    /// The pending user's own email, as authentik does.
    PendingUserEmail,
}

// The JSON Schema derived from this type is the manifest's `config_schema`
// (`schema()`): the host checks types and ranges against it before the plugin is
// called; `validate` keeps the checks a schema cannot say, each naming its field.
/// The email stage's configuration as an operator writes it (JSON): authentik's
/// field names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "plugin_api::schemars")]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Use the host's global SMTP settings and `From` address.
    pub use_global_settings: bool,
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// SMTP AUTH user.
    pub username: String,
    /// SMTP AUTH password.
    #[schemars(extend("writeOnly" = true))]
    pub password: String,
    /// STARTTLS.
    pub use_tls: bool,
    /// Implicit TLS.
    pub use_ssl: bool,
    /// SMTP socket timeout, seconds.
    #[schemars(range(min = 1))]
    pub timeout: i64,
    /// `From` when not using global settings.
    #[schemars(extend("format" = "email"), length(max = 254))]
    pub from_address: String,
    /// Sends allowed inside the window.
    #[schemars(range(min = 1))]
    pub recovery_max_attempts: i64,
    /// Rate-limit window. Format: hours=1;minutes=2;seconds=3
    pub recovery_cache_timeout: String,
    /// Activate the user when the link is confirmed.
    pub activate_user_on_success: bool,
    /// Link validity; one minute is added. Format: hours=3;minutes=17;seconds=300
    pub token_expiry: String,
    /// Mail subject, sent as written. Unset: the catalog's subject for the template,
    /// in the reader's language and naming the brand (authentik's default subject
    /// was its own name, "authentik").
    pub subject: Option<String>,
    /// Template name.
    pub template: String,
    /// Directory of custom templates (authentik's template `DIRS`).
    pub custom_templates_dir: Option<String>,
    /// Length of the token key over `[A-Za-z0-9]` (authentik's `default_token_length`).
    #[schemars(range(min = MIN_KEY_LEN, max = 255))]
    pub token_length: i64,
    /// Deviation switch: revoke the user's other tokens from this stage on success.
    pub revoke_previous_tokens: bool,
    /// Deviation switch: count the initial send on GET against the rate limit.
    pub rate_limit_initial_send: bool,
    /// Deviation switch: which address the rate limit is keyed on.
    pub rate_limit_key: RateLimitKey,
    /// Deviation switch: any restored token lets this stage pass, not only its own.
    pub restore_any_stage: bool,
    /// Hardening: `jane+tag@x` counts against the limit of `jane@x`.
    pub rate_limit_fold_plus_tag: bool,
    /// Hardening: sends allowed per user inside the window, whatever the addresses
    /// (0 = no per-user limit).
    #[schemars(range(min = 0))]
    pub rate_limit_per_user: i64,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            use_global_settings: false,
            host: "localhost".into(),
            port: 25,
            username: String::new(),
            password: String::new(),
            use_tls: false,
            use_ssl: false,
            timeout: 10,
            from_address: "system@authentik.local".into(),
            recovery_max_attempts: 5,
            recovery_cache_timeout: "minutes=5".into(),
            activate_user_on_success: false,
            token_expiry: "minutes=30".into(),
            subject: None,
            template: "email/password_reset.html".into(),
            custom_templates_dir: None,
            token_length: 60,
            revoke_previous_tokens: true,
            rate_limit_initial_send: true,
            rate_limit_key: RateLimitKey::Recipient,
            restore_any_stage: false,
            rate_limit_fold_plus_tag: true,
            rate_limit_per_user: 10,
        }
    }
}

/// A validated configuration, durations parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where mail goes.
    pub route: MailRoute,
    /// `From` for stage settings; `None` with global settings.
    pub from_address: Option<lettre::Address>,
    /// Sends allowed inside the window (≥ 1).
    pub max_attempts: u32,
    /// Rate-limit window.
    pub window: Duration,
    /// Activate on success.
    pub activate_user_on_success: bool,
    /// Link validity, without the extra minute.
    pub token_expiry: Duration,
    /// Subject override (CR/LF free); `None` takes the catalog's.
    pub subject: Option<String>,
    /// Template name.
    pub template: String,
    /// Custom templates directory.
    pub custom_templates_dir: Option<PathBuf>,
    /// Token key length.
    pub token_length: usize,
    /// See [`RawConfig::revoke_previous_tokens`].
    pub revoke_previous_tokens: bool,
    /// See [`RawConfig::rate_limit_initial_send`].
    pub rate_limit_initial_send: bool,
    /// See [`RawConfig::rate_limit_key`].
    pub rate_limit_key: RateLimitKey,
    /// See [`RawConfig::restore_any_stage`].
    pub restore_any_stage: bool,
    /// See [`RawConfig::rate_limit_fold_plus_tag`].
    pub rate_limit_fold_plus_tag: bool,
    /// Sends per user inside the window; `None` for no per-user limit.
    pub per_user_max: Option<u32>,
}

/// Longest link validity accepted: 100 years.
const MAX_TOKEN_EXPIRY_MS: i64 = 100 * 366 * 86_400_000;

/// Largest accepted configuration document.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

fn cfg_err(field: &str, why: impl std::fmt::Display) -> StageError {
    StageError::Config(format!("{field}: {why}"))
}

impl Config {
    /// Parses and validates a JSON configuration.
    pub fn from_json(json: &str) -> Result<Self, StageError> {
        if json.len() > MAX_CONFIG_BYTES {
            return Err(StageError::Config(format!(
                "configuration is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                json.len()
            )));
        }
        let raw: RawConfig = if json.trim().is_empty() {
            RawConfig::default()
        } else {
            plugin_api::config::parse(json)?
        };
        raw.validate()
    }
}

impl RawConfig {
    /// Checks every field and parses the durations.
    pub fn validate(self) -> Result<Config, StageError> {
        let port = u16::try_from(self.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| cfg_err("port", format!("{} is not a TCP port (1-65535)", self.port)))?;
        if self.timeout <= 0 {
            return Err(cfg_err("timeout", "must be a positive number of seconds"));
        }
        if !self.use_global_settings && self.use_tls && self.use_ssl {
            return Err(cfg_err(
                "use_tls",
                "use_tls (STARTTLS) and use_ssl (implicit TLS) cannot both be enabled",
            ));
        }
        for (field, v) in [("host", &self.host), ("username", &self.username)] {
            if v.contains(['\r', '\n']) {
                return Err(cfg_err(field, "must not contain line breaks"));
            }
        }
        let from_address = if self.use_global_settings {
            None
        } else {
            Some(
                self.from_address
                    .parse::<lettre::Address>()
                    .ok()
                    .filter(|_| self.from_address.len() <= 254)
                    .ok_or_else(|| cfg_err("from_address", "Enter a valid email address."))?,
            )
        };
        if self.recovery_max_attempts < 1 {
            return Err(cfg_err(
                "recovery_max_attempts",
                "must be at least 1 (authentik accepts 0 and then fails on every resend)",
            ));
        }
        let max_attempts = u32::try_from(self.recovery_max_attempts)
            .map_err(|_| cfg_err("recovery_max_attempts", "too large"))?;
        let per_user_max = match u32::try_from(self.rate_limit_per_user) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(cfg_err(
                    "rate_limit_per_user",
                    "must be 0 (no per-user limit) or a positive number",
                ))
            }
        };
        let window = duration::parse(&self.recovery_cache_timeout)
            .map_err(|e| cfg_err("recovery_cache_timeout", e))?;
        let token_expiry =
            duration::parse(&self.token_expiry).map_err(|e| cfg_err("token_expiry", e))?;
        if token_expiry.as_millis() <= 0 {
            return Err(cfg_err("token_expiry", "must be a positive duration"));
        }
        if token_expiry.as_millis() > MAX_TOKEN_EXPIRY_MS {
            return Err(cfg_err(
                "token_expiry",
                "must be at most 100 years (dates past year 9999 cannot be shown in mail)",
            ));
        }
        if (self.subject.as_deref()).is_some_and(|s| s.contains(['\r', '\n'])) {
            return Err(cfg_err("subject", "must not contain line breaks"));
        }
        let custom_templates_dir = self.custom_templates_dir.map(PathBuf::from);
        let builtin = BUILTIN_TEMPLATES.iter().any(|(n, _)| *n == self.template);
        let custom = !builtin
            && self.template.ends_with(".html")
            && crate::templates::safe_relative(&self.template)
            && custom_templates_dir
                .as_ref()
                .is_some_and(|d| d.join(&self.template).is_file());
        if !builtin && !custom {
            return Err(cfg_err(
                "template",
                format!("Invalid template '{}' specified.", self.template),
            ));
        }
        if self.token_length < MIN_KEY_LEN as i64 || self.token_length > 255 {
            return Err(cfg_err(
                "token_length",
                format!("must be between {MIN_KEY_LEN} (128 bits) and 255"),
            ));
        }
        let route = if self.use_global_settings {
            MailRoute::Global
        } else {
            MailRoute::Smtp(SmtpSettings {
                host: self.host,
                port,
                username: self.username,
                password: self.password,
                use_tls: self.use_tls,
                use_ssl: self.use_ssl,
                timeout_secs: self.timeout as u64,
            })
        };
        Ok(Config {
            route,
            from_address,
            max_attempts,
            window,
            activate_user_on_success: self.activate_user_on_success,
            token_expiry,
            subject: self.subject,
            template: self.template,
            custom_templates_dir,
            token_length: self.token_length as usize,
            revoke_previous_tokens: self.revoke_previous_tokens,
            rate_limit_initial_send: self.rate_limit_initial_send,
            rate_limit_key: self.rate_limit_key,
            restore_any_stage: self.restore_any_stage,
            rate_limit_fold_plus_tag: self.rate_limit_fold_plus_tag,
            per_user_max,
        })
    }
}

/// JSON Schema of the configuration, for the manifest: derived from [`RawConfig`].
pub fn schema() -> serde_json::Value {
    plugin_api::config::schema::<RawConfig>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match Config::from_json(json) {
            Err(StageError::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_authentiks() {
        let c = Config::from_json("{}").unwrap();
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.window.whole_seconds(), 300);
        assert_eq!(c.token_expiry.whole_seconds(), 1800);
        assert_eq!(c.subject, None);
        assert_eq!(c.template, "email/password_reset.html");
        assert_eq!(
            c.from_address.unwrap().to_string(),
            "system@authentik.local"
        );
        match c.route {
            MailRoute::Smtp(s) => {
                assert_eq!(
                    (s.host.as_str(), s.port, s.timeout_secs),
                    ("localhost", 25, 10)
                )
            }
            MailRoute::Global => panic!("stage settings are the default"),
        }
        assert!(c.revoke_previous_tokens && c.rate_limit_initial_send && !c.restore_any_stage);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(err(r#"{"token_expiry": "hours=3,minutes=17,seconds=300"}"#)
            .contains("is not in the correct format of 'hours=3;minutes=1'."));
        assert!(err(r#"{"recovery_cache_timeout": "minutes=inf"}"#).contains("out of range"));
        assert!(err(r#"{"recovery_max_attempts": 0}"#).contains("at least 1"));
        assert!(err(r#"{"template": "email/nope.html"}"#)
            .contains("Invalid template 'email/nope.html' specified."));
        assert!(err(r#"{"use_tls": true, "use_ssl": true}"#).contains("cannot both"));
        assert!(err(r#"{"from_address": "not an address"}"#).contains("valid email"));
        assert!(err(r#"{"port": 70000}"#).contains("TCP port"));
        assert!(err(r#"{"subject": "a\r\nBcc: x@y.z"}"#).contains("line breaks"));
        assert!(err(r#"{"token_length": 10}"#).contains("128 bits"));
        assert!(err(r#"{"token_expiry": "minutes=-30"}"#).contains("positive"));
        assert!(err(r#"{"token_expiry": "seconds=0"}"#).contains("positive"));
        assert!(err(r#"{"token_expiry": "days=3000000"}"#).contains("100 years"));
        assert!(err(r#"{"rate_limit_per_user": -1}"#).contains("rate_limit_per_user"));
        assert!(err(r#"{"colour": "blue"}"#).contains("unknown field"));
        assert!(err(r#"{"port": "25"}"#).contains("invalid type"));
        assert!(err("{\"port\": 25,").contains("line 1"));
        assert!(err(&format!("{{\"subject\": \"{}\"}}", "a".repeat(70_000))).contains("limit"));
    }

    #[test]
    fn global_settings_ignore_stage_fields() {
        let c = Config::from_json(r#"{"use_global_settings": true, "use_tls": true, "use_ssl": true, "from_address": "x"}"#)
            .unwrap();
        assert_eq!(c.route, MailRoute::Global);
        assert!(c.from_address.is_none());
    }

    #[test]
    fn schema_is_derived_with_every_default_and_range() {
        let s = schema();
        let props = s["properties"].as_object().unwrap();
        let defaults = serde_json::to_value(RawConfig::default()).unwrap();
        let defaults = defaults.as_object().unwrap();
        assert_eq!(props.len(), defaults.len());
        for (field, value) in defaults {
            assert_eq!(props[field]["default"], *value, "{field}");
        }
        assert_eq!(props["port"]["minimum"], 1);
        assert_eq!(props["port"]["maximum"], 65535);
        assert_eq!(props["token_length"]["minimum"], MIN_KEY_LEN);
        assert_eq!(props["password"]["writeOnly"], true);
        assert_eq!(props["from_address"]["maxLength"], 254);
        assert!(props["token_expiry"]["description"]
            .as_str()
            .unwrap()
            .contains("hours=3;minutes=17"));
        assert_eq!(s["additionalProperties"], false);
        assert!(s.get("required").is_none(), "every field has a default");
    }
}
