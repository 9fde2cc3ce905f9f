//! The email stage's hooks through the loaded cdylib and as an in-process rlib, on
//! in-memory host services: repeat GET, first send, rate-limited POST, restore.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use e2e_tests::{email_plugin, Mode};
use host_harness::cache::{Cache, MemoryCache};
use plugin_api::{
    FlowToken, Host, HostError, LogLevel, NewFlowToken, OutgoingMail, RateLimit, Stage,
    StageRequest, User,
};
use serde_json::json;

/// In-memory host services that keep nothing per call (so runs stay flat).
struct BenchHost {
    cache: MemoryCache,
    sent: AtomicU64,
    seed: AtomicU64,
}

impl Host for BenchHost {
    fn user(&self, _: &str) -> Result<Option<User>, HostError> {
        Ok(None)
    }
    fn set_user_active(&self, _: &str, _: bool) -> Result<bool, HostError> {
        Ok(true)
    }
    fn create_flow_token(&self, t: &NewFlowToken) -> Result<(), HostError> {
        black_box(t);
        Ok(())
    }
    fn flow_token(&self, _: &str) -> Result<Option<FlowToken>, HostError> {
        Ok(None)
    }
    fn consume_flow_token(&self, _: &str) -> Result<Option<FlowToken>, HostError> {
        Ok(None)
    }
    fn revoke_flow_tokens(&self, _: &str, _: &str) -> Result<u64, HostError> {
        Ok(0)
    }
    fn cache_get(&self, k: &str) -> Result<Option<String>, HostError> {
        self.cache
            .get(k, 0)
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }
    fn cache_set(&self, k: &str, v: &str, ttl: u64) -> Result<(), HostError> {
        self.cache
            .set(k, v, ttl, 0)
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }
    fn rate_limit(&self, k: &str, w: u64, m: u32, now: i64) -> Result<RateLimit, HostError> {
        self.cache
            .rate_limit(k, w, m, now)
            .map_err(|e| HostError::Unavailable(e.to_string()))
    }
    fn emit_event(&self, _: &str, _: &serde_json::Value) -> Result<(), HostError> {
        Ok(())
    }
    fn enqueue_mail(&self, m: &OutgoingMail) -> Result<(), HostError> {
        black_box(m);
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn default_from_address(&self) -> String {
        "authentik@localhost".into()
    }
    fn log(&self, _: LogLevel, _: &str, _: &str) {}
    fn now_ms(&self) -> i64 {
        1_767_225_600_000
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        // A fast deterministic stream: the benchmark measures the stage, not the OS RNG.
        let mut x = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Ok(())
    }
}

fn bench_host() -> BenchHost {
    BenchHost {
        cache: MemoryCache::new(),
        sent: AtomicU64::new(0),
        seed: AtomicU64::new(1),
    }
}

fn stage(mode: Mode, config: serde_json::Value) -> Box<dyn Stage> {
    email_plugin(mode)
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
    for mode in [Mode::Cdylib, Mode::Rlib] {
        let tag = if mode == Mode::Cdylib {
            "cdylib"
        } else {
            "rlib"
        };
        let host = bench_host();

        let s = stage(mode, json!({}));
        let ctx = json!({"pending_user": user(), "email_sent": true}).to_string();
        c.bench_function(&format!("repeat_get/{tag}"), |b| {
            b.iter(|| black_box(s.get(&req(&ctx), &host).unwrap()))
        });

        let s = stage(mode, json!({"rate_limit_initial_send": false}));
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

        let s = stage(mode, json!({"recovery_max_attempts": 1}));
        let ctx = json!({"pending_user": user(), "email_sent": true}).to_string();
        s.challenge_invalid(&req(&ctx), &json!({}), &host).unwrap();
        let body = json!({"component": "ak-stage-email"});
        c.bench_function(&format!("rate_limited_post/{tag}"), |b| {
            b.iter(|| black_box(s.challenge_invalid(&req(&ctx), &body, &host).unwrap()))
        });

        let s = stage(mode, json!({"activate_user_on_success": true}));
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
