//! Plugin side of the boundary: exports a [`Plugin`] as the root module and lets
//! stage code call host services through a plain [`Host`].

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use abi_stable::prefix_type::{PrefixTypeTrait, WithMetadata};
use abi_stable::std_types::{ROption, RResult, RStr, RString};

use crate::abi::{
    FfiError, FfiHookResult, FfiHost, FfiRequest, FfiStage, StagePluginMod, StagePluginModRef,
    StageVTable, StageVTableRef,
};
use crate::convert::{panic_text, request_from_ffi, result_to_ffi, stage_err_to_ffi};
use crate::host::{Host, HostClient};
use crate::stage::{Plugin, Stage};
use crate::types::FlowToken;
use crate::StageError;

static PLUGIN: OnceLock<Box<dyn Plugin>> = OnceLock::new();

/// Builds the root module for `make`'s plugin. Called by [`crate::export_plugin!`];
/// not meant to be called directly.
#[doc(hidden)]
pub fn root_module(
    make: fn() -> Box<dyn Plugin>,
    panic_unwind: bool,
    name: &'static str,
    version: &'static str,
) -> StagePluginModRef {
    PLUGIN.get_or_init(make);
    crate::logging::install_forwarder();
    StagePluginMod {
        panic_unwind,
        name: RStr::from_str(name),
        version: RStr::from_str(version),
        manifest: manifest_ffi,
        new_stage: new_stage_ffi,
    }
    .leak_into_prefix()
}

fn guard<T>(f: impl FnOnce() -> Result<T, StageError>) -> RResult<T, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(stage_err_to_ffi(&e)),
        Err(p) => RResult::RErr(stage_err_to_ffi(&StageError::Panicked(panic_text(&*p)))),
    }
}

fn plugin() -> Result<&'static dyn Plugin, StageError> {
    PLUGIN
        .get()
        .map(|b| &**b)
        .ok_or_else(|| StageError::Internal("plugin root module not initialised".into()))
}

extern "C" fn manifest_ffi() -> RResult<RString, FfiError> {
    guard(|| {
        let m = plugin()?.manifest();
        serde_json::to_string(&m)
            .map(RString::from)
            .map_err(|e| StageError::Internal(e.to_string()))
    })
}

extern "C" fn new_stage_ffi(
    kind: RStr<'_>,
    name: RStr<'_>,
    config: RStr<'_>,
) -> RResult<FfiStage, FfiError> {
    guard(|| {
        let stage = plugin()?.new_stage(kind.as_str(), name.as_str(), config.as_str())?;
        let this = Box::into_raw(Box::new(stage)) as *mut c_void;
        Ok(FfiStage {
            this,
            vtable: STAGE_VTABLE,
        })
    })
}

const STAGE_VTABLE_WM: &WithMetadata<StageVTable> = &WithMetadata::new(StageVTable {
    drop: stage_drop,
    get: stage_get,
    challenge_invalid: stage_challenge_invalid,
    restore: stage_restore,
    mail_route: stage_mail_route,
});

const STAGE_VTABLE: StageVTableRef = StageVTableRef(STAGE_VTABLE_WM.static_as_prefix());

/// # Safety
/// `this` must come from `new_stage_ffi` and not be used afterwards.
unsafe extern "C" fn stage_drop(this: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: created by Box::into_raw(Box<Box<dyn Stage>>) in new_stage_ffi.
        drop(unsafe { Box::from_raw(this as *mut Box<dyn Stage>) });
    }));
}

/// # Safety
/// `this` must be a live stage from `new_stage_ffi`.
unsafe fn stage_ref<'a>(this: *const c_void) -> &'a dyn Stage {
    // SAFETY: see caller contract.
    unsafe { &**(this as *const Box<dyn Stage>) }
}

fn run_hook(
    host: FfiHost<'_>,
    f: impl FnOnce(&dyn Host) -> Result<crate::HookResult, StageError>,
) -> RResult<FfiHookResult, FfiError> {
    let client = HostClient { ffi: host };
    let _scope = crate::logging::HostScope::enter(host);
    guard(|| f(&client).map(result_to_ffi))
}

unsafe extern "C" fn stage_get(
    this: *const c_void,
    req: &FfiRequest<'_>,
    host: FfiHost<'_>,
) -> RResult<FfiHookResult, FfiError> {
    // SAFETY: the host passes back the pointer it got from new_stage_ffi.
    let stage = unsafe { stage_ref(this) };
    let req = request_from_ffi(req);
    run_hook(host, |h| stage.get(&req, h))
}

unsafe extern "C" fn stage_challenge_invalid(
    this: *const c_void,
    req: &FfiRequest<'_>,
    response: RStr<'_>,
    host: FfiHost<'_>,
) -> RResult<FfiHookResult, FfiError> {
    // SAFETY: as in stage_get.
    let stage = unsafe { stage_ref(this) };
    let req = request_from_ffi(req);
    run_hook(host, |h| {
        let body: serde_json::Value = if response.is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(response.as_str())
                .map_err(|e| StageError::Internal(format!("malformed response body: {e}")))?
        };
        stage.challenge_invalid(&req, &body, h)
    })
}

unsafe extern "C" fn stage_restore(
    this: *const c_void,
    req: &FfiRequest<'_>,
    token: RStr<'_>,
    host: FfiHost<'_>,
) -> RResult<FfiHookResult, FfiError> {
    // SAFETY: as in stage_get.
    let stage = unsafe { stage_ref(this) };
    let req = request_from_ffi(req);
    run_hook(host, |h| {
        let token: FlowToken = serde_json::from_str(token.as_str())
            .map_err(|e| StageError::Internal(format!("malformed flow token: {e}")))?;
        stage.restore(&req, &token, h)
    })
}

unsafe extern "C" fn stage_mail_route(this: *const c_void) -> RResult<ROption<RString>, FfiError> {
    // SAFETY: as in stage_get.
    let stage = unsafe { stage_ref(this) };
    guard(|| match stage.mail_route() {
        None => Ok(ROption::RNone),
        Some(route) => serde_json::to_string(&route)
            .map(|j| ROption::RSome(RString::from(j)))
            .map_err(|e| StageError::Internal(e.to_string())),
    })
}
