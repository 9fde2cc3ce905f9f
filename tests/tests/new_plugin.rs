//! `host-harness new-plugin` makes a crate outside this workspace that builds, passes
//! its own tests (unit tests on the kit and an FFI test), passes `check-plugin`, and
//! loads and runs in `serve` from the host configuration it ships.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::{free_port, host_harness_bin, Served};
use host_harness::flow::executor_url;
use serde_json::{json, Value};

fn run(cmd: &mut Command) -> String {
    let out = cmd.env_remove("RUST_BACKTRACE").output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

/// The target directory the tests were built in (`…/target`), shared with the new
/// crate so its dependencies are not compiled again.
fn target_dir() -> PathBuf {
    let bin = host_harness_bin();
    bin.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

#[test]
fn a_new_plugin_builds_passes_its_tests_and_check_plugin_and_runs_in_serve() {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(host_harness_bin())
        .args(["new-plugin", "hello-stage", "--path"])
        .arg(dir.path()));
    let root = dir.path().join("hello-stage");
    // The workspace's lock file pins the same dependency versions, so the shared
    // target directory already holds them.
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"),
        root.join("Cargo.lock"),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tests = run(Command::new(&cargo)
        .arg("test")
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", target_dir()));
    assert!(
        tests.contains("the_library_loads_and_passes_the_conformance_battery ... ok"),
        "{tests}"
    );
    assert!(
        tests.contains("passes_the_conformance_battery ... ok"),
        "{tests}"
    );

    let profile = host_harness_bin().parent().unwrap().to_path_buf();
    let lib = profile.join(format!(
        "{}hello_stage{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let report = run(Command::new(host_harness_bin())
        .arg("check-plugin")
        .arg(&lib));
    assert_eq!(report.matches("  PASS ").count(), 7, "{report}");

    let port = free_port();
    let shipped = std::fs::read_to_string(root.join("host.toml")).unwrap();
    let cfg = shipped
        .replace("http://127.0.0.1:9000", &format!("http://127.0.0.1:{port}"))
        .replace("target/debug/libhello_stage.so", &lib.display().to_string());
    let cfg_path = root.join("host-test.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    run(Command::new(host_harness_bin()).arg("check").arg(&cfg_path));
    let served = Served::with_config(&cfg_path, port);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let api = format!("{}{}", served.base, executor_url("hello-stage", ""));
    let page: Value = agent.get(&api).call().unwrap().into_json().unwrap();
    assert_eq!(
        (page["component"].as_str(), page["title"].as_str()),
        (Some("xak-form"), Some("Welcome")),
        "{page}"
    );
    let done: Value = agent
        .post(&api)
        .send_json(json!({"component": "xak-form"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
}

#[test]
fn a_bad_name_or_an_existing_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(host_harness_bin())
        .args(["new-plugin", "Bad_Name", "--path"])
        .arg(dir.path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a plugin name"));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let out = Command::new(host_harness_bin())
        .args(["new-plugin", "taken", "--path"])
        .arg(dir.path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}
