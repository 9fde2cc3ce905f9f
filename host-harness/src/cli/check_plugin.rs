//! `check-plugin`: loads a plugin library and runs the conformance battery
//! (`plugin_api::testing::conformance`) on each of its stage kinds, one line per
//! property; fails when any property does.

use std::path::Path;

use anyhow::Context;
use plugin_api::testing::conformance::check_stage_kind;
use plugin_api::Plugin;
use serde_json::Value;

/// `check-plugin <library> [--kind K] [--config JSON]`.
pub fn run(path: &Path, kind: Option<&str>, config: Option<&str>) -> anyhow::Result<()> {
    let config: Value = match config {
        Some(c) => serde_json::from_str(c).context("--config is not JSON")?,
        None => Value::Object(Default::default()),
    };
    let plugin = plugin_api::load_plugin(path)?;
    let manifest = plugin.manifest();
    let kinds: Vec<String> = match kind {
        Some(k) => {
            anyhow::ensure!(
                manifest.stages.iter().any(|s| s.kind == k),
                "{} provides no stage kind '{k}'",
                manifest.name
            );
            vec![k.to_string()]
        }
        None => manifest.stages.iter().map(|s| s.kind.clone()).collect(),
    };
    let mut failed = 0;
    for k in &kinds {
        println!("{} {}: stage kind '{k}'", manifest.name, manifest.version);
        for p in check_stage_kind(&plugin as &dyn Plugin, k, &config) {
            println!("  {p}");
            failed += usize::from(!p.passed);
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} conformance propert{} failed",
        if failed == 1 { "y" } else { "ies" }
    );
    Ok(())
}
