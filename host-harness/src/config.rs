//! Host configuration (TOML) and assembly of an [`Executor`] from it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plugin_api::{load_plugin, Plugin, SmtpSettings};
use serde::Deserialize;

use crate::builtin::{Builtin, KINDS};
use crate::cache::{Cache, MemoryCache, PostgresCache, RedisCache};
use crate::clock::{Clock, SystemClock};
use crate::entropy::{Entropy, SystemEntropy};
use crate::executor::{
    Binding, Executor, ExecutorSettings, FlowDef, InvalidResponseAction, MailLimit, Services,
    StageImpl,
};
use crate::http::{HttpSettings, ServerLimits, SessionLimits};
use crate::mail::{Delivery, MailQueue, MailRoutes, OutboxConfig, TestEmailError};
use crate::store::{HostStore, MemoryStore, PostgresStore, SqliteStore};

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
    /// A backend could not be opened.
    #[error("backend: {0}")]
    Backend(String),
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
fn default_cache_pool() -> u32 {
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
        })
    }
}

fn is_postgres(url: &str) -> bool {
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
    fn check(&self) -> Result<(), ConfigError> {
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

/// A plugin library to load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Path of the `.so` / `.dylib` / `.dll`.
    pub path: PathBuf,
}

/// A stage binding.
#[derive(Debug, Clone, Deserialize)]
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
        for d in [&mut cfg.mail.maildir, &mut cfg.mail.ca_file]
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

/// Opens a store from a URL: `sqlite://<path>`, `postgres://…` (in `schema`) or
/// `memory://`.
pub fn open_store_in(url: &str, schema: Option<&str>) -> Result<Arc<dyn HostStore>, ConfigError> {
    if is_postgres(url) {
        return PostgresStore::open(url, schema)
            .map(|s| Arc::new(s) as Arc<dyn HostStore>)
            .map_err(|e| ConfigError::Backend(format!("{}: {e}", redact_url(url))));
    }
    open_store(url)
}

/// A backend URL fit for a message: a password in the URL, or in a PostgreSQL
/// `key=value` connection string, becomes `***`; text that parses as neither is
/// shown only up to its scheme.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    if url.contains('=') && !url.contains("://") {
        return url
            .split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "…".into(),
    }
}

/// Opens a cache from a URL: `memory://`, `redis://…` or `postgres://…` (in the
/// `public` schema, with a pool of 4); keys under `namespace`. See [`open_cache_in`].
pub fn open_cache(url: &str, namespace: &str) -> Result<Arc<dyn Cache>, ConfigError> {
    open_cache_in(url, namespace, None, default_cache_pool())
}

/// Like [`open_cache`]; a PostgreSQL cache uses `schema` and at most `pool_size`
/// connections of its own.
pub fn open_cache_in(
    url: &str,
    namespace: &str,
    schema: Option<&str>,
    pool_size: u32,
) -> Result<Arc<dyn Cache>, ConfigError> {
    let backend =
        |e: crate::cache::CacheError| ConfigError::Backend(format!("{}: {e}", redact_url(url)));
    if url == "memory://" {
        return Ok(Arc::new(MemoryCache::new()));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return RedisCache::open(url, namespace)
            .map(|c| Arc::new(c) as Arc<dyn Cache>)
            .map_err(backend);
    }
    if is_postgres(url) {
        return PostgresCache::open(url, schema, namespace, pool_size)
            .map(|c| Arc::new(c) as Arc<dyn Cache>)
            .map_err(backend);
    }
    Err(ConfigError::Invalid(format!(
        "cache: unsupported URL '{}' (use memory://, redis://… or postgres://…)",
        redact_url(url)
    )))
}

