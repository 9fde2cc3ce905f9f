//! A plugin stage's fault policy, through the panicking fixture's cdylib: a stage
//! that panics on every call is quarantined after its configured count and answered
//! without its plugin until the cool-down ends or an operator releases it
//! (`host-harness plugins release`); `on_plugin_failure = "skip"` lets the flow go
//! on; a hook slower than `hook_timeout_ms` is reported.

use std::process::Command;
use std::sync::Arc;

use e2e_tests::{email_plugin, host_setup, host_with, plugin_path, Mode, Setup, TestHost};
use host_harness::config::StageDef;
use host_harness::flow::client::FlowClient;
use host_harness::flow::{FlowDef, MSG_QUARANTINED, QUARANTINE_EVENT, SLOW_HOOK_EVENT};
use host_harness::stages::fault::OnPluginFailure;
use host_harness::storage::{MemoryStore, SqliteStore};
use host_harness::system::metrics;
use plugin_api::{load_plugin, Plugin};
use serde_json::{json, Value};

/// The reference flows' email plugin and the panicking fixture, both cdylibs.
fn panicky() -> Vec<Arc<dyn Plugin>> {
    let path = plugin_path("panicking-stage");
    let fixture = load_plugin(&path).expect("panicking-stage loads");
    vec![email_plugin(Mode::Cdylib), Arc::new(fixture)]
}

fn stage(name: &str, config: Value) -> StageDef {
    StageDef {
        name: name.into(),
        kind: "panicky".into(),
        config,
        ..Default::default()
    }
}

fn flow(slug: &str, stages: &[&str]) -> FlowDef {
    FlowDef {
        slug: slug.into(),
        title: slug.into(),
        designation: "authentication".into(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
        brand: None,
    }
}

/// A quarantining stage `name` (panics in `get`) in a flow of the same slug.
fn quarantining(name: &str, after: u32) -> impl FnOnce(&mut host_harness::config::HostConfig) {
    let name = name.to_string();
    move |cfg| {
        cfg.stages.push(StageDef {
            quarantine_after: Some(after),
            quarantine_window_secs: Some(60),
            quarantine_secs: Some(30),
            ..stage(&name, json!({"panic_in": "get"}))
        });
        cfg.flows.push(flow(&name, &[&name]));
    }
}

fn get(h: &TestHost, slug: &str) -> Value {
    FlowClient::open(&h.ex, slug, "").get()
}

fn panics_seen(h: &TestHost, stage: &str) -> usize {
    h.events("system_exception")
        .iter()
        .filter(|e| e["stage"] == stage && e["error"].as_str().unwrap_or("").contains("deliberate"))
        .count()
}

/// The value of the metric line that starts with `name{` and holds `label`.
fn metric(name: &str, label: &str) -> Option<f64> {
    metrics::encode()
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn assert_quarantined(v: &Value) {
    assert_eq!(v["component"], "ak-stage-flow-error", "{v}");
    assert_eq!(v["error"], MSG_QUARANTINED, "{v}");
}

#[test]
fn a_stage_panicking_on_every_call_is_quarantined_until_its_cooldown_ends() {
    let h = host_with(
        panicky(),
        Arc::new(MemoryStore::new()),
        quarantining("q-cool", 3),
    );
    for _ in 0..3 {
        assert_eq!(get(&h, "q-cool")["component"], "ak-stage-access-denied");
    }
    assert_eq!(panics_seen(&h, "q-cool"), 3);
    let ev = h.events(QUARANTINE_EVENT);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0]["stage"].as_str(), ev[0]["panics"].as_u64()),
        (Some("q-cool"), Some(3))
    );
    let label = "stage=\"q-cool\"";
    assert_eq!(metric("host_plugin_quarantined", label), Some(1.0));
    for _ in 0..4 {
        assert_quarantined(&get(&h, "q-cool"));
    }
    assert_eq!(panics_seen(&h, "q-cool"), 3, "the plugin was not called");
    assert_eq!(
        metric("host_plugin_quarantine_refusals_total", label),
        Some(4.0)
    );

    h.clock.advance(29_999);
    assert_quarantined(&get(&h, "q-cool"));
    h.clock.advance(1);
    assert_eq!(get(&h, "q-cool")["component"], "ak-stage-access-denied");
    assert_eq!(
        panics_seen(&h, "q-cool"),
        4,
        "called again after the cool-down"
    );
    assert_eq!(metric("host_plugin_quarantined", label), Some(0.0));
}

