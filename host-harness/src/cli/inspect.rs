//! `inspect`: load a plugin library and print its manifest, or why it is refused.

use std::path::Path;

use anyhow::Context;
use plugin_api::Plugin;

/// Prints the manifest and the file's SHA-256 (what `[[plugins]] sha256` pins), or
/// with `schema` only each stage kind's configuration schema; with `verbose`,
/// abi_stable's whole report on a mismatch.
pub fn run(path: &Path, verbose: bool, schema: bool) -> anyhow::Result<()> {
    let sha256 = host_harness::config::pin::sha256_file(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    match plugin_api::load_plugin(path) {
        Ok(p) if schema => {
            let schemas: serde_json::Map<_, _> = (p.manifest().stages.into_iter())
                .map(|k| (k.kind, k.config_schema))
                .collect();
            println!("{}", serde_json::to_string_pretty(&schemas)?);
            Ok(())
        }
        Ok(p) => {
            let mut shown = serde_json::to_value(p.manifest())?;
            shown["sha256"] = sha256.into();
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        Err(plugin_api::LoadError::Incompatible { full_report, .. }) if verbose => {
            Err(anyhow::anyhow!("{full_report}")).context("plugin refused")
        }
        Err(e) => Err(e).context("plugin refused"),
    }
}