/// Opens a store from a URL: `sqlite://<path>` or `memory://` (see [`open_store_in`]).
pub fn open_store(url: &str) -> Result<Arc<dyn HostStore>, ConfigError> {
    if is_postgres(url) {
        return open_store_in(url, None);
    }
    if url == "memory://" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(ConfigError::Invalid(
                "database: sqlite:// needs a file path".into(),
            ));
        }
        let p = Path::new(path);
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConfigError::Backend(format!("{}: {e}", dir.display())))?;
        }
        return SqliteStore::open(p)
            .map(|s| Arc::new(s) as Arc<dyn HostStore>)
            .map_err(|e| ConfigError::Backend(format!("{url}: {e}")));
    }
    Err(ConfigError::Invalid(format!(
        "database: unsupported URL '{}' (use sqlite://<path>, postgres://… or memory://)",
        redact_url(url)
    )))
}

/// Backends an executor runs on.
pub struct Backends {
    /// Storage.
    pub store: Arc<dyn HostStore>,
    /// Cache.
    pub cache: Arc<dyn Cache>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub entropy: Arc<dyn Entropy>,
    /// Mail delivery workers.
    pub outbox: OutboxConfig,
}

impl Backends {
    /// The embedded defaults for `cfg`: its database, an in-process cache, the system clock.
    pub fn from_config(cfg: &HostConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            store: open_store_in(&cfg.database, cfg.database_schema.as_deref())?,
            cache: open_cache_in(
                &cfg.cache_url(),
                &format!("ih:{}", cfg.deployment),
                cfg.database_schema.as_deref(),
                cfg.cache_pool_size,
            )?,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SystemEntropy),
            outbox: cfg.mail.outbox.to_config()?,
        })
    }
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Loads the plugin libraries named in `cfg`.
pub fn load_plugins(cfg: &HostConfig) -> Result<Vec<Arc<dyn Plugin>>, ConfigError> {
    cfg.plugins
        .iter()
        .map(|p| Ok(Arc::new(load_plugin(&p.path)?) as Arc<dyn Plugin>))
        .collect()
}

/// Builds one stage binding: a built-in stage, or a plugin's (the plugin validates
/// its configuration).
fn build_binding(def: &StageDef, plugins: &[Arc<dyn Plugin>]) -> Result<Binding, ConfigError> {
    let stage_err = |error| ConfigError::Stage {
        stage: def.name.clone(),
        error,
    };
    let imp = if let Some(b) = Builtin::from_config(&def.kind, &def.config) {
        StageImpl::Builtin(b.map_err(stage_err)?)
    } else {
        let provider = plugins.iter().find_map(|p| {
            let m = p.manifest();
            m.stages
                .iter()
                .any(|k| k.kind == def.kind)
                .then_some((p, m.name))
        });
        let Some((plugin, namespace)) = provider else {
            return Err(ConfigError::Invalid(format!(
                "stage '{}': kind '{}' is neither built in ({}) nor provided by a loaded plugin",
                def.name,
                def.kind,
                KINDS.join(", ")
            )));
        };
        let config = if def.config.is_null() {
            "{}".to_string()
        } else {
            def.config.to_string()
        };
        let stage = plugin
            .new_stage(&def.kind, &def.name, &config)
            .map_err(stage_err)?;
        StageImpl::Plugin { stage, namespace }
    };
    Ok(Binding {
        name: def.name.clone(),
        kind: def.kind.clone(),
        imp,
        invalid_response_action: def.invalid_response_action,
    })
}

/// Builds every stage binding of `cfg`; names must be unique.
pub fn build_bindings(
    cfg: &HostConfig,
    plugins: &[Arc<dyn Plugin>],
) -> Result<Vec<Binding>, ConfigError> {
    let mut names = HashSet::new();
    let mut bindings = Vec::new();
    for def in &cfg.stages {
        if !names.insert(def.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "stage name '{}' is used twice",
                def.name
            )));
        }
        bindings.push(build_binding(def, plugins)?);
    }
    Ok(bindings)
}

