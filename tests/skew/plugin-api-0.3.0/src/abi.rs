//! The types that cross the dynamic-library boundary.
//!
//! Everything here is `#[repr(C)]` and derives [`StableAbi`], so abi_stable checks the
//! layout of the whole graph when a host loads a plugin. Plugin authors and hosts do
//! not use these types directly: [`crate::export_plugin!`] and [`crate::load_plugin`]
//! adapt them to the plain traits [`crate::Stage`] and [`crate::Host`].
//!
//! # Evolution
//!
//! The rules for every type here and for the JSON types are in one place, the
//! crate documentation's "Evolution" section. In short: the function tables
//! ([`StagePluginMod`], [`StageVTable`], [`HostVTable`]) are *prefix types* whose
//! fields are only ever appended; every other type here is frozen.
//!
//! abi_stable's own loader checks prefix types in one direction only (the loading
//! side may know fewer fields than the library), which would refuse every older
//! plugin once a host service is appended. [`crate::load_plugin`] therefore checks
//! the layout itself with the *older* side as the interface: its version is built
//! into the library (abi_stable's `VersionStrings`, from this crate's
//! `CARGO_PKG_VERSION`), never typed by a plugin author.

use std::ffi::c_void;
use std::marker::PhantomData;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// An error crossing the boundary: a numeric kind and a detail text.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    /// Kind, see `StageError::code` / `HostError::code`.
    pub code: u8,
    /// Human-readable detail.
    pub detail: RString,
}

/// Borrowed view of the request a hook runs for (see [`crate::StageRequest`]).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiRequest<'a> {
    /// Flow slug.
    pub flow_slug: RStr<'a>,
    /// Flow designation.
    pub flow_designation: RStr<'a>,
    /// Stage binding name.
    pub stage_name: RStr<'a>,
    /// Executor `query` parameter, undecoded.
    pub query: RStr<'a>,
    /// Public base URL.
    pub base_url: RStr<'a>,
    /// Request locale.
    pub locale: RStr<'a>,
    /// Signed-in requester id.
    pub requester_id: ROption<RStr<'a>>,
    /// Plan context, JSON object text.
    pub context_json: RStr<'a>,
}

/// Kind of [`FfiHookResult`].
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfiOutcomeKind {
    /// `challenge_json` holds the challenge.
    Challenge = 0,
    /// Stage passed.
    StageOk = 1,
    /// Stage failed, `invalid_message` holds the optional message.
    StageInvalid = 2,
}

/// A flash message on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct FfiMessage {
    /// 0 success, 1 error, 2 info, 3 warning.
    pub level: u8,
    /// Text.
    pub message: RString,
}

/// Result of a hook on the wire (see [`crate::HookResult`]).
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiHookResult {
    /// Outcome kind.
    pub kind: FfiOutcomeKind,
    /// Challenge JSON object, for `Challenge`.
    pub challenge_json: RString,
    /// Access-denied message, for `StageInvalid`.
    pub invalid_message: ROption<RString>,
    /// Context keys to set, values as JSON text.
    pub context_set: RVec<Tuple2<RString, RString>>,
    /// Flash messages.
    pub messages: RVec<FfiMessage>,
}

/// Result of the rate-limit service on the wire.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct FfiRateLimit {
    /// Whether the attempt was refused.
    pub limited: bool,
    /// Milliseconds until an attempt can be allowed, when limited.
    pub retry_after_ms: u64,
}

/// A mail on the wire: metadata as JSON (an [`crate::OutgoingMail`] with an empty
/// `raw`) and the message bytes apart, so they are not JSON-encoded.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiMail<'a> {
    /// `OutgoingMail` JSON without `raw`.
    pub meta_json: RStr<'a>,
    /// The RFC 5322 message.
    pub raw: abi_stable::std_types::RSlice<'a, u8>,
}

/// Opaque host object pointer.
pub type HostThis = *const c_void;

pub use crate::host::{HostVTable, HostVTableRef};

/// A borrowed host: object pointer plus function table, valid for one hook call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiHost<'a> {
    /// Opaque host object.
    pub this: *const c_void,
    /// Functions to call with `this`.
    pub vtable: HostVTableRef,
    /// Ties the pointer to the borrow it was made from.
    pub _borrow: PhantomData<&'a ()>,
}

/// Opaque stage object pointer.
pub type StageThis = *mut c_void;

/// The function table of a stage instance.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = StageVTableRef)))]
#[sabi(missing_field(option))]
pub struct StageVTable {
    /// Frees the stage object.
    pub drop: unsafe extern "C" fn(*mut c_void),
    /// [`crate::Stage::get`].
    pub get: unsafe extern "C" fn(
        *const c_void,
        &FfiRequest<'_>,
        FfiHost<'_>,
    ) -> RResult<FfiHookResult, FfiError>,
    /// [`crate::Stage::challenge_invalid`]; the response body as JSON.
    pub challenge_invalid: unsafe extern "C" fn(
        *const c_void,
        &FfiRequest<'_>,
        RStr<'_>,
        FfiHost<'_>,
    ) -> RResult<FfiHookResult, FfiError>,
    /// [`crate::Stage::restore`]; the token as JSON.
    pub restore: unsafe extern "C" fn(
        *const c_void,
        &FfiRequest<'_>,
        RStr<'_>,
        FfiHost<'_>,
    ) -> RResult<FfiHookResult, FfiError>,
    /// [`crate::Stage::mail_route`]: the route as [`crate::MailRoute`] JSON, or none.
    ///
    /// Last field of the prefix (fixed since 0.2); append new hooks below it.
    #[sabi(last_prefix_field)]
    pub mail_route: unsafe extern "C" fn(*const c_void) -> RResult<ROption<RString>, FfiError>,
}

/// An owned stage instance created by a plugin.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiStage {
    /// Opaque stage object owned by the plugin.
    pub this: *mut c_void,
    /// Its functions.
    pub vtable: StageVTableRef,
}

/// The root module every stage plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = StagePluginModRef)))]
#[sabi(missing_field(option))]
pub struct StagePluginMod {
    /// `cfg!(panic = "unwind")` of the plugin build; hosts refuse `false`.
    pub panic_unwind: bool,
    /// The plugin crate's name (`CARGO_PKG_NAME`, filled by [`crate::export_plugin!`]).
    pub name: RStr<'static>,
    /// The plugin crate's version (`CARGO_PKG_VERSION`, filled by
    /// [`crate::export_plugin!`]). The `plugin-api` version it was built against is
    /// in the library header, where abi_stable puts it.
    pub version: RStr<'static>,
    /// The manifest as JSON.
    pub manifest: extern "C" fn() -> RResult<RString, FfiError>,
    /// Validates a configuration and builds a stage: `(kind, name, config_json)`.
    ///
    /// Last field of the prefix (since 0.3); new module functions go below it and
    /// are read as optional by hosts.
    #[sabi(last_prefix_field)]
    pub new_stage: extern "C" fn(RStr<'_>, RStr<'_>, RStr<'_>) -> RResult<FfiStage, FfiError>,
}

impl RootModule for StagePluginModRef {
    declare_root_module_statics! {StagePluginModRef}
    const BASE_NAME: &'static str = "identity_stage_plugin";
    const NAME: &'static str = "identity_stage_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
