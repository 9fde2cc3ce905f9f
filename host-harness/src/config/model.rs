//! The configuration as read from TOML: every section, its defaults and its own
//! checks.

use std::path::{Path, PathBuf};

use plugin_api::SmtpSettings;
use serde::Deserialize;

use crate::flow::FlowDef;
use crate::http::{HttpSettings, ServerLimits, SessionLimits};
use crate::mail::{Delivery, OutboxConfig};
use crate::stages::fault::{FaultPolicy, OnPluginFailure};
use crate::stages::{InvalidResponseAction, MailLimit};

/// Why a host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        error: std::io::Error,
    },
    /// The TOML is malformed.
    #[error("malformed configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] plugin_api::LoadError),
    /// A stage configuration was refused.
    #[error("stage '{stage}': {error}")]
    Stage {
        /// Binding name.
        stage: String,
        /// The plugin's or built-in stage's error.
        error: plugin_api::StageError,
    },
    /// A stage configuration does not match its kind's schema; the plugin was not
    /// called.
    #[error("stage '{stage}': configuration at {path}: {reason}")]
    Schema {
        /// Binding name.
        stage: String,
        /// JSON path of the first value refused (`$.port`).
        path: String,
        /// What the schema requires there (the value itself is not repeated).
        reason: String,
    },
    /// A plugin declares a config schema that is not a usable JSON Schema.
    #[error(
        "plugin '{plugin}' declares an unusable config schema for stage kind '{kind}': {reason}"
    )]
    PluginSchema {
        /// Plugin name.
        plugin: String,
        /// Stage kind.
        kind: String,
        /// Why the validator refused it.
        reason: String,
    },
    /// A backend could not be opened.
    #[error("backend: {0}")]
    Backend(String),
    /// A pinned plugin's file is not the pinned build.
    #[error("plugin {path} is not the pinned build: its sha256 is {actual}, the configuration pins {pinned}")]
    PinMismatch {
        /// Library path.
        path: String,
        /// Digest in the configuration.
        pinned: String,
        /// Digest of the file.
        actual: String,
    },
}

/// SMTP settings in the host configuration (authentik's `email.*`). `Debug` never
/// shows the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host.
    #[serde(default = "localhost")]
    pub host: String,
    /// Port.
    #[serde(default = "port25")]
    pub port: u16,
    /// AUTH user.
    #[serde(default)]
    pub username: String,
    /// AUTH password.
    #[serde(default)]
    pub password: String,
    /// STARTTLS.
    #[serde(default)]
    pub use_tls: bool,
    /// Implicit TLS.
    #[serde(default)]
    pub use_ssl: bool,
    /// Timeout, seconds.
    #[serde(default = "ten")]
    pub timeout: u64,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("use_tls", &self.use_tls)
            .field("use_ssl", &self.use_ssl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn localhost() -> String {
    "localhost".into()
}
fn port25() -> u16 {
    25
}
fn ten() -> u64 {
    10
}
fn default_from() -> String {
    "authentik@localhost".into()
}
fn default_db() -> String {
    "sqlite://host.db".into()
}
pub(crate) fn default_cache_pool() -> u32 {
    4
}
fn default_deployment() -> String {
    "default".into()
}
fn default_base() -> String {
    "http://localhost:9000".into()
}

/// Mail settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// Global `From` (authentik's `email.from`).
    #[serde(default = "default_from")]
    pub from: String,
    /// Deliver into this directory (one `.eml` per message).
    pub maildir: Option<PathBuf>,
    /// Deliver over SMTP.
    pub smtp: Option<SmtpConfig>,
    /// Extra CA certificate (PEM) trusted for SMTP TLS, e.g. a private relay's.
    pub ca_file: Option<PathBuf>,
    /// Delivery workers and retry rules.
    #[serde(default)]
    pub outbox: OutboxSettings,
}

