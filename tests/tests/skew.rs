//! Version skew through `dlopen`, with real libraries: a plugin built against the
//! frozen plugin-api 0.3.0 in this host, this plugin-api's plugin in a host built
//! against 0.3.0, and plugins whose plugin-api changed a type's layout or its
//! major version (refused at load, saying where and naming both versions once).

use e2e_tests::skew::{edit_file, frozen_builds, variant_build};
use plugin_api::{load_plugin, LoadError, API_VERSION};

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

#[test]
fn the_frozen_builds_load() {
    let (lib, _) = frozen_builds();
    let p = load_plugin(&lib).unwrap();
    let m = plugin_api::Plugin::manifest(&p);
    assert_eq!(
        (m.name.as_str(), m.api_version.as_str()),
        ("skew-probe", "0.3.0")
    );
}
