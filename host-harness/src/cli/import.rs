//! `import-authentik`: authentik blueprints to a host configuration.

use std::path::{Path, PathBuf};

use anyhow::Context;
use host_harness::import;

/// Reads `blueprints`, writes the configuration to `output` (or standard output)
/// and the report to standard error.
pub fn run(
    blueprints: &[PathBuf],
    output: Option<&Path>,
    plugin: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut texts = Vec::with_capacity(blueprints.len());
    for p in blueprints {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        texts.push((p.display().to_string(), text));
    }
    let plugin = match plugin {
        Some(p) => Some(p),
        None => super::demo::default_plugin().ok(),
    };
    let plugin = plugin.map(|p| std::path::absolute(&p).unwrap_or(p).display().to_string());
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    let imported = import::import(&refs, plugin.as_deref())?;
    match output {
        Some(path) => {
            std::fs::write(path, &imported.toml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{}", imported.toml),
    }
    for line in &imported.report {
        eprintln!("not imported: {line}");
    }
    eprintln!(
        "{} item{} not carried over; check the configuration with host-harness check",
        imported.report.len(),
        if imported.report.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    Ok(())
}
