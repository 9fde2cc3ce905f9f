//! # The plugin author's guide
//!
//! A walk through one real stage, a "confirm your email with a code" step, from an
//! empty crate to a library a host loads. Every Rust block here compiles and runs
//! as a test of this crate. `host-harness new-plugin <name>` writes the same
//! skeleton for you; `examples/email-code-stage` is the finished stage.
//!
//! ## 1. The crate
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # the library hosts load; the rlib for tests
//!
//! [dependencies]
//! plugin-api = { version = "0.3", features = ["guest", "mail"] }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//!
//! [dev-dependencies]
//! plugin-api = { version = "0.3", features = ["testing", "host", "mail"] }
//! ```
//!
//! Keep `panic = "unwind"` (the default): hosts refuse a library built with
//! `abort`, because a panic is caught at the boundary and becomes
//! [`StageError::Panicked`](crate::StageError::Panicked).
//!
//! ## 2. Configuration: one type, its schema and its parser
//!
//! The host checks each stage's configuration against the schema your kind
//! declares before it calls you, and names the stage and the JSON path of a bad
//! value. Derive both from one type ([`config`](crate::config)); errors from
//! [`config::parse`](crate::config::parse) start with the field's path.
//!
//! ```
//! use plugin_api::schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// Configuration of a `confirm-code` stage.
//! #[derive(Deserialize, JsonSchema)]
//! #[schemars(crate = "plugin_api::schemars")]
//! #[serde(deny_unknown_fields, default)]
//! pub struct Config {
//!     /// Minutes a code is valid.
//!     #[schemars(range(min = 1, max = 60))]
//!     pub valid_minutes: u32,
//! }
//! impl Default for Config {
//!     fn default() -> Self { Self { valid_minutes: 10 } }
//! }
//!
//! let err = plugin_api::config::parse::<Config>(r#"{"valid_minutes": "ten"}"#).err().unwrap();
//! assert!(err.to_string().contains("valid_minutes"));
//! ```
//!
//! ## 3. The protocol: hooks, challenges, components
//!
//! The host runs a flow as a plan of stages, one at a time, with authentik's
//! executor protocol. For the current stage it calls:
//!
//! - [`Stage::get`](crate::Stage::get) on **every** GET, reloads included: do not
//!   send a second mail on a reload (keep a flag in the context or flow state);
//! - [`Stage::challenge_invalid`](crate::Stage::challenge_invalid) on **every**
//!   POST, valid or not (the name is authentik's); you decide validity;
//! - [`Stage::restore`](crate::Stage::restore) instead of `get` when the plan came
//!   back from a link (section 6); it defaults to `get`.
//!
//! A hook answers a [`HookResult`](crate::HookResult): an
//! [`Outcome`](crate::Outcome) plus context changes and flash messages.
//! `Challenge(json)` is shown to the user: an object with a `component`; the host
//! adds `flow_info` (title, cancel URL) and the pending `messages`. `StageOk`
//! moves to the next stage. `StageInvalid(message)` denies access with that
//! message and ends the flow.
//!
//! The reference flow page renders `ak-stage-identification`, `ak-stage-prompt`,
//! `ak-stage-email`, `ak-stage-consent`, `ak-stage-terms`, `ak-stage-access-denied`,
//! `ak-stage-flow-error`, `xak-flow-redirect` and the generic **`xak-form`**
//! ([`form`](crate::form)): a heading, text, typed fields, buttons and errors by
//! field, so your stage needs no JavaScript. Anything else is named on the page
//! as a step it cannot show. A form posts `{"component": "xak-form", <field>:
//! <value>, …}` plus the clicked button's `name` and `value`.
//!
//! ## 4. Context and per-flow state
//!
//! The plan context is a JSON object the stages of one flow share
//! ([`StageRequest::context`](crate::StageRequest::context)). Keys the host and its
//! built-in stages set: `pending_user` (the [`User`](crate::User) the flow is
//! about; `id` is `None` for a placeholder an identification stage made up for an
//! unknown identifier), `is_restored` (the consumed [`FlowToken`](crate::FlowToken)
//! on a restored plan), `email` (an address override). A result's `context_set`
//! is applied **whatever the outcome**, a challenge included.
//!
//! For your own state between `get` and the POST, use the flow state
//! ([`Host::flow_state_get`](crate::Host::flow_state_get) /
//! [`Host::flow_state_set`](crate::Host::flow_state_set)): keys private to your
//! stage in this plan, gone when the plan ends, bounded in size. The cache
//! ([`Host::cache_get`](crate::Host::cache_get)) and rate limiter are shared by
//! all flows; their keys are namespaced per plugin by the host.
//!
//! ## 5. A stage: a page, a mail, a check
//!
//! ```
//! use plugin_api::form::{Field, FieldKind, Form};
//! use plugin_api::token::{constant_time_eq, sha256_hex};
//! use plugin_api::{HookResult, Host, OutgoingMail, Outcome, Stage, StageError, StageRequest, User};
//! use serde_json::Value;
//!
//! pub struct ConfirmCode;
//!
//! fn page() -> Form {
//!     Form::new("Enter the code we sent you")
//!         .field(Field::new("code", "Code", FieldKind::Code).required())
//! }
//!
//! fn pending(req: &StageRequest<'_>) -> Result<User, StageError> {
//!     let ctx = req.context()?;
//!     let user = ctx.get("pending_user").cloned().unwrap_or(Value::Null);
//!     serde_json::from_value(user).map_err(|e| StageError::BadContext(format!("pending_user: {e}")))
//! }
//!
//! impl Stage for ConfirmCode {
//!     fn get(&self, req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
//!         if host.flow_state_get("code")?.is_none() {
//!             let user = pending(req)?;
//!             let mut b = [0u8; 4];
//!             host.fill_random(&mut b)?;
//!             let code = format!("{:06}", u32::from_le_bytes(b) % 1_000_000);
//!             host.flow_state_set("code", &sha256_hex(&code))?; // the hash, never the code
//!             let mail = OutgoingMail::builder()
//!                 .to(&user.name, &user.email)
//!                 .subject("Your code")
//!                 .text(&format!("Your code is {code}."))
//!                 .build(host)?;
//!             host.enqueue_mail(&mail)?;
//!         }
//!         Ok(HookResult::new(Outcome::Challenge(page().challenge())))
//!     }
//!     fn challenge_invalid(&self, _: &StageRequest<'_>, body: &Value, host: &dyn Host)
//!         -> Result<HookResult, StageError> {
//!         let typed = sha256_hex(body["code"].as_str().unwrap_or(""));
//!         match host.flow_state_get("code")? {
//!             Some(h) if constant_time_eq(&h, &typed) => Ok(HookResult::new(Outcome::StageOk)),
//!             _ => Ok(HookResult::new(Outcome::Challenge(
//!                 page().error("code", "That code is not valid.").challenge(),
//!             ))),
//!         }
//!     }
//! }
//! # let _ = ConfirmCode;
//! ```
//!
//! Mail is queued, never sent from the hook: the host's outbox delivers it, retries
//! it and keeps it across restarts. [`OutgoingMail::builder`](crate::OutgoingMail)
//! (feature `mail`) writes the message: encoded headers, `Date` from the host's
//! clock, `Message-ID` from its randomness. For an unknown user, queue the same
//! mail with `.decoy(true)`: it costs the same and is never delivered, so the
//! answer does not tell who has an account.
//!
//! ## 6. Links: token, confirmation, restore
//!
//! A stage that mails a link (as the email stage does) creates a flow token
//! ([`Host::create_flow_token`](crate::Host::create_flow_token)) with the SHA-256
//! of a random key ([`token::generate_key`](crate::token::generate_key)); the host
//! stores a snapshot of the plan with it. The link is
//! `{base_url}/if/flow/{slug}/?flow_token={key}` (build it from
//! `StageRequest::base_url`, never from request headers). Opening it restores the
//! snapshot in the opener's browser, shows a confirmation (`ak-stage-consent`)
//! and, once confirmed, consumes the token and calls your `restore` with it.
//!
//! ## 7. Errors as the user sees them
//!
//! | the hook returns | the user sees |
//! |---|---|
//! | `Outcome::StageInvalid(Some(m))` | access denied with `m`; the flow ends |
//! | `Err(StageError::Panicked(_))` (a panic) | access denied, "Unknown error"; a `system_exception` event |
//! | any other `Err` | the flow error page with a request id; a `system_exception` event |
//!
//! The host's fault policy may instead skip your stage after a failure
//! (`on_plugin_failure = "skip"`), and quarantines a stage whose plugin keeps
//! panicking. Never put a secret in an error message: it reaches events and logs.
//!
//! ## 8. Logging
//!
//! Log with `tracing` as usual. Through the library your lines reach the host's
//! subscriber under your own target, inside the host's request and hook spans:
//! `RUST_LOG=my_plugin=debug` selects them. Never log a link, token or code.
//!
//! ## 9. Tests
//!
//! [`testing::FakeHost`](crate::testing::FakeHost) is every host service in memory
//! with a hand-moved clock and fixed-seed randomness;
//! [`testing::FakeFlow`](crate::testing::FakeFlow) drives your stage as the
//! executor does; [`testing::conformance`](crate::testing::conformance) is the
//! battery every stage must pass, also run by `host-harness check-plugin
//! <library>`; [`testing::build_cdylib`](crate::testing::build_cdylib) builds your
//! library for a test through [`load_plugin`](crate::load_plugin).
//!
//! ```
//! # use plugin_api::{HookResult, Host, Outcome, Stage, StageError, StageRequest};
//! # use serde_json::{json, Value};
//! # struct Pass;
//! # impl Stage for Pass {
//! #     fn get(&self, _: &StageRequest<'_>, _: &dyn Host) -> Result<HookResult, StageError> {
//! #         Ok(HookResult::new(Outcome::Challenge(json!({"component": "xak-form"}))))
//! #     }
//! #     fn challenge_invalid(&self, _: &StageRequest<'_>, _: &Value, _: &dyn Host)
//! #         -> Result<HookResult, StageError> { Ok(HookResult::new(Outcome::StageOk)) }
//! # }
//! use plugin_api::testing::{FakeFlow, FakeHost};
//!
//! let host = FakeHost::new();
//! let mut flow = FakeFlow::new(&Pass, &host);
//! assert!(matches!(flow.get().unwrap(), Outcome::Challenge(_)));
//! assert_eq!(flow.post(json!({})).unwrap(), Outcome::StageOk);
//! ```
//!
//! ## 10. Loading it in a host
//!
//! ```toml
//! [[plugins]]
//! path = "target/release/libconfirm_code.so"
//! sha256 = "…"                 # optional: `host-harness inspect <library>` prints it
//!
//! [[stages]]
//! name = "confirm"
//! kind = "confirm-code"
//! config = { valid_minutes = 10 }
//! on_plugin_failure = "deny"   # the default
//!
//! [[flows]]
//! slug = "confirm"
//! designation = "authentication"
//! stages = ["confirm"]
//! ```
//!
//! `host-harness check host.toml` loads the library, checks every stage's
//! configuration against your schema and builds it, without side effects.
//! `host-harness serve --clock manual` lets a test move the served host's clock
//! (`POST /-/test/clock`) to reach expiries and rate-limit windows.
//!
//! ## 11. Evolving without breaking
//!
//! A plugin and a host load together when their `plugin-api` versions share the
//! major version (for 0.x the minor), whichever is newer: see the crate docs,
//! "Evolution". Add optional JSON fields with `#[serde(default)]`; never rename or
//! retype one; rebuild your plugin for a new minor version of 0.x.
