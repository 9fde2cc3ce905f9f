//! Assembly: plugins loaded, stages bound, flows checked, an [`Executor`] built.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use plugin_api::{load_plugin, Brand, Plugin};

use super::model::{is_postgres, ConfigError, HostConfig, MailConfig, PluginRef, StageDef};
use super::open::{redact_url, Backends};
use crate::flow::{Executor, ExecutorSettings, Services};
use crate::i18n::{resolve_brand, valid_tag};
use crate::mail::{MailQueue, MailRoutes, TestEmailError};
use crate::stages::builtin::{Builtin, KINDS};
use crate::stages::{Binding, StageImpl};

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Loads the plugin libraries named in `cfg`, each after its pin is checked
/// ([`super::pin::check_pin`]).
pub fn load_plugins(cfg: &HostConfig) -> Result<Vec<Arc<dyn Plugin>>, ConfigError> {
    cfg.plugins
        .iter()
        .map(|p| {
            super::pin::check_pin(p)?;
            Ok(Arc::new(load_plugin(&p.path)?) as Arc<dyn Plugin>)
        })
        .collect()
}

/// Builds one stage binding: a built-in stage, or a plugin's. A plugin's stage
/// configuration is checked against its kind's schema ([`super::schema`]) before the
/// plugin sees it; the plugin then checks what a schema cannot say. `templates_dir`
/// (`[templates] dir`) fills a `custom_templates_dir` the kind's schema declares and
/// the stage leaves unset.
fn build_binding(
    def: &StageDef,
    plugins: &[Arc<dyn Plugin>],
    templates_dir: Option<&Path>,
) -> Result<Binding, ConfigError> {
    let stage_err = |error| ConfigError::Stage {
        stage: def.name.clone(),
        error,
    };
    let imp = if let Some(b) = Builtin::from_config(&def.kind, &def.config) {
        StageImpl::Builtin(b.map_err(stage_err)?)
    } else {
        let provider = plugins.iter().find_map(|p| {
            let m = p.manifest();
            let kind = m.stages.into_iter().find(|k| k.kind == def.kind)?;
            Some((p, m.name, m.version, kind))
        });
        let Some((plugin, namespace, version, kind)) = provider else {
            let loaded: Vec<String> = plugins.iter().map(|p| p.manifest().name).collect();
            let loaded = if loaded.is_empty() {
                "no plugin is loaded".to_string()
            } else {
                format!("loaded: {}", loaded.join(", "))
            };
            return Err(ConfigError::Invalid(format!(
                "stage '{}': kind '{}' is neither built in ({}) nor provided by a loaded plugin ({loaded}); \
                 load the library that provides it with [[plugins]] path = \"…\" in the configuration",
                def.name,
                def.kind,
                KINDS.join(", ")
            )));
        };
        let mut config = match &def.config {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            c => c.clone(),
        };
        if let (Some(dir), Some(obj)) = (templates_dir, config.as_object_mut()) {
            let declared = kind
                .config_schema
                .pointer("/properties/custom_templates_dir")
                .is_some();
            if declared && !obj.contains_key("custom_templates_dir") {
                let dir = dir.display().to_string();
                obj.insert("custom_templates_dir".into(), dir.into());
            }
        }
        let config = &config;
        super::schema::check_stage_config(&def.name, &namespace, &kind, config)?;
        let stage = plugin
            .new_stage(&def.kind, &def.name, &config.to_string())
            .map_err(stage_err)?;
        StageImpl::Plugin {
            stage,
            namespace,
            version,
        }
    };
    if let Some(tag) = def.default_locale.as_deref().filter(|t| !valid_tag(t)) {
        return Err(ConfigError::Invalid(format!(
            "stage '{}': default_locale '{tag}' is not a language tag (such as de or fr-CH)",
            def.name
        )));
    }
    Ok(Binding {
        name: def.name.clone(),
        kind: def.kind.clone(),
        imp,
        invalid_response_action: def.invalid_response_action,
        fault: def.fault_policy()?,
        breaker: Default::default(),
        default_locale: def.default_locale.clone(),
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
        bindings.push(build_binding(def, plugins, cfg.templates.dir.as_deref())?);
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
    (cfg.i18n.check()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    brands(cfg)?;
    ca_roots(cfg)?;
    Ok(bindings)
}

/// Every flow's brand: `[brand]` with the flow's `brand` over it, validated.
pub fn brands(cfg: &HostConfig) -> Result<HashMap<String, Brand>, ConfigError> {
    (cfg.flows.iter())
        .map(|f| {
            let b = resolve_brand(&cfg.brand, f.brand.as_ref())
                .map_err(|e| ConfigError::Invalid(format!("flow '{}': {e}", f.slug)))?;
            Ok((f.slug.clone(), b))
        })
        .collect()
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
            i18n: cfg.i18n.clone(),
            brands: brands(cfg)?,
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
    let text = include_str!("../../flows.toml");
    let mut cfg: HostConfig = toml::from_str(text).expect("flows.toml parses (unit test)");
    cfg.database = database.to_string();
    cfg.base_url = base_url.to_string();
    cfg.mail = mail;
    cfg.plugins = plugin
        .map(|p| PluginRef {
            sha256: None,
            path: p.to_path_buf(),
        })
        .into_iter()
        .collect();
    cfg
}