/// `[mail.outbox]`: how the delivery workers run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Worker threads (and most SMTP connections at once).
    pub workers: usize,
    /// Messages claimed at once by a worker.
    pub batch: usize,
    /// Seconds a claim lasts before a message held by a dead worker is taken again.
    pub lease_secs: u64,
    /// Attempts before a transient failure becomes a dead letter.
    pub max_attempts: u32,
    /// Hours after which an undelivered message becomes a dead letter.
    pub max_age_hours: u64,
    /// Milliseconds within which delivery of a new mail starts, at random (0 = at
    /// once). Keeps delivery work from being timed by the request that queued it.
    pub wake_jitter_ms: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        let d = OutboxConfig::default();
        Self {
            workers: d.workers,
            batch: d.batch,
            lease_secs: (d.lease_ms / 1000) as u64,
            max_attempts: d.retry.max_attempts,
            max_age_hours: (d.retry.max_age_ms / 3_600_000) as u64,
            wake_jitter_ms: d.wake_jitter.as_millis() as u64,
        }
    }
}

impl OutboxSettings {
    /// The worker configuration these settings describe.
    pub fn to_config(&self) -> Result<OutboxConfig, ConfigError> {
        if self.workers == 0 || self.workers > 256 || self.batch == 0 || self.batch > 1000 {
            return Err(ConfigError::Invalid(
                "mail.outbox: workers must be 1-256 and batch 1-1000".into(),
            ));
        }
        if self.lease_secs == 0 || self.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "mail.outbox: lease_secs and max_attempts must be at least 1".into(),
            ));
        }
        let mut c = OutboxConfig {
            workers: self.workers,
            batch: self.batch,
            lease_ms: (self.lease_secs.min(86_400) * 1000) as i64,
            wake_jitter: std::time::Duration::from_millis(self.wake_jitter_ms.min(60_000)),
            ..Default::default()
        };
        c.retry.max_attempts = self.max_attempts;
        c.retry.max_age_ms = (self.max_age_hours.min(24 * 365) * 3_600_000) as i64;
        Ok(c)
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: default_from(),
            maildir: None,
            smtp: None,
            ca_file: None,
            outbox: OutboxSettings::default(),
        }
    }
}

/// `[http]`: connection limits and sessions of `serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Seconds a client has to send a request head.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request body.
    pub body_timeout_secs: u64,
    /// Seconds a connection may sit with nothing in flight.
    pub idle_timeout_secs: u64,
    /// Most connections at once (lowered to what the descriptor limit allows).
    pub max_connections: usize,
    /// Seconds shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Most sessions held in memory.
    pub max_sessions: usize,
    /// Minutes of inactivity after which a session ends.
    pub session_idle_minutes: u64,
    /// Hours after which a session ends, however busy.
    pub session_max_hours: u64,
    /// Keep sessions in the store so several hosts share them; default: on when the
    /// database is PostgreSQL.
    pub shared_sessions: Option<bool>,
    /// Answer with `Server-Timing: app;dur=<ms>`, the server's own time for the
    /// request, so a benchmark separates it from the client's. Off by default: it
    /// would hand a remote timing attack the server's time without network noise.
    pub server_timing: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let d = HttpSettings::default();
        Self {
            header_read_timeout_secs: d.server.header_read_timeout.as_secs(),
            body_timeout_secs: d.server.body_timeout.as_secs(),
            idle_timeout_secs: d.server.idle_timeout.as_secs(),
            max_connections: d.server.max_connections,
            shutdown_grace_secs: d.server.shutdown_grace.as_secs(),
            max_sessions: d.sessions.max_sessions,
            session_idle_minutes: (d.sessions.idle_ms / 60_000) as u64,
            session_max_hours: (d.sessions.absolute_ms / 3_600_000) as u64,
            shared_sessions: None,
            server_timing: false,
        }
    }
}

