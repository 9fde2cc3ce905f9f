//! The types that cross the dynamic-library boundary.
//!
//! Everything here is `#[repr(C)]` and derives [`StableAbi`], so abi_stable checks the
//! layout of the whole graph when a host loads a plugin. Plugin authors and hosts do
//! not use these types directly: [`crate::export_plugin!`] and [`crate::load_plugin`]
//! adapt them to the plain traits [`crate::Stage`] and [`crate::Host`].
//!
//! # Evolution
//!
//! The function tables ([`StagePluginMod`], [`StageVTable`], [`HostVTable`]) are
//! *prefix types*: fields are only ever appended, and changing or removing one, or
//! any value type below, is a breaking change.
//!
//! abi_stable checks a prefix type in one direction: the loading side (the host)
//! may know *fewer* fields than the loaded side (the plugin), never more. A host
//! whose table gained a field therefore refuses every plugin built before it (seen:
//! `too many fields Expected: 17 Found: 15` for a plugin built against 0.1 in a 0.2
//! host), whichever side provides the table. So today a field added to any table
//! is a minor version bump (0.1 → 0.2) and plugins are rebuilt once; a field a
//! peer lacks can only be met by a plugin newer than its host, and reads as `None`
//! there (the plugin then gets [`crate::HostError::Unsupported`]).

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
    /// Last field of the version 0.2 prefix; append new hooks below it.
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
#[sabi(missing_field(panic))]
pub struct StagePluginMod {
    /// `cfg!(panic = "unwind")` of the plugin build; hosts refuse `false`.
    pub panic_unwind: bool,
    /// `plugin-api` version the plugin was built against.
    pub api_version: RStr<'static>,
    /// The manifest as JSON.
    pub manifest: extern "C" fn() -> RResult<RString, FfiError>,
    /// Validates a configuration and builds a stage: `(kind, name, config_json)`.
    ///
    /// Last field of the prefix (unchanged since 0.1); new module functions go below
    /// it and must be read as optional by hosts.
    #[sabi(last_prefix_field)]
    pub new_stage: extern "C" fn(RStr<'_>, RStr<'_>, RStr<'_>) -> RResult<FfiStage, FfiError>,
}

impl RootModule for StagePluginModRef {
    declare_root_module_statics! {StagePluginModRef}
    const BASE_NAME: &'static str = "identity_stage_plugin";
    const NAME: &'static str = "identity_stage_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
