//! `inspect`: load a plugin library and print its manifest, or why it is refused.

use std::path::Path;

use anyhow::Context;
use plugin_api::Plugin;

/// Prints the manifest; with `verbose`, abi_stable's whole report on a mismatch.
pub fn run(path: &Path, verbose: bool) -> anyhow::Result<()> {
    match plugin_api::load_plugin(path) {
        Ok(p) => {
            println!("{}", serde_json::to_string_pretty(&p.manifest())?);
            Ok(())
        }
        Err(plugin_api::LoadError::Incompatible { full_report, .. }) if verbose => {
            Err(anyhow::anyhow!("{full_report}")).context("plugin refused")
        }
        Err(e) => Err(e).context("plugin refused"),
    }
}
