//! `test-email`: one message now over the global settings or a stage's own.

use std::path::Path;

use host_harness::config;

/// Sends one message to `to` and prints the classified outcome.
pub fn run(
    config: &Path,
    to: &str,
    stage: Option<&str>,
    from: Option<String>,
) -> anyhow::Result<()> {
    let cfg = config::HostConfig::load(config)?;
    let plugins = match stage {
        Some(_) => config::load_plugins(&cfg)?,
        None => Vec::new(),
    };
    let line = config::test_email(&cfg, &plugins, to, stage, from.as_deref())?;
    println!("{line}");
    Ok(())
}