impl HttpConfig {
    /// The server settings these describe, for a host on `database`.
    pub fn to_settings(&self, database: &str) -> Result<HttpSettings, ConfigError> {
        let secs = |name: &str, v: u64| {
            if v == 0 || v > 86_400 {
                Err(ConfigError::Invalid(format!(
                    "http.{name}: must be 1-86400 seconds"
                )))
            } else {
                Ok(std::time::Duration::from_secs(v))
            }
        };
        if self.max_connections == 0 || self.max_sessions == 0 {
            return Err(ConfigError::Invalid(
                "http: max_connections and max_sessions must be at least 1".into(),
            ));
        }
        if self.session_idle_minutes == 0 || self.session_max_hours == 0 {
            return Err(ConfigError::Invalid(
                "http: session_idle_minutes and session_max_hours must be at least 1".into(),
            ));
        }
        Ok(HttpSettings {
            server: ServerLimits {
                header_read_timeout: secs(
                    "header_read_timeout_secs",
                    self.header_read_timeout_secs,
                )?,
                body_timeout: secs("body_timeout_secs", self.body_timeout_secs)?,
                idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs)?,
                max_connections: self.max_connections,
                shutdown_grace: secs("shutdown_grace_secs", self.shutdown_grace_secs)?,
            },
            sessions: SessionLimits {
                max_sessions: self.max_sessions,
                idle_ms: (self.session_idle_minutes.min(525_600) * 60_000) as i64,
                absolute_ms: (self.session_max_hours.min(8_760) * 3_600_000) as i64,
            },
            shared_sessions: self
                .shared_sessions
                .unwrap_or_else(|| is_postgres(database)),
            test_clock: None,
            server_timing: self.server_timing,
        })
    }
}

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `[limits]`: limits the host enforces whatever the plugins do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Mails one browser session may have queued within the window (0 = no limit).
    pub mails_per_session: u32,
    /// The window of `mails_per_session`, minutes.
    pub mails_per_session_minutes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            mails_per_session: 10,
            mails_per_session_minutes: 10,
        }
    }
}

impl LimitsConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.mails_per_session_minutes == 0 || self.mails_per_session_minutes > 10_080 {
            return Err(ConfigError::Invalid(
                "limits.mails_per_session_minutes: must be 1-10080".into(),
            ));
        }
        Ok(())
    }

    /// The executor's per-session mail limit.
    pub fn mail_limit(&self) -> MailLimit {
        MailLimit {
            per_session: self.mails_per_session,
            window_ms: self.mails_per_session_minutes.min(10_080) * 60_000,
        }
    }
}

/// `[templates]`: host-wide custom templates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Directory of custom templates, given to every stage whose configuration has
    /// a `custom_templates_dir` and does not set it (relative to the config file).
    pub dir: Option<PathBuf>,
}

/// A plugin library to load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Path of the `.so` / `.dylib` / `.dll`.
    pub path: PathBuf,
    /// SHA-256 of the library file, hex (`host-harness inspect` prints it): when
    /// set, a file with another digest is refused before it is loaded.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A stage binding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// Unique name.
    pub name: String,
    /// Kind: built-in or provided by a plugin.
    pub kind: String,
    /// Stage configuration.
    #[serde(default)]
    pub config: serde_json::Value,
    /// What an invalid response does.
    #[serde(default)]
    pub invalid_response_action: InvalidResponseAction,
    /// What a plugin hook that panics or fails does: `deny` (default) or `skip`.
    #[serde(default)]
    pub on_plugin_failure: OnPluginFailure,
    /// Milliseconds after which a plugin hook call is reported as slow (0 = never;
    /// default 1000). The call is not cut short.
    #[serde(default)]
    pub hook_timeout_ms: Option<u64>,
    /// Panics within `quarantine_window_secs` that quarantine the stage (0 = never;
    /// default 5).
    #[serde(default)]
    pub quarantine_after: Option<u32>,
    /// Locale of this stage when neither the user nor the request has one
    /// (before `[i18n] default_locale`).
    #[serde(default)]
    pub default_locale: Option<String>,
    /// The window panics are counted in, seconds (default 600, at most a day).
    #[serde(default)]
    pub quarantine_window_secs: Option<u64>,
    /// How long a quarantine lasts unless `host-harness plugins release` ends it
    /// earlier, seconds (default 300, at most a day).
    #[serde(default)]
    pub quarantine_secs: Option<u64>,
}

