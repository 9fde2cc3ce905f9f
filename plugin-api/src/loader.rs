//! Host side of the boundary: loads plugin libraries and lends a [`Host`] to their
//! hooks.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::prefix_type::WithMetadata;
use abi_stable::std_types::{ROption, RResult, RSliceMut, RStr, RString};

use crate::abi::{
    FfiError, FfiHost, FfiMail, FfiRateLimit, FfiStage, HostVTable, HostVTableRef,
    StagePluginModRef,
};
use crate::convert::{
    host_err_to_ffi, panic_text, request_to_ffi, result_from_ffi, stage_err_from_ffi,
};
use crate::host::Host;
use crate::stage::{Plugin, Stage};
use crate::types::{
    FlowToken, HookResult, LogLevel, Manifest, OutgoingMail, RateLimit, StageRequest,
};
use crate::{HostError, LoadError, StageError, API_VERSION};

impl<T: Host + ?Sized> Host for &T {
    fn user(&self, id: &str) -> Result<Option<crate::User>, HostError> {
        (**self).user(id)
    }
    fn set_user_active(&self, id: &str, active: bool) -> Result<bool, HostError> {
        (**self).set_user_active(id, active)
    }
    fn create_flow_token(&self, token: &crate::NewFlowToken) -> Result<(), HostError> {
        (**self).create_flow_token(token)
    }
    fn flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        (**self).flow_token(key_hash)
    }
    fn consume_flow_token(&self, key_hash: &str) -> Result<Option<FlowToken>, HostError> {
        (**self).consume_flow_token(key_hash)
    }
    fn revoke_flow_tokens(&self, user_id: &str, stage_name: &str) -> Result<u64, HostError> {
        (**self).revoke_flow_tokens(user_id, stage_name)
    }
    fn cache_get(&self, key: &str) -> Result<Option<String>, HostError> {
        (**self).cache_get(key)
    }
    fn cache_set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), HostError> {
        (**self).cache_set(key, value, ttl_ms)
    }
    fn rate_limit(
        &self,
        key: &str,
        window_ms: u64,
        max: u32,
        now_ms: i64,
    ) -> Result<RateLimit, HostError> {
        (**self).rate_limit(key, window_ms, max, now_ms)
    }
    fn emit_event(&self, action: &str, context: &serde_json::Value) -> Result<(), HostError> {
        (**self).emit_event(action, context)
    }
    fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), HostError> {
        (**self).enqueue_mail(mail)
    }
    fn default_from_address(&self) -> String {
        (**self).default_from_address()
    }
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        (**self).log(level, target, message)
    }
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), HostError> {
        (**self).fill_random(buf)
    }
}

/// Runs a host callback, turning a panic into [`HostError::Panicked`] so it never
/// unwinds into the plugin.
fn guarded<R>(f: impl FnOnce() -> Result<R, HostError>) -> RResult<R, FfiError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(host_err_to_ffi(&e)),
        Err(p) => RResult::RErr(host_err_to_ffi(&HostError::Panicked(panic_text(&*p)))),
    }
}

/// # Safety
/// `this` must point to a live `T` for the duration of the call.
unsafe fn this<'a, T>(p: *const c_void) -> &'a T {
    // SAFETY: see caller contract; FfiHost::new makes `this` from a `&T`.
    unsafe { &*(p as *const T) }
}

fn to_json<V: serde::Serialize>(v: Option<V>) -> Result<ROption<RString>, HostError> {
    match v {
        None => Ok(ROption::RNone),
        Some(v) => serde_json::to_string(&v)
            .map(|s| ROption::RSome(s.into()))
            .map_err(|e| HostError::Rejected(e.to_string())),
    }
}

fn from_json<V: serde::de::DeserializeOwned>(s: RStr<'_>) -> Result<V, HostError> {
    serde_json::from_str(s.as_str())
        .map_err(|e| HostError::Rejected(format!("malformed argument: {e}")))
}

struct VTableFor<T>(PhantomData<T>);

