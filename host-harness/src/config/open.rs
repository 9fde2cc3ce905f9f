//! Opening the backends a configuration names by URL.

use std::path::Path;
use std::sync::Arc;

use super::model::{default_cache_pool, is_postgres, ConfigError, HostConfig};
use crate::cache::{Cache, MemoryCache, PostgresCache, RedisCache};
use crate::mail::OutboxConfig;
use crate::storage::admin::OutboxAdmin;
use crate::storage::{HostStore, MemoryStore, PostgresStore, SqliteStore};
use crate::system::clock::{Clock, SystemClock};
use crate::system::entropy::{Entropy, SystemEntropy};

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

/// Opens the outbox of an existing store for administration: `sqlite://<path>` (the
/// file must exist) or `postgres://…` (in `schema`). `memory://` is refused: that
/// outbox lives only in the process serving it.
pub fn open_outbox_admin(
    url: &str,
    schema: Option<&str>,
) -> Result<Arc<dyn OutboxAdmin>, ConfigError> {
    let backend =
        |e: crate::storage::StoreError| ConfigError::Backend(format!("{}: {e}", redact_url(url)));
    if is_postgres(url) {
        return Ok(Arc::new(PostgresStore::open(url, schema).map_err(backend)?));
    }
    let path = existing_sqlite(url, "outbox")?;
    Ok(Arc::new(SqliteStore::open(path).map_err(backend)?))
}

/// Opens an existing store that hosts serve from, for a command run beside them
/// (`plugins release`): as [`open_outbox_admin`], `memory://` refused.
pub fn open_shared_store(
    url: &str,
    schema: Option<&str>,
) -> Result<Arc<dyn HostStore>, ConfigError> {
    if !is_postgres(url) {
        existing_sqlite(url, "store")?;
    }
    open_store_in(url, schema)
}

/// The path of a `sqlite://` URL whose file exists; `what` names the part another
/// process would administer.
fn existing_sqlite<'a>(url: &'a str, what: &str) -> Result<&'a Path, ConfigError> {
    match url.strip_prefix("sqlite://").filter(|p| !p.is_empty()) {
        Some(path) if Path::new(path).is_file() => Ok(Path::new(path)),
        Some(path) => Err(ConfigError::Invalid(format!(
            "database: {path} does not exist (the store serve uses is created when it starts)"
        ))),
        None => Err(ConfigError::Invalid(format!(
            "database: the {what} of '{}' cannot be administered from another process (use sqlite://<path> or postgres://…)",
            redact_url(url)
        ))),
    }
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
