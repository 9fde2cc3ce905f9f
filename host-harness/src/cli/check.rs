//! `check`: validate a configuration without side effects.

use std::path::Path;

use anyhow::Context;
use host_harness::config;

/// Loads the plugins, builds every stage and checks the flows; no database is
/// opened, no file created, nothing sent.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = config::HostConfig::load(path)?;
    let plugins = config::load_plugins(&cfg)?;
    config::validate(&cfg, &plugins)
        .with_context(|| format!("{} is not usable", path.display()))?;
    super::warn_if_not_durable(&cfg);
    for p in cfg.plugins.iter().filter(|p| p.sha256.is_none()) {
        let path = p.path.display();
        tracing::warn!(target: "config", plugin = %path, "plugin is not pinned: any file at this path is loaded");
        eprintln!("warning: plugin {path} is not pinned: add sha256 = \"…\" (host-harness inspect prints it)");
    }
    println!(
        "{}: {} plugins, {} stages, {} flows: ok",
        path.display(),
        cfg.plugins.len(),
        cfg.stages.len(),
        cfg.flows.len()
    );
    Ok(())
}