impl<T: Host> VTableFor<T> {
    unsafe extern "C" fn user(
        p: *const c_void,
        id: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        // SAFETY: `p` comes from FfiHost::new::<T>.
        guarded(|| to_json(unsafe { this::<T>(p) }.user(id.as_str())?))
    }
    unsafe extern "C" fn set_user_active(
        p: *const c_void,
        id: RStr<'_>,
        a: bool,
    ) -> RResult<bool, FfiError> {
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.set_user_active(id.as_str(), a))
    }
    unsafe extern "C" fn create_flow_token(p: *const c_void, t: RStr<'_>) -> RResult<(), FfiError> {
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.create_flow_token(&from_json(t)?))
    }
    unsafe extern "C" fn flow_token(
        p: *const c_void,
        k: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        // SAFETY: as above.
        guarded(|| to_json(unsafe { this::<T>(p) }.flow_token(k.as_str())?))
    }
    unsafe extern "C" fn consume_flow_token(
        p: *const c_void,
        k: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        // SAFETY: as above.
        guarded(|| to_json(unsafe { this::<T>(p) }.consume_flow_token(k.as_str())?))
    }
    unsafe extern "C" fn revoke_flow_tokens(
        p: *const c_void,
        u: RStr<'_>,
        s: RStr<'_>,
    ) -> RResult<u64, FfiError> {
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.revoke_flow_tokens(u.as_str(), s.as_str()))
    }
    unsafe extern "C" fn cache_get(
        p: *const c_void,
        k: RStr<'_>,
    ) -> RResult<ROption<RString>, FfiError> {
        // SAFETY: as above.
        guarded(|| {
            Ok(unsafe { this::<T>(p) }
                .cache_get(k.as_str())?
                .map(RString::from)
                .into())
        })
    }
    unsafe extern "C" fn cache_set(
        p: *const c_void,
        k: RStr<'_>,
        v: RStr<'_>,
        ttl: u64,
    ) -> RResult<(), FfiError> {
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.cache_set(k.as_str(), v.as_str(), ttl))
    }
    unsafe extern "C" fn rate_limit(
        p: *const c_void,
        k: RStr<'_>,
        w: u64,
        m: u32,
        now: i64,
    ) -> RResult<FfiRateLimit, FfiError> {
        // SAFETY: as above.
        guarded(|| {
            Ok(
                match unsafe { this::<T>(p) }.rate_limit(k.as_str(), w, m, now)? {
                    RateLimit::Allowed => FfiRateLimit {
                        limited: false,
                        retry_after_ms: 0,
                    },
                    RateLimit::Limited { retry_after_ms } => FfiRateLimit {
                        limited: true,
                        retry_after_ms,
                    },
                },
            )
        })
    }
    unsafe extern "C" fn emit_event(
        p: *const c_void,
        a: RStr<'_>,
        c: RStr<'_>,
    ) -> RResult<(), FfiError> {
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.emit_event(a.as_str(), &from_json(c)?))
    }
    unsafe extern "C" fn enqueue_mail(p: *const c_void, m: FfiMail<'_>) -> RResult<(), FfiError> {
        guarded(|| {
            let mut mail: OutgoingMail = from_json(m.meta_json)?;
            mail.raw = m.raw.as_slice().to_vec();
            // SAFETY: as above.
            unsafe { this::<T>(p) }.enqueue_mail(&mail)
        })
    }
    unsafe extern "C" fn default_from_address(p: *const c_void) -> RString {
        // SAFETY: as above.
        catch_unwind(AssertUnwindSafe(|| {
            unsafe { this::<T>(p) }.default_from_address()
        }))
        .unwrap_or_default()
        .into()
    }
    unsafe extern "C" fn log(p: *const c_void, level: u8, target: RStr<'_>, msg: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as above.
            unsafe { this::<T>(p) }.log(LogLevel::from_u8(level), target.as_str(), msg.as_str())
        }));
    }
    unsafe extern "C" fn now_ms(p: *const c_void) -> i64 {
        // SAFETY: as above.
        catch_unwind(AssertUnwindSafe(|| unsafe { this::<T>(p) }.now_ms())).unwrap_or(0)
    }
    unsafe extern "C" fn fill_random(
        p: *const c_void,
        buf: RSliceMut<'_, u8>,
    ) -> RResult<(), FfiError> {
        let mut buf = buf;
        // SAFETY: as above.
        guarded(|| unsafe { this::<T>(p) }.fill_random(buf.as_mut_slice()))
    }

    const WM: &'static WithMetadata<HostVTable> = &WithMetadata::new(HostVTable {
        user: Self::user,
        set_user_active: Self::set_user_active,
        create_flow_token: Self::create_flow_token,
        flow_token: Self::flow_token,
        consume_flow_token: Self::consume_flow_token,
        revoke_flow_tokens: Self::revoke_flow_tokens,
        cache_get: Self::cache_get,
        cache_set: Self::cache_set,
        rate_limit: Self::rate_limit,
        emit_event: Self::emit_event,
        enqueue_mail: Self::enqueue_mail,
        default_from_address: Self::default_from_address,
        log: Self::log,
        now_ms: Self::now_ms,
        fill_random: Self::fill_random,
    });
    const VTABLE: HostVTableRef = HostVTableRef(Self::WM.static_as_prefix());
}

