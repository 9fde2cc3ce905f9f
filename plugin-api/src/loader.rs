//! Host side of the boundary: loads plugin libraries and lends a [`Host`] to their
//! hooks.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::path::Path;

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError};
use abi_stable::std_types::ROption;
use abi_stable::StableAbi;

use crate::abi::{FfiHost, FfiStage, StagePluginModRef};
use crate::convert::{request_to_ffi, result_from_ffi, stage_err_from_ffi};
use crate::host::{Host, VTableFor};
use crate::stage::{Plugin, Stage};
use crate::types::{FlowToken, HookResult, Manifest, StageRequest};
use crate::{LoadError, StageError, API_VERSION};

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
/// Checks, in order: the library opens and exports a root module; the
/// `plugin-api` version built into it is compatible with this host's
/// ([`crate::api_compatible`], either side may be the newer); the layout of the
/// whole type graph, with the older side's types as the interface (so tables may
/// have gained fields on either side); the plugin was built with
/// `panic = "unwind"`; its manifest parses. The manifest's name, version and
/// `plugin-api` version are the ones built into the library. Every library is
/// loaded once and never unloaded (upgrading a plugin needs a host restart);
/// loading two different files gives two different plugins.
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
    let incompatible = |detail: String, full_report: String| LoadError::Incompatible {
        path: shown.clone(),
        host_version: API_VERSION.to_string(),
        plugin_version: plugin_version.clone(),
        detail,
        full_report,
    };
    if !crate::api_compatible(API_VERSION, &plugin_version) {
        return Err(incompatible(
            "a different major version (for 0.x, minor version); rebuild the plugin against the host's"
                .into(),
            String::new(),
        ));
    }
    check_layout(header, &plugin_version).map_err(|(short, full)| incompatible(short, full))?;
    // SAFETY: the layout of the root module's whole type graph was checked above.
    let module = unsafe { header.unchecked_layout::<StagePluginModRef>() }
        .map_err(|e| incompatible(e.to_string(), String::new()))?;
    if !module.panic_unwind() {
        return Err(LoadError::PanicAbort { path: shown });
    }
    let manifest_json = module.manifest()()
        .into_result()
        .map_err(|e| LoadError::Manifest {
            path: shown.clone(),
            detail: e.detail.into_string(),
        })?;
    let mut manifest: Manifest =
        serde_json::from_str(&manifest_json).map_err(|e| LoadError::Manifest {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
    manifest.name = module.name().to_string();
    manifest.version = module.version().to_string();
    manifest.api_version = plugin_version;
    Ok(LoadedPlugin { module, manifest })
}

/// Checks the plugin's root-module layout against the host's, the side built
/// against the older `plugin-api` being the interface: abi_stable lets the
/// implementation's prefix tables have more fields than the interface's, never
/// fewer. Errors are `(short message, full report)`.
fn check_layout(header: &LibHeader, plugin_version: &str) -> Result<(), (String, String)> {
    let Some(plugin_layout) = header.layout() else {
        return Err((
            "the library was exported without a layout to check".into(),
            String::new(),
        ));
    };
    let host_layout = <StagePluginModRef as StableAbi>::LAYOUT;
    // Both parse: `api_compatible` accepted them.
    let plugin_older =
        semver::Version::parse(plugin_version).ok() < semver::Version::parse(API_VERSION).ok();
    let (interface, implementation) = if plugin_older {
        (plugin_layout, host_layout)
    } else {
        (host_layout, plugin_layout)
    };
    check_layout_compatibility(interface, implementation).map_err(|e| {
        let side = if plugin_older { "plugin" } else { "host" };
        (crate::layout_report::summarize(&e, side), e.to_string())
    })
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
        let body = crate::convert::json_text(response);
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
        let f = self.ffi.vtable.mail_route();
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