/// Checks slugs and that every flow binds configured stages.
fn check_flows(cfg: &HostConfig) -> Result<(), ConfigError> {
    let names: HashSet<&str> = cfg.stages.iter().map(|s| s.name.as_str()).collect();
    let mut slugs = HashSet::new();
    for f in &cfg.flows {
        if !valid_slug(&f.slug) {
            return Err(ConfigError::Invalid(format!(
                "flow slug '{}' must be 1-50 of a-z, 0-9, '-', '_'",
                f.slug
            )));
        }
        if !slugs.insert(f.slug.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "flow slug '{}' is used twice",
                f.slug
            )));
        }
        if let Some(s) = f.stages.iter().find(|s| !names.contains(s.as_str())) {
            return Err(ConfigError::Invalid(format!(
                "flow '{}' binds stage '{s}', which is not configured",
                f.slug
            )));
        }
    }
    Ok(())
}

/// Checks the backend URLs without connecting to anything or creating a file.
fn check_backend_urls(cfg: &HostConfig) -> Result<(), ConfigError> {
    let db = &cfg.database;
    if is_postgres(db) {
        db.parse::<postgres::Config>()
            .map_err(|e| ConfigError::Invalid(format!("database '{}': {e}", redact_url(db))))?;
    } else if db != "memory://" && db.strip_prefix("sqlite://").is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid(format!(
            "database: unsupported URL '{}' (use sqlite://<path>, postgres://… or memory://)",
            redact_url(db)
        )));
    }
    let cache = &cfg.cache_url();
    if cache.starts_with("redis://") || cache.starts_with("rediss://") {
        redis::Client::open(cache.as_str())
            .map_err(|e| ConfigError::Invalid(format!("cache '{}': {e}", redact_url(cache))))?;
    } else if is_postgres(cache) {
        cache
            .parse::<postgres::Config>()
            .map_err(|e| ConfigError::Invalid(format!("cache '{}': {e}", redact_url(cache))))?;
    } else if cache != "memory://" {
        return Err(ConfigError::Invalid(format!(
            "cache: unsupported URL '{}' (use memory://, redis://… or postgres://…)",
            redact_url(cache)
        )));
    }
    if cfg.cache_pool_size == 0 || cfg.cache_pool_size > 256 {
        return Err(ConfigError::Invalid(
            "cache_pool_size: must be 1-256".into(),
        ));
    }
    Ok(())
}

/// The extra CA certificates (PEM) the configuration names.
fn ca_roots(cfg: &HostConfig) -> Result<Vec<Vec<u8>>, ConfigError> {
    cfg.mail
        .ca_file
        .iter()
        .map(|f| {
            std::fs::read(f).map_err(|error| ConfigError::Read {
                path: f.display().to_string(),
                error,
            })
        })
        .collect()
}

/// Everything about `cfg` that can be checked without side effects: plugins build
/// their stages, flows bind configured stages, URLs, mail, outbox and HTTP settings
/// are valid, the CA file reads. Nothing is opened, created, started or sent. The
/// built bindings come back.
pub fn validate(
    cfg: &HostConfig,
    plugins: &[Arc<dyn Plugin>],
) -> Result<Vec<Binding>, ConfigError> {
    let bindings = build_bindings(cfg, plugins)?;
    check_flows(cfg)?;
    if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://"))
        || url::Url::parse(&cfg.base_url).is_err()
    {
        return Err(ConfigError::Invalid(format!(
            "base_url '{}' must be an http:// or https:// URL",
            cfg.base_url
        )));
    }
    check_backend_urls(cfg)?;
    cfg.delivery()?;
    cfg.mail.outbox.to_config()?;
    cfg.http.to_settings(&cfg.database)?;
    cfg.limits.check()?;
    ca_roots(cfg)?;
    Ok(bindings)
}

/// The SMTP settings of every binding that reports its own.
pub fn mail_routes(bindings: &[Binding]) -> MailRoutes {
    let routes = MailRoutes::default();
    for b in bindings {
        if let StageImpl::Plugin { stage, .. } = &b.imp {
            routes.register(&b.name, stage.mail_route());
        }
    }
    routes
}