impl<'a> FfiHost<'a> {
    /// Lends `host` to a plugin for one call.
    pub fn new<T: Host>(host: &'a T) -> Self {
        FfiHost {
            this: host as *const T as *const c_void,
            vtable: VTableFor::<T>::VTABLE,
            _borrow: PhantomData,
        }
    }
}

/// A plugin library loaded by [`load_plugin`]. Implements [`Plugin`], so a host
/// treats it exactly like an in-process plugin.
pub struct LoadedPlugin {
    module: StagePluginModRef,
    manifest: Manifest,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest)
            .finish()
    }
}

/// Shortens abi_stable's layout report to its decisive lines (`Error:`, `Expected:`,
/// `Found:` with the value on the line after them).
fn short_report(full: &str) -> String {
    let lines: Vec<&str> = full
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut decisive = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let head = l.starts_with("Error:")
            || l.contains("mismatch")
            || l.starts_with("Expected:")
            || l.starts_with("Found:");
        if !head {
            continue;
        }
        match lines.get(i + 1) {
            Some(next) if l.ends_with(':') => decisive.push(format!("{l} {next}")),
            _ => decisive.push((*l).to_string()),
        }
    }
    let pick: Vec<String> = if decisive.is_empty() {
        lines.iter().map(|l| (*l).to_string()).collect()
    } else {
        decisive
    };
    let tail: Vec<String> = pick.iter().rev().take(6).rev().cloned().collect();
    tail.join(" ")
}

