//! `new-plugin`: writes a stage plugin crate from the templates in
//! `host-harness/templates/new-plugin/`: a config type, a stage on the generic
//! form, unit tests on the kit, an FFI test and a host configuration that loads it.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The plugin-api this binary was built from, for a crate made on this machine.
fn default_plugin_api() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api")
}

const FILES: [(&str, &str); 5] = [
    (
        "Cargo.toml",
        include_str!("../../templates/new-plugin/Cargo.toml.txt"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/new-plugin/lib.rs.txt"),
    ),
    (
        "src/stage.rs",
        include_str!("../../templates/new-plugin/stage.rs.txt"),
    ),
    (
        "tests/ffi.rs",
        include_str!("../../templates/new-plugin/ffi.rs.txt"),
    ),
    (
        "host.toml",
        include_str!("../../templates/new-plugin/host.toml.txt"),
    ),
];

/// Whether `name` can be a crate and stage kind: 2-40 of `a-z`, `0-9`, `-`,
/// starting with a letter, no `--` or trailing `-`.
fn valid_name(name: &str) -> bool {
    (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.contains("--")
        && !name.ends_with('-')
}

/// `new-plugin <name> [--path DIR] [--plugin-api PATH]`: the crate goes to
/// `DIR/<name>`, which must not exist.
pub fn run(name: &str, dir: &Path, plugin_api: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_name(name),
        "'{name}' is not a plugin name: use 2-40 of a-z, 0-9 and '-', starting with a letter"
    );
    let api = plugin_api.unwrap_or_else(default_plugin_api);
    let api = api.canonicalize().with_context(|| {
        format!(
            "plugin-api not found at {} (pass --plugin-api <path>)",
            api.display()
        )
    })?;
    let root = dir.join(name);
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    let lib = name.replace('-', "_");
    for (file, template) in FILES {
        let text = template
            .replace("@NAME@", name)
            .replace("@LIB@", &lib)
            .replace("@PLUGIN_API@", &api.display().to_string());
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&root))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created {} (stage kind '{name}')", root.display());
    println!(
        "  cd {} && cargo test && host-harness check-plugin target/debug/lib{lib}.so",
        root.display()
    );
    println!("  then: host-harness serve --config host.toml");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("email-code"));
        assert!(valid_name("mfa2"));
        for bad in [
            "",
            "a",
            "Email",
            "1st",
            "a--b",
            "a-",
            "a_b",
            "a b",
            &"a".repeat(41),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