impl StageDef {
    /// The fault policy these settings describe, defaults filled in.
    pub fn fault_policy(&self) -> Result<FaultPolicy, ConfigError> {
        let d = FaultPolicy::default();
        let day = 86_400;
        let window = self.quarantine_window_secs.unwrap_or(d.window_ms / 1000);
        let cooldown = self.quarantine_secs.unwrap_or(d.cooldown_ms / 1000);
        if window == 0 || window > day || cooldown == 0 || cooldown > day {
            return Err(ConfigError::Invalid(format!(
                "stage '{}': quarantine_window_secs and quarantine_secs must be 1-86400",
                self.name
            )));
        }
        Ok(FaultPolicy {
            on_failure: self.on_plugin_failure,
            hook_timeout_ms: self.hook_timeout_ms.unwrap_or(d.hook_timeout_ms),
            quarantine_after: self.quarantine_after.unwrap_or(d.quarantine_after),
            window_ms: window * 1000,
            cooldown_ms: cooldown * 1000,
        })
    }
}

/// The whole host configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Public base URL; links are built from it.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// `sqlite://<path>`, `postgres://…` or `memory://` (not durable: only when asked
    /// for). Default: `sqlite://host.db` beside the configuration file.
    #[serde(default = "default_db")]
    pub database: String,
    /// PostgreSQL schema to use (created if missing); default `public`.
    #[serde(default)]
    pub database_schema: Option<String>,
    /// `memory://`, `redis://…` or `postgres://…`. When unset: the `database` if that
    /// is PostgreSQL (hosts that share a database then share their limits too, with
    /// no second server), else `memory://`. See [`HostConfig::cache_url`].
    #[serde(default)]
    pub cache: Option<String>,
    /// Most connections of a PostgreSQL cache's own pool.
    #[serde(default = "default_cache_pool")]
    pub cache_pool_size: u32,
    /// Name of this deployment: namespaces the shared cache's keys.
    #[serde(default = "default_deployment")]
    pub deployment: String,
    /// Mail.
    #[serde(default)]
    pub mail: MailConfig,
    /// HTTP server limits and sessions (`serve`).
    #[serde(default)]
    pub http: HttpConfig,
    /// Limits the host keeps for every plugin.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Locales requests may select and the default one.
    #[serde(default)]
    pub i18n: crate::i18n::I18nConfig,
    /// The operator's brand, passed to every stage (a flow may override fields).
    #[serde(default)]
    pub brand: crate::i18n::BrandConfig,
    /// Custom mail templates for every stage that takes a template directory.
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// Plugins.
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// Stage bindings.
    #[serde(default)]
    pub stages: Vec<StageDef>,
    /// Flows.
    #[serde(default)]
    pub flows: Vec<FlowDef>,
}

impl HostConfig {
    /// The cache URL in effect: `cache`, else the PostgreSQL `database`, else
    /// `memory://`.
    pub fn cache_url(&self) -> String {
        match &self.cache {
            Some(c) => c.clone(),
            None if is_postgres(&self.database) => self.database.clone(),
            None => "memory://".into(),
        }
    }

    /// Reads a TOML file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let mut cfg: Self = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in &mut cfg.plugins {
            if p.path.is_relative() {
                p.path = base.join(&p.path);
            }
        }
        for d in [
            &mut cfg.mail.maildir,
            &mut cfg.mail.ca_file,
            &mut cfg.templates.dir,
        ]
        .into_iter()
        .flatten()
        {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        if let Some(rest) = cfg.database.strip_prefix("sqlite://") {
            if Path::new(rest).is_relative() {
                cfg.database = format!("sqlite://{}", base.join(rest).display());
            }
        }
        Ok(cfg)
    }

    /// The global mail delivery.
    pub fn delivery(&self) -> Result<Delivery, ConfigError> {
        match (&self.mail.smtp, &self.mail.maildir) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid(
                "mail: set either smtp or maildir, not both".into(),
            )),
            (Some(s), None) => {
                if s.use_tls && s.use_ssl {
                    return Err(ConfigError::Invalid(
                        "mail.smtp: use_tls and use_ssl cannot both be set".into(),
                    ));
                }
                Ok(Delivery::Smtp(SmtpSettings {
                    host: s.host.clone(),
                    port: s.port,
                    username: s.username.clone(),
                    password: s.password.clone(),
                    use_tls: s.use_tls,
                    use_ssl: s.use_ssl,
                    timeout_secs: s.timeout,
                }))
            }
            (None, Some(d)) => Ok(Delivery::MailDir(d.clone())),
            (None, None) => Ok(Delivery::MailDir(PathBuf::from("mail"))),
        }
    }
}