#[test]
fn an_operator_release_ends_a_quarantine_on_a_host_serving_from_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("host.db");
    let store = Arc::new(SqliteStore::open(&db).expect("sqlite store"));
    let setup = Setup {
        store,
        ..Default::default()
    };
    let h = host_setup(panicky(), setup, quarantining("q-rel", 2));
    for _ in 0..2 {
        get(&h, "q-rel");
    }
    assert_quarantined(&get(&h, "q-rel"));
    h.clock.advance(1_000);
    assert_quarantined(&get(&h, "q-rel"));

    let out = Command::new(e2e_tests::host_harness_bin())
        .args(["plugins", "release", "q-rel", "--database"])
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run host-harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("released stage 'q-rel'"), "{stdout}");

    // Seen at the next check, at most a second later.
    h.clock.advance(1_000);
    assert_eq!(get(&h, "q-rel")["component"], "ak-stage-access-denied");
    assert_eq!(panics_seen(&h, "q-rel"), 3, "the plugin is called again");
}

#[test]
fn a_release_cannot_reach_a_memory_store() {
    let out = Command::new(e2e_tests::host_harness_bin())
        .args(["plugins", "release", "any", "--database", "memory://"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run host-harness");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot be administered from another process"),
        "{stderr}"
    );
}

#[test]
fn skip_lets_the_flow_go_on_past_a_failing_plugin_and_deny_does_not() {
    let skip = |name: &str, panic_in: &str| StageDef {
        on_plugin_failure: OnPluginFailure::Skip,
        quarantine_after: Some(2),
        ..stage(name, json!({ "panic_in": panic_in }))
    };
    let h = host_with(panicky(), Arc::new(MemoryStore::new()), |cfg| {
        cfg.stages.push(skip("s-panic", "get"));
        cfg.stages.push(skip("s-error", "error"));
        cfg.stages
            .push(stage("d-error", json!({"panic_in": "error"})));
        cfg.stages.push(stage("s-calm", json!({})));
        cfg.flows.push(flow("skip-panic", &["s-panic", "s-calm"]));
        cfg.flows.push(flow("skip-error", &["s-error", "s-calm"]));
        cfg.flows.push(flow("deny-error", &["d-error", "s-calm"]));
    });
    for _ in 0..3 {
        assert_eq!(get(&h, "skip-panic")["component"], "x-panicky");
        assert_eq!(get(&h, "skip-error")["component"], "x-panicky");
        assert_eq!(get(&h, "deny-error")["component"], "ak-stage-flow-error");
    }
    // Every failure is still recorded; the third panic found the stage quarantined
    // (after two) and skipped it without calling the plugin.
    assert_eq!(panics_seen(&h, "s-panic"), 2);
    assert_eq!(panics_seen(&h, "s-error"), 3);
    assert_eq!(panics_seen(&h, "d-error"), 3);
    assert_eq!(
        metric("host_stage_skipped_total", "stage=\"s-error\""),
        Some(3.0)
    );
}

#[test]
fn a_hook_slower_than_its_timeout_is_reported_and_still_answered() {
    let h = host_with(panicky(), Arc::new(MemoryStore::new()), |cfg| {
        cfg.stages.push(StageDef {
            hook_timeout_ms: Some(10),
            ..stage("slow", json!({"sleep_ms": 40}))
        });
        cfg.stages.push(StageDef {
            hook_timeout_ms: Some(0),
            ..stage("slow-unwatched", json!({"sleep_ms": 40}))
        });
        cfg.flows.push(flow("slow", &["slow"]));
        cfg.flows.push(flow("slow-unwatched", &["slow-unwatched"]));
    });
    assert_eq!(get(&h, "slow")["component"], "x-panicky");
    assert_eq!(get(&h, "slow-unwatched")["component"], "x-panicky");
    let ev = h.events(SLOW_HOOK_EVENT);
    assert_eq!(ev.len(), 1, "only the watched stage: {ev:?}");
    assert_eq!(ev[0]["stage"], "slow");
    assert_eq!(ev[0]["hook"], "get");
    assert_eq!(ev[0]["timeout_ms"], 10);
    assert!(ev[0]["took_ms"].as_u64().unwrap() >= 40, "{ev:?}");
    assert_eq!(
        metric(
            "host_hook_slow_total",
            "stage_kind=\"panicky\",hook=\"get\""
        ),
        Some(1.0)
    );
}

#[test]
fn a_bad_quarantine_setting_is_refused_by_name() {
    let def = StageDef {
        quarantine_secs: Some(0),
        ..stage("bad", json!({}))
    };
    let err = def.fault_policy().unwrap_err().to_string();
    assert!(
        err.contains("stage 'bad'") && err.contains("quarantine_secs"),
        "{err}"
    );
}
