//! The stable ABI between identity-server hosts and stage plugins.
//!
//! A *stage* is one step of a flow (identification, password, email verification, …).
//! A *plugin* is a dynamic library that provides one or more stage kinds. This crate
//! is all a plugin author or a host needs. Plugin authors: start with the
//! [`guide`], which walks one real stage from an empty crate to a loaded library.
//!
//! # Lifecycle
//!
//! 1. **Load once per process.** The host calls [`load_plugin`] with the library's
//!    path. abi_stable checks the layout of every type that crosses the boundary and
//!    the `plugin-api` version the plugin was built against; a mismatch is refused
//!    with [`LoadError::Incompatible`] naming both versions. A plugin built with
//!    `panic = "abort"` is refused too. Libraries are never unloaded.
//! 2. **One stage per binding.** The host first checks a stage's configuration
//!    (JSON) against the schema its kind declares ([`StageKind::config_schema`],
//!    derived from the plugin's config type: see [`config`]); then
//!    [`Plugin::new_stage`] checks what a schema cannot say and returns a
//!    [`Stage`], or a [`StageError::Config`] that says which field is wrong.
//! 3. **One host handle per call.** For every request the host calls a hook
//!    ([`Stage::get`], [`Stage::challenge_invalid`], [`Stage::restore`]) with a
//!    [`StageRequest`] and a borrowed [`Host`]: users, flow tokens, cache with an
//!    atomic rate limiter, events, mail queue, logging, clock and randomness. The
//!    plugin never keeps the host past the call. The hook answers with a
//!    [`HookResult`]: a challenge, stage ok or stage invalid, plus context changes and
//!    flash messages.
//!
//! A panic inside a hook is caught at the boundary and becomes
//! [`StageError::Panicked`]; a panic inside a host service becomes
//! [`HostError::Panicked`]. Nothing unwinds across the boundary.
//!
//! # Writing a plugin
//!
//! ```
//! use plugin_api::{
//!     export_plugin, Host, HookResult, Manifest, Outcome, Plugin, Stage, StageError,
//!     StageKind, StageRequest,
//! };
//!
//! struct Hello;
//! struct HelloStage;
//!
//! impl Stage for HelloStage {
//!     fn get(&self, _req: &StageRequest<'_>, _host: &dyn Host) -> Result<HookResult, StageError> {
//!         Ok(HookResult::new(Outcome::Challenge(serde_json::json!({"component": "x-hello"}))))
//!     }
//!     fn challenge_invalid(&self, _: &StageRequest<'_>, _: &serde_json::Value, _: &dyn Host)
//!         -> Result<HookResult, StageError> {
//!         Ok(HookResult::new(Outcome::StageOk))
//!     }
//!     // `restore` defaults to `get`.
//! }
//!
//! impl Plugin for Hello {
//!     fn manifest(&self) -> Manifest {
//!         plugin_api::manifest![StageKind {
//!                 kind: "hello".into(),
//!                 component: "x-hello".into(),
//!                 config_schema: serde_json::json!({"type": "object"}),
//!             }]
//!     }
//!     fn new_stage(&self, kind: &str, _name: &str, _config: &str)
//!         -> Result<Box<dyn Stage>, StageError> {
//!         match kind {
//!             "hello" => Ok(Box::new(HelloStage)),
//!             other => Err(StageError::UnknownKind(other.into())),
//!         }
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! Build it as `crate-type = ["cdylib", "rlib"]` with `panic = "unwind"` (the
//! default). The `rlib` lets tests call the same plugin in-process, without FFI.
//!
//! Features for plugin authors: `guest` (`export_plugin!`), `testing`
//! (`testing::FakeHost`, a host in memory with a hand-moved clock, and
//! `testing::build_cdylib`, which builds and finds the plugin's library for FFI
//! tests), and `mail` (`OutgoingMail::builder()`, module `mail`: a correct
//! RFC 5322 message from recipients, subject and bodies, never MIME by hand). A
//! plugin's `tracing` lines keep their target in the host's logs.
//!
//! # Embedding plugins in a host
//!
//! Implement [`Host`] for a per-request handle and call the hooks through
//! `Box<dyn Stage>`; stages from [`load_plugin`] and in-process stages look the same:
//!
//! ```no_run
//! # fn demo(host: &dyn plugin_api::Host) -> Result<(), Box<dyn std::error::Error>> {
//! use plugin_api::{load_plugin, Plugin, StageRequest};
//! let plugin = load_plugin(std::path::Path::new("target/release/libemail_stage_plugin.so"))?;
//! let stage = plugin.new_stage("email", "verify-email", r#"{"template": "email/account_confirmation.html"}"#)?;
//! let req = StageRequest {
//!     flow_slug: "enroll", flow_designation: "enrollment", stage_name: "verify-email",
//!     query: "", base_url: "https://id.example.com", locale: "", requester_id: None,
//!     context_json: r#"{"pending_user": {"id": "1", "username": "jane", "email": "jane@example.com"}}"#,
//! };
//! let result = stage.get(&req, host)?;
//! # let _ = result; Ok(()) }
//! ```
//!
//! # Evolution
//!
//! A plugin and a host are compatible when their `plugin-api` versions have the
//! same major version (for 0.x the same minor version), whichever is newer
//! ([`api_compatible`]). [`load_plugin`] reads the version built into the library,
//! then checks the layout of every type crossing the boundary with the older
//! side's types as the reference, and refuses a mismatch naming both versions, or
//! the type, the path to it and the differing field, once. The rules:
//!
//! - **Tables** ([`abi::StagePluginMod`], [`abi::StageVTable`], [`abi::HostVTable`])
//!   only gain fields, appended after the last one: a patch release of 0.x. A
//!   host service the host lacks answers [`HostError::Unsupported`]; a hook the
//!   plugin lacks reads as absent. Changing, reordering or removing a field, or
//!   changing any other `#[repr(C)]` type in [`abi`], is breaking.
//! - **JSON types** ([`User`], [`FlowToken`], [`NewFlowToken`], [`OutgoingMail`],
//!   [`MailRoute`], [`StageKind`], [`Manifest`]): a new field is optional with
//!   `#[serde(default)]`; unknown fields are ignored by both sides (no
//!   `deny_unknown_fields`); renaming, removing or retyping a field, or adding a
//!   required one, is breaking. Each type's JSON Schema is snapshotted in
//!   `plugin-api/contract/` and compared by `tests/json_contract.rs`.
//! - **Breaking** changes take a new minor version of 0.x (a major one from 1.0)
//!   and plugins are rebuilt.
//!
//! `tests/tests/skew.rs` in the repository proves both directions with real
//! libraries built against a frozen copy of 0.3.0. 0.3.1 appended
//! [`Host::host_info`] and `User::attributes`.

#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod abi;
pub mod address;
pub mod config;
#[cfg_attr(not(all(feature = "host", feature = "guest")), allow(dead_code))]
mod convert;
mod error;
pub mod form;
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod guest;
pub mod guide;
mod host;
#[cfg(feature = "host")]
mod layout_report;
#[cfg(feature = "host")]
mod loader;
pub mod log_target;
#[cfg_attr(not(feature = "guest"), allow(dead_code))]
mod logging;
#[cfg(feature = "mail")]
pub mod mail;
pub mod ratelimit;
mod stage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
mod types;
#[cfg_attr(not(all(feature = "host", feature = "guest")), allow(dead_code))]
mod wire;

pub use abi_stable;
pub use error::{HostError, LoadError, StageError};
pub use host::{
    check_flow_state, Host, FLOW_STATE_MAX_KEY, FLOW_STATE_MAX_KEYS, FLOW_STATE_MAX_VALUE,
};
#[cfg(feature = "host")]
pub use loader::{load_plugin, LoadedPlugin};
pub use logging::emit_to_host_tracing;
/// The `schemars` this crate is built with: derive a config type's
/// [`schemars::JsonSchema`] through it (`#[schemars(crate = "plugin_api::schemars")]`),
/// see [`config`].
pub use schemars;
/// The `serde_json` this crate is built with: its `Value` is in the traits.
pub use serde_json;
pub use stage::{Plugin, Stage};
pub use types::{
    Brand, FlowToken, HookResult, LogLevel, MailRoute, Manifest, Message, MessageLevel,
    NewFlowToken, Outcome, OutgoingMail, RateLimit, SmtpSettings, StageKind, StageRequest, User,
};

/// Version of this crate: the API version plugins and hosts are built against.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether a plugin built against `plugin` can be used by a host built against
/// `host`, in either direction: the same major version, or for 0.x the same minor
/// version (for 0.0.x the same patch), as Cargo reads a caret requirement. Within
/// a compatible pair either side may be newer: tables only ever gain fields.
pub fn api_compatible(host: &str, plugin: &str) -> bool {
    match (semver::Version::parse(host), semver::Version::parse(plugin)) {
        (Ok(h), Ok(p)) => match (h.major, h.minor) {
            (0, 0) => p.major == 0 && p.minor == 0 && p.patch == h.patch,
            (0, minor) => p.major == 0 && p.minor == minor,
            (major, _) => p.major == major,
        },
        _ => false,
    }
}

/// Builds the calling crate's [`Manifest`] from its stage kinds: the name and
/// version come from the crate's own `Cargo.toml` (`CARGO_PKG_NAME`,
/// `CARGO_PKG_VERSION`), the `plugin-api` version from [`API_VERSION`].
///
/// ```
/// let m = plugin_api::manifest![plugin_api::StageKind {
///     kind: "hello".into(),
///     component: "x-hello".into(),
///     config_schema: serde_json::json!({"type": "object"}),
/// }];
/// assert_eq!(m.api_version, plugin_api::API_VERSION);
/// ```
#[macro_export]
macro_rules! manifest {
    ($($stage:expr),* $(,)?) => {
        $crate::Manifest::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            ::std::vec![$($stage),*],
        )
    };
}

