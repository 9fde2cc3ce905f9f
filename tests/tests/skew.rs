//! Version skew through `dlopen`, with real libraries: a plugin built against the
//! frozen plugin-api 0.3.0 in this host, this plugin-api's plugin in a host built
//! against 0.3.0, and plugins whose plugin-api changed a type's layout or its
//! major version (refused at load, saying where and naming both versions once).

use std::process::Command;

use e2e_tests::plugin_path;
use e2e_tests::skew::{edit_file, frozen_builds, variant_build};
use plugin_api::serde_json::{self, json, Value};
use plugin_api::testing::{FakeHost, Recording};
use plugin_api::{load_plugin, LoadError, Outcome, Plugin, StageRequest, User, API_VERSION};

const FROZEN: &str = "0.3.0";

fn request() -> StageRequest<'static> {
    StageRequest {
        flow_slug: "skew",
        flow_designation: "authentication",
        stage_name: "probe",
        query: "",
        base_url: "http://127.0.0.1",
        locale: "",
        requester_id: None,
        context_json: "{}",
    }
}

/// A plugin built against 0.3.0 in this host: it loads, runs, reads a `User`
/// with a field it does not know (ignored), and never calls `host_info`, the
/// service appended after it.
#[test]
fn an_old_plugin_runs_in_the_new_host() {
    assert_ne!(
        API_VERSION, FROZEN,
        "the current plugin-api moved on from the frozen one"
    );
    let (lib, _) = frozen_builds();
    let plugin = load_plugin(&lib).unwrap();
    let m = plugin.manifest();
    assert_eq!(
        (m.name.as_str(), m.version.as_str()),
        ("skew-probe", "0.1.0")
    );
    assert_eq!(m.api_version, FROZEN, "read from the build, not typed");
    let mut attributes = serde_json::Map::new();
    attributes.insert("team".into(), json!("blue"));
    let host = Recording::new(FakeHost::new().with_user(User {
        id: Some("1".into()),
        username: "new-host-user".into(),
        attributes,
        ..Default::default()
    }));
    let stage = plugin.new_stage("probe", "probe", "{}").unwrap();
    let r = stage.get(&request(), &host).unwrap();
    let Outcome::Challenge(c) = r.outcome else {
        panic!("expected a challenge, got {:?}", r.outcome);
    };
    assert_eq!(c["api_version"], FROZEN);
    assert_eq!(c["user"]["username"], "new-host-user");
    assert!(
        c["user"].get("attributes").is_none(),
        "unknown to 0.3.0: {c}"
    );
    assert!(c.get("host_info").is_none(), "{c}");
    assert_eq!(host.calls(), ["user"], "host_info is never called");
}

/// This plugin-api's plugin in a host built against 0.3.0: it loads, a `User`
/// without the newer field reads with its default, and the appended service
/// answers `Unsupported`, which the plugin handles.
#[test]
fn a_new_plugin_runs_in_an_old_host() {
    let (_, old_host) = frozen_builds();
    let lib = plugin_path("probe-stage");
    let out = Command::new(old_host).arg(&lib).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("refused").is_none(), "{v}");
    assert_eq!(v["manifest"]["name"], "probe-stage");
    assert_eq!(v["manifest"]["api_version"], API_VERSION);
    let c = &v["challenge"];
    assert_eq!(c["api_version"], API_VERSION, "{v}");
    assert_eq!(c["host_info"], "unsupported", "{v}");
    assert_eq!(c["user"]["username"], "old-host-user");
    assert_eq!(c["user"]["locale"], "de");
    assert!(
        c["user"].get("attributes").is_none(),
        "defaulted, empty: {v}"
    );
}

/// The same plugin in this host gets the appended service.
#[test]
fn a_new_plugin_in_the_new_host_gets_the_appended_service() {
    let plugin = load_plugin(&plugin_path("probe-stage")).unwrap();
    let stage = plugin.new_stage("probe", "probe", "{}").unwrap();
    let r = stage.get(&request(), &FakeHost::new()).unwrap();
    let Outcome::Challenge(c) = r.outcome else {
        panic!("expected a challenge");
    };
    assert_eq!(c["host_info"], format!("plugin-api FakeHost {API_VERSION}"));
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn a_changed_type_layout_is_refused_naming_the_type_and_the_field_once() {
    let lib = variant_build("layout", |api| {
        edit_file(
            &api.join("src/abi.rs"),
            "    pub message: RString,\n}",
            "    pub message: RString,\n    /// Added by the skew test.\n    pub weight: u8,\n}",
        );
        edit_file(
            &api.join("src/convert.rs"),
            "message: m.message.into(),",
            "message: m.message.into(),\n                weight: 0,",
        );
    });
    let err = load_plugin(&lib).unwrap_err();
    let LoadError::Incompatible {
        ref detail,
        ref full_report,
        ..
    } = err
    else {
        panic!("expected Incompatible, got {err}");
    };
    let msg = err.to_string();
    assert_eq!(count(&msg, "FfiMessage"), 1, "{msg}");
    assert_eq!(count(&msg, "`weight`"), 1, "{msg}");
    assert_eq!(
        count(&msg, API_VERSION),
        2,
        "host and plugin, once each: {msg}"
    );
    assert!(msg.len() < 400, "short: {} bytes: {msg}", msg.len());
    assert!(full_report.len() > 10 * detail.len(), "full report kept");
}

#[test]
fn a_new_major_version_is_refused_naming_both_versions_once() {
    let lib = variant_build("major", |api| {
        edit_file(
            &api.join("Cargo.toml"),
            &format!("version = \"{API_VERSION}\""),
            "version = \"0.99.0\"",
        );
    });
    let err = load_plugin(&lib).unwrap_err();
    assert!(matches!(err, LoadError::Incompatible { .. }), "{err}");
    let msg = err.to_string();
    assert_eq!(count(&msg, "0.99.0"), 1, "{msg}");
    assert_eq!(count(&msg, API_VERSION), 1, "{msg}");
    assert!(msg.len() < 300, "{msg}");
}