/// Loads a stage plugin library.
///
/// Checks, in order: the library opens and exports a root module; abi_stable's
/// version and layout checks of the whole root-module type graph; the plugin was
/// built with `panic = "unwind"`; its manifest parses. Every library is loaded
/// once and never unloaded (upgrading a plugin needs a host restart); loading two
/// different files gives two different plugins.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let shown = path.display().to_string();
    let header = lib_header_from_path(path).map_err(|e| LoadError::Open {
        path: shown.clone(),
        detail: match e {
            LibraryError::OpenError { err, .. } => err.to_string(),
            other => short_report(&other.to_string()),
        },
    })?;
    let plugin_version = header.version_strings().version.to_string();
    let module = header
        .init_root_module::<StagePluginModRef>()
        .map_err(|e| {
            let full = e.to_string();
            LoadError::Incompatible {
                path: shown.clone(),
                host_version: API_VERSION.to_string(),
                plugin_version: plugin_version.clone(),
                detail: short_report(&full),
                full_report: full,
            }
        })?;
    if !module.panic_unwind() {
        return Err(LoadError::PanicAbort { path: shown });
    }
    let manifest_json = module.manifest()()
        .into_result()
        .map_err(|e| LoadError::Manifest {
            path: shown.clone(),
            detail: e.detail.into_string(),
        })?;
    let manifest: Manifest =
        serde_json::from_str(&manifest_json).map_err(|e| LoadError::Manifest {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
    if !crate::api_compatible(API_VERSION, &manifest.api_version) {
        return Err(LoadError::Incompatible {
            path: shown,
            host_version: API_VERSION.to_string(),
            plugin_version: manifest.api_version,
            detail: "manifest api_version is not semver-compatible".into(),
            full_report: String::new(),
        });
    }
    Ok(LoadedPlugin { module, manifest })
}

impl Plugin for LoadedPlugin {
    fn manifest(&self) -> Manifest {
        self.manifest.clone()
    }

    fn new_stage(
        &self,
        kind: &str,
        name: &str,
        config_json: &str,
    ) -> Result<Box<dyn Stage>, StageError> {
        let ffi = (self.module.new_stage())(kind.into(), name.into(), config_json.into())
            .into_result()
            .map_err(stage_err_from_ffi)?;
        Ok(Box::new(LoadedStage { ffi }))
    }
}

/// A stage instance living in a plugin library.
struct LoadedStage {
    ffi: FfiStage,
}

// SAFETY: `Stage: Send + Sync` is required of every plugin stage; the pointer is
// only used through that trait on the plugin side.
unsafe impl Send for LoadedStage {}
// SAFETY: as above.
unsafe impl Sync for LoadedStage {}

impl Drop for LoadedStage {
    fn drop(&mut self) {
        // SAFETY: `this` came from the plugin's new_stage and is dropped once.
        unsafe { (self.ffi.vtable.drop())(self.ffi.this) }
    }
}

impl Stage for LoadedStage {
    fn get(&self, req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
        let req = request_to_ffi(req);
        let host_ref = &host;
        // SAFETY: `this` is live while self is; the host borrow outlives the call.
        let r = unsafe { (self.ffi.vtable.get())(self.ffi.this, &req, FfiHost::new(host_ref)) };
        result_from_ffi(r.into_result().map_err(stage_err_from_ffi)?)
    }

    fn challenge_invalid(
        &self,
        req: &StageRequest<'_>,
        response: &serde_json::Value,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let req = request_to_ffi(req);
        let body = response.to_string();
        let host_ref = &host;
        // SAFETY: as in get.
        let r = unsafe {
            (self.ffi.vtable.challenge_invalid())(
                self.ffi.this,
                &req,
                body.as_str().into(),
                FfiHost::new(host_ref),
            )
        };
        result_from_ffi(r.into_result().map_err(stage_err_from_ffi)?)
    }

    fn restore(
        &self,
        req: &StageRequest<'_>,
        token: &FlowToken,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let req = request_to_ffi(req);
        let token =
            serde_json::to_string(token).map_err(|e| StageError::Internal(e.to_string()))?;
        let host_ref = &host;
        // SAFETY: as in get.
        let r = unsafe {
            (self.ffi.vtable.restore())(
                self.ffi.this,
                &req,
                token.as_str().into(),
                FfiHost::new(host_ref),
            )
        };
        result_from_ffi(r.into_result().map_err(stage_err_from_ffi)?)
    }

    fn mail_route(&self) -> Option<crate::MailRoute> {
        // A plugin built before the hook existed has no such field.
        let f = self.ffi.vtable.mail_route()?;
        // SAFETY: `this` is live while self is.
        let r = unsafe { f(self.ffi.this) };
        match r.into_result() {
            Ok(ROption::RSome(json)) => serde_json::from_str(json.as_str()).ok(),
            Ok(ROption::RNone) => None,
            Err(e) => {
                tracing::warn!(target: "plugin", error = %e.detail, "mail_route failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_report_keeps_the_values_of_expected_and_found() {
        let full = "Compared <this>:\n  lots of layout\n  Error:mismatched type\n  Expected:\n    StagePluginMod\n  Found:\n    IncompatibleMod\n";
        assert_eq!(
            super::short_report(full),
            "Error:mismatched type Expected: StagePluginMod Found: IncompatibleMod"
        );
    }
}
