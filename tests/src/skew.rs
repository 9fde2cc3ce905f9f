//! Builds for the version-skew tests: the `tests/skew` workspace (a probe plugin
//! and a minimal host against the frozen plugin-api 0.3.0), and variants of the
//! current plugin-api edited in a scratch copy (a changed layout, a new major
//! version) with the probe plugin built against them.
//!
//! Each build has its own target folder under `<target>/skew`: cargo gives path
//! packages of the same name and version the same artifact names wherever they
//! live, so a shared folder would mix the frozen plugin-api with an edited copy.
//! Cargo runs `--offline`, from the registry the main build filled.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// `<target>/skew`, next to the profile folder this test runs from.
fn skew_target() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>
    let target = exe.ancestors().nth(3).expect("target dir");
    target.join("skew")
}

/// Runs `cargo build` for `manifest` into `<target>/skew/<name>` and returns the
/// artifacts cargo reported.
fn cargo_build(manifest: &Path, name: &str, locked: bool) -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--offline", "--message-format=json"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(skew_target().join(name))
        .stderr(Stdio::inherit());
    if locked {
        cmd.arg("--locked");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --manifest-path {} failed",
        manifest.display()
    );
    plugin_api::testing::reported_artifacts(&out.stdout)
}

/// The library file cargo builds for `package`.
fn lib_file(package: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Serializes the builds of one test process (they share `<target>/skew`).
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The probe plugin and the minimal host built against the frozen plugin-api
/// 0.3.0: `(plugin library, host executable)`.
pub fn frozen_builds() -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let _g = lock();
            let artifacts = cargo_build(&repo().join("tests/skew/Cargo.toml"), "frozen", true);
            let host = format!("skew-old-host{}", std::env::consts::EXE_SUFFIX);
            (
                crate::find_artifact(&artifacts, &lib_file("skew-probe")),
                crate::find_artifact(&artifacts, &host),
            )
        })
        .clone()
}

/// The probe plugin built against a scratch copy of the current plugin-api that
/// `edit` changed (it gets the copy's folder); `name` keeps variants apart.
pub fn variant_build(name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let _g = lock();
    let root = skew_target().join(name).join("src");
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&repo().join("plugin-api"), &root.join("plugin-api"));
    copy_dir(&repo().join("tests/skew/probe-plugin"), &root.join("probe"));
    std::fs::copy(
        repo().join("tests/skew/Cargo.lock"),
        root.join("Cargo.lock"),
    )
    .expect("copy Cargo.lock");
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"probe\"]\n\n[profile.dev]\npanic = \"unwind\"\n",
    )
    .expect("write workspace");
    let probe_toml = root.join("probe/Cargo.toml");
    let toml = std::fs::read_to_string(&probe_toml).expect("probe Cargo.toml");
    let toml = toml.replace("../plugin-api-0.3.0", "../plugin-api");
    std::fs::write(&probe_toml, toml).expect("write probe Cargo.toml");
    edit(&root.join("plugin-api"));
    crate::find_artifact(
        &cargo_build(&root.join("Cargo.toml"), name, false),
        &lib_file("skew-probe"),
    )
}

/// Replaces `from` by `to` in `file`, which must contain it.
pub fn edit_file(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read file to edit");
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("write edited file");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy file");
        }
    }
}
