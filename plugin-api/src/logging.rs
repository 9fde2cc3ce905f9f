//! Log forwarding from a plugin's `tracing` events to the host's subscriber.
//!
//! A cdylib carries its own copy of `tracing`, with its own global dispatcher that
//! the host's subscriber never sees. When a plugin is loaded as a dynamic library,
//! its root module installs a subscriber that hands every event to the host that
//! is lent to the hook currently running on this thread. Events outside a hook are
//! dropped. In-process (rlib) plugins share the host's `tracing` and need none of this.

use std::cell::Cell;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::abi::FfiHost;
use crate::types::LogLevel;

thread_local! {
    static CURRENT: Cell<Option<FfiHost<'static>>> = const { Cell::new(None) };
}

/// Marks the host lent to the hook running on this thread; restores the previous
/// one when dropped.
pub(crate) struct HostScope {
    prev: Option<FfiHost<'static>>,
}

impl HostScope {
    pub(crate) fn enter(host: FfiHost<'_>) -> Self {
        // SAFETY: only the lifetime is erased; the scope is dropped before the hook
        // returns, so the pointer is never used after the borrow ends.
        let host: FfiHost<'static> = unsafe { std::mem::transmute(host) };
        let prev = CURRENT.with(|c| c.replace(Some(host)));
        Self { prev }
    }
}

impl Drop for HostScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

struct Forward;

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(host) = CURRENT.with(Cell::get) else {
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        text.message.push_str(&text.fields);
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::TRACE => LogLevel::Trace,
            Level::DEBUG => LogLevel::Debug,
            Level::INFO => LogLevel::Info,
            Level::WARN => LogLevel::Warn,
            Level::ERROR => LogLevel::Error,
        };
        // SAFETY: `host` is the live borrow registered by HostScope for this call.
        unsafe {
            (host.vtable.log())(
                host.this,
                level as u8,
                meta.target().into(),
                text.message.as_str().into(),
            )
        }
    }
}

/// Installs the forwarding subscriber as this library's global default (once).
pub(crate) fn install_forwarder() {
    let subscriber = tracing_subscriber::registry().with(Forward);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Emits a plugin's log record into the *host's* `tracing` subscriber, under the
/// plugin's own `target` (so `RUST_LOG=<target>=debug` selects it) and with the
/// target again in the `plugin_target` field.
///
/// Hosts call this from their [`crate::Host::log`]. A target that is not a usable
/// module path (1-100 of ASCII letters, digits, `_`, `-`, `:`), or one past the
/// first [`crate::log_target::MAX_TARGETS`] seen, is logged under the target
/// `plugin` instead.
pub fn emit_to_host_tracing(level: LogLevel, target: &str, message: &str) {
    let tracing_level = match level {
        LogLevel::Trace => Level::TRACE,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    };
    if crate::log_target::emit(tracing_level, target, message) {
        return;
    }
    match level {
        LogLevel::Trace => tracing::trace!(target: "plugin", plugin_target = target, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "plugin", plugin_target = target, "{message}"),
        LogLevel::Info => tracing::info!(target: "plugin", plugin_target = target, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "plugin", plugin_target = target, "{message}"),
        LogLevel::Error => tracing::error!(target: "plugin", plugin_target = target, "{message}"),
    }
}
