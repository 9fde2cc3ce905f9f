//! The email stage's hooks through the loaded cdylib and as an in-process rlib, on
//! in-memory host services: repeat GET, first send, resend under the limit,
//! rate-limited POST, restore.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use plugin_api::testing::{build_cdylib, FakeHost};
use plugin_api::{FlowToken, Plugin, Stage, StageRequest};
use serde_json::json;

/// The email stage through the stable ABI (`cdylib`) or linked in-process (`rlib`).
fn plugins() -> [(&'static str, Arc<dyn Plugin>); 2] {
    let path = build_cdylib("email-stage-plugin").unwrap_or_else(|e| panic!("{e}"));
    let loaded = plugin_api::load_plugin(&path).expect("load the email stage's cdylib");
    [
        ("cdylib", Arc::new(loaded)),
        ("rlib", Arc::new(email_stage_plugin::EmailStagePlugin)),
    ]
}

/// In-memory host services that keep nothing per call, so runs stay flat; they
/// know the user of [`user`], whom `restore` activates.
fn bench_host() -> FakeHost {
    FakeHost::new()
        .recording(false)
        .with_user(serde_json::from_value(user()).expect("a user"))
}

fn stage(plugin: &dyn Plugin, config: serde_json::Value) -> Box<dyn Stage> {
    plugin
        .new_stage("email", "bench-email", &config.to_string())
        .expect("stage")
}

fn req(ctx: &str) -> StageRequest<'_> {
    StageRequest {
        flow_slug: "recover",
        flow_designation: "recovery",
        stage_name: "bench-email",
        query: "next=%2Fapp",
        base_url: "https://id.example.test",
        locale: "",
        requester_id: None,
        context_json: ctx,
    }
}

fn user() -> serde_json::Value {
    json!({"id": "1", "username": "jane", "name": "Jane Doe", "email": "jane@example.com", "is_active": true})
}

fn hooks(c: &mut Criterion) {
    for (tag, plugin) in plugins() {
        let plugin = plugin.as_ref();
        let host = bench_host();

        let s = stage(plugin, json!({}));
        let ctx = json!({"pending_user": user(), "email_sent": true}).to_string();
        c.bench_function(&format!("repeat_get/{tag}"), |b| {
            b.iter(|| black_box(s.get(&req(&ctx), &host).unwrap()))
        });

        let s = stage(plugin, json!({"rate_limit_initial_send": false}));
        let ctx = json!({"pending_user": user()}).to_string();
        c.bench_function(&format!("first_send/{tag}"), |b| {
            b.iter(|| black_box(s.get(&req(&ctx), &host).unwrap()))
        });

        // Anti-enumeration: an unknown address does the same work, so it is not faster.
        let ghost =
            json!({"id": null, "username": "ghost@example.com", "email": "ghost@example.com"});
        let ctx = json!({"pending_user": ghost}).to_string();
        c.bench_function(&format!("first_send_placeholder/{tag}"), |b| {
            b.iter(|| black_box(s.get(&req(&ctx), &host).unwrap()))
        });

        let s = stage(plugin, json!({"recovery_max_attempts": 1}));
        let ctx = json!({"pending_user": user(), "email_sent": true}).to_string();
        s.challenge_invalid(&req(&ctx), &json!({}), &host).unwrap();
        let body = json!({"component": "ak-stage-email"});
        c.bench_function(&format!("rate_limited_post/{tag}"), |b| {
            b.iter(|| black_box(s.challenge_invalid(&req(&ctx), &body, &host).unwrap()))
        });

        // A resend the limiter allows: the clock moves past the window each time, so
        // the attempt list stays one long and every call sends.
        let s = stage(plugin, json!({}));
        let ctx = json!({"pending_user": user(), "email_sent": true}).to_string();
        let body = json!({"component": "ak-stage-email"});
        let resend = || {
            host.advance(300_001);
            s.challenge_invalid(&req(&ctx), &body, &host).unwrap()
        };
        let first = resend();
        assert_eq!(
            first.messages[0].message, "Email Successfully sent.",
            "{first:?}"
        );
        c.bench_function(&format!("resend_under_limit/{tag}"), |b| {
            b.iter(|| black_box(resend()))
        });

        let s = stage(plugin, json!({"activate_user_on_success": true}));
        let token = FlowToken {
            identifier: "ak-email-stage-bench-email-x".into(),
            user_id: "1".into(),
            flow_slug: "recover".into(),
            stage_name: "bench-email".into(),
            expires_ms: i64::MAX,
            intent: "verification".into(),
        };
        let ctx = json!({"pending_user": user(), "is_restored": token}).to_string();
        c.bench_function(&format!("restore/{tag}"), |b| {
            b.iter(|| black_box(s.restore(&req(&ctx), &token, &host).unwrap()))
        });
    }
}

criterion_group!(benches, hooks);
criterion_main!(benches);