/// `test-email`: sends one message now over the global delivery, or over stage
/// `stage`'s own SMTP settings as the stage reports them (a stage on the global
/// settings uses those), from `from` (default: `mail.from`).
pub fn test_email(
    cfg: &HostConfig,
    plugins: &[Arc<dyn Plugin>],
    to: &str,
    stage: Option<&str>,
    from: Option<&str>,
) -> Result<String, TestEmailError> {
    let settings = |e: ConfigError| TestEmailError::Settings(e.to_string());
    let smtp = match stage {
        None => None,
        Some(name) => {
            let bindings = validate(cfg, plugins).map_err(settings)?;
            if !bindings.iter().any(|b| b.name == name) {
                return Err(TestEmailError::NoStage(name.to_string()));
            }
            mail_routes(&bindings).get(name)
        }
    };
    let roots = ca_roots(cfg).map_err(settings)?;
    let global = cfg.delivery().map_err(settings)?;
    crate::mail::test_email(
        &global,
        smtp.as_ref(),
        &roots,
        from.unwrap_or(&cfg.mail.from),
        to,
    )
}

/// Validates `cfg` and builds an executor with `plugins` (loaded or in-process) on
/// `backends`; starts the delivery workers.
pub fn build_executor(
    cfg: &HostConfig,
    plugins: &[Arc<dyn Plugin>],
    backends: Backends,
) -> Result<Executor, ConfigError> {
    let bindings = validate(cfg, plugins)?;
    let mut outbox = backends.outbox;
    outbox.extra_roots_pem.extend(ca_roots(cfg)?);
    let mail = MailQueue::start(
        cfg.delivery()?,
        Arc::new(mail_routes(&bindings)),
        backends.store.clone(),
        backends.clock.clone(),
        outbox,
    )
    .map_err(|e| ConfigError::Backend(e.to_string()))?;
    Ok(Executor::new(
        ExecutorSettings {
            base_url: cfg.base_url.clone(),
            from_address: cfg.mail.from.clone(),
            mail_limit: cfg.limits.mail_limit(),
        },
        cfg.flows.clone(),
        bindings,
        Services {
            store: backends.store,
            cache: backends.cache,
            mail: Arc::new(mail),
            clock: backends.clock,
            entropy: backends.entropy,
        },
    ))
}

/// The three reference flows (enrollment, recovery, email change) with the email
/// stage provided by a plugin; `smtp` or `maildir` choose delivery.
pub fn reference_config(
    database: &str,
    base_url: &str,
    plugin: Option<&Path>,
    mail: MailConfig,
) -> HostConfig {
    let text = include_str!("../flows.toml");
    let mut cfg: HostConfig = toml::from_str(text).expect("flows.toml parses (unit test)");
    cfg.database = database.to_string();
    cfg.base_url = base_url.to_string();
    cfg.mail = mail;
    cfg.plugins = plugin
        .map(|p| PluginRef {
            path: p.to_path_buf(),
        })
        .into_iter()
        .collect();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_flows_parse_and_build_with_the_plugin_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = reference_config(
            "memory://",
            "http://localhost:9000",
            None,
            MailConfig {
                maildir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        );
        assert_eq!(cfg.flows.len(), 3);
        let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(email_stage_plugin::EmailStagePlugin)];
        let ex = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap()).unwrap();
        assert!(ex.flow("enroll").is_some());
    }

    #[test]
    fn clear_errors() {
        let mut cfg = reference_config("memory://", "http://x", None, MailConfig::default());
        let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(email_stage_plugin::EmailStagePlugin)];
        cfg.stages[0].kind = "nope".into();
        let e = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap())
            .err()
            .unwrap();
        assert!(e.to_string().contains("kind 'nope'"), "{e}");
        let mut cfg = reference_config("memory://", "http://x", None, MailConfig::default());
        let email = cfg.stages.iter_mut().find(|s| s.kind == "email").unwrap();
        email.config = serde_json::json!({"token_expiry": "hours=3,minutes=17"});
        let e = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap())
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("is not in the correct format"),
            "{e}"
        );
        assert!(open_store("mysql://x").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("host=db user=u password=s3cret dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
        assert!(!redact_url("postgres://u:s3cret@[bad").contains("s3cret"));
        assert!(toml::from_str::<HostConfig>("bogus = 1").is_err());
    }
}