/// Exports a [`Plugin`] value as this library's root module (feature `guest`).
///
/// The plugin's name and version are the crate's own (`CARGO_PKG_NAME`,
/// `CARGO_PKG_VERSION`) and its `plugin-api` version the one it is compiled with:
/// a host reads these from the library, whatever [`Plugin::manifest`] says.
///
/// Use once, at the crate root of a `cdylib`. Every hook is wrapped so a panic
/// becomes an error result, and the plugin's `tracing` events are forwarded to the
/// host. The plugin crate needs no dependency besides `plugin-api`: the macro
/// writes out what abi_stable's `#[export_root_module]` would, through this crate's
/// re-export.
#[cfg(feature = "guest")]
#[macro_export]
macro_rules! export_plugin {
    ($plugin:expr) => {
        const _: () = {
            fn __make() -> ::std::boxed::Box<dyn $crate::Plugin> {
                ::std::boxed::Box::new($plugin)
            }
            fn __root() -> $crate::abi::StagePluginModRef {
                $crate::guest::root_module(
                    __make,
                    cfg!(panic = "unwind"),
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                )
            }
            extern "C" fn __erased() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__root)
            }
            /// The library header abi_stable looks up (name checked by a test in plugin-api).
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static __IDENTITY_STAGE_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = unsafe {
                // SAFETY: the same construction abi_stable's #[export_root_module] emits.
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::abi::StagePluginModRef>(
                    __erased,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

#[cfg(test)]
mod tests {
    use super::api_compatible;

    #[test]
    fn semver_rules() {
        assert!(api_compatible("0.1.0", "0.1.7"));
        assert!(api_compatible("0.1.7", "0.1.0"), "either side may be newer");
        assert!(!api_compatible("0.0.1", "0.0.2"));
        assert!(!api_compatible("0.1.0", "0.2.0"));
        assert!(api_compatible("1.2.0", "1.0.0"));
        assert!(!api_compatible("1.0.0", "2.0.0"));
        assert!(!api_compatible("0.1.0", "garbage"));
    }

    #[test]
    fn export_symbol_is_abi_stables() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
