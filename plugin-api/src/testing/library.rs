//! Building a plugin's cdylib from its own tests, so an FFI test loads the library
//! of the code it is testing rather than a stale one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Why [`build_cdylib`] or [`build_artifact`] found no library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The running executable is not under `<target>/<profile>/deps/`, as cargo
    /// places tests and benches.
    #[error("{0} is not under <target>/<profile>/deps/; run it with cargo test or cargo bench")]
    NotInTargetDir(PathBuf),
    /// cargo could not be started (`$CARGO`, else `cargo` on the `PATH`).
    #[error("could not run cargo: {0}")]
    Cargo(#[source] std::io::Error),
    /// `cargo build -p <package>` failed; its errors went to stderr.
    #[error("cargo build -p {package} failed ({status})")]
    Failed {
        /// The package asked for.
        package: String,
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// cargo built the package but reported no file of that name (is it a
    /// `cdylib`?).
    #[error("cargo build -p {package} reported no file named {file}")]
    NotReported {
        /// The package asked for.
        package: String,
        /// The file name looked for.
        file: String,
    },
}

/// Builds `package`'s cdylib (`crate-type = ["cdylib", …]`) with the target folder
/// and profile of the running test or bench, and returns the library's path.
///
/// cargo runs from `CARGO_MANIFEST_DIR` (set by `cargo test`), else the current
/// folder, so `package` is any package of the caller's workspace. Each file is
/// built once per process.
///
/// ```no_run
/// let path = plugin_api::testing::build_cdylib("my-stage").unwrap();
/// let plugin = plugin_api::load_plugin(&path).unwrap();
/// # let _ = plugin;
/// ```
pub fn build_cdylib(package: &str) -> Result<PathBuf, BuildError> {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    build_artifact(package, &file)
}

/// Runs `cargo build -p package` as [`build_cdylib`] does and returns the built
/// file named `file_name` (a library or an executable).
pub fn build_artifact(package: &str, file_name: &str) -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(file_name) {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().map_err(BuildError::Cargo)?;
    let (target_dir, release) = target_of(&exe)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--message-format=json", "-p", package])
        .arg("--target-dir")
        .arg(target_dir)
        .stderr(Stdio::inherit());
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        cmd.current_dir(dir);
    }
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(BuildError::Cargo)?;
    if !out.status.success() {
        return Err(BuildError::Failed {
            package: package.into(),
            status: out.status,
        });
    }
    let path = reported_artifacts(&out.stdout)
        .into_iter()
        .find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy() == file_name)
        })
        .ok_or_else(|| BuildError::NotReported {
            package: package.into(),
            file: file_name.into(),
        })?;
    built.insert(file_name.to_string(), path.clone());
    Ok(path)
}

/// The target folder of an executable at `<target>/<profile>/deps/<name>`, and
/// whether the profile is `release` (benches run under it).
fn target_of(exe: &Path) -> Result<(&Path, bool), BuildError> {
    let not_in = || BuildError::NotInTargetDir(exe.to_path_buf());
    let profile_dir = exe.parent().and_then(Path::parent).ok_or_else(not_in)?;
    let target_dir = profile_dir.parent().ok_or_else(not_in)?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    Ok((target_dir, release))
}

/// The files cargo reported building (libraries and executables), read from
/// the output of `cargo build --message-format=json`.
pub fn reported_artifacts(stdout: &[u8]) -> Vec<PathBuf> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .flat_map(|v| {
            let mut files: Vec<PathBuf> = v["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect();
            files.extend(v["executable"].as_str().map(PathBuf::from));
            files
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_cargo_reports_include_libraries_and_executables() {
        let out = br#"{"reason":"compiler-artifact","filenames":["/t/debug/libx.so","/t/debug/libx.rlib"],"executable":null}
{"reason":"build-finished","success":true}
{"reason":"compiler-artifact","filenames":["/t/debug/h"],"executable":"/t/debug/h"}
not json"#;
        let files = reported_artifacts(out);
        assert_eq!(
            files,
            [
                "/t/debug/libx.so",
                "/t/debug/libx.rlib",
                "/t/debug/h",
                "/t/debug/h"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn the_target_folder_and_profile_come_from_the_executable() {
        let (dir, release) = target_of(Path::new("/w/target/release/deps/stage-1a2b")).unwrap();
        assert_eq!((dir, release), (Path::new("/w/target"), true));
        let (_, release) = target_of(Path::new("/w/target/debug/deps/t")).unwrap();
        assert!(!release);
        assert!(matches!(
            target_of(Path::new("t")),
            Err(BuildError::NotInTargetDir(_))
        ));
    }
}
