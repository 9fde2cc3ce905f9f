//! `tracing` callsites made at run time, one per plugin log target and level, so a
//! plugin's record reaches the host's subscriber under the plugin's own target and
//! `RUST_LOG=<plugin_target>=debug` selects it. `tracing`'s macros need the target
//! at compile time; a plugin's arrives as a string over the ABI, so this module
//! builds the callsite (metadata and field set) once per target and keeps it for
//! the life of the process. Targets are bounded ([`MAX_TARGETS`]) and checked
//! ([`usable`]): a plugin cannot grow the host's memory by inventing targets.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{FieldSet, Value};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

/// Most distinct targets kept; records under any further one use the target `plugin`.
pub const MAX_TARGETS: usize = 256;

/// The fields of every record: the message and, as before targets were kept, the
/// plugin's target again (`plugin_target`), so existing filters on it still match.
const FIELDS: &[&str] = &["message", "plugin_target"];

/// A callsite whose metadata is made once, after the callsite has an address.
struct DynCallsite(OnceLock<Metadata<'static>>);

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        // Set in `make` before the callsite is registered or used.
        self.0.get().expect("metadata set before registration")
    }
}

/// Whether `target` may name a callsite: 1-100 characters of ASCII letters,
/// digits, `_`, `-` and `::` paths, as Rust module paths and crate names are.
pub fn usable(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 100
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':')
}

fn make(target: &'static str, level: Level) -> &'static DynCallsite {
    let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite(OnceLock::new())));
    let fields = FieldSet::new(FIELDS, Identifier(cs));
    let meta = Metadata::new(
        "plugin log",
        target,
        level,
        None,
        None,
        None,
        fields,
        Kind::EVENT,
    );
    let _ = cs.0.set(meta);
    tracing::callsite::register(cs);
    cs
}

type Key = (String, usize);

/// The callsite for `target` at `level`; `None` when the target is unusable or the
/// table is full.
fn callsite(target: &str, level: Level) -> Option<&'static DynCallsite> {
    static TABLE: OnceLock<Mutex<HashMap<Key, &'static DynCallsite>>> = OnceLock::new();
    if !usable(target) {
        return None;
    }
    let rank = level_rank(level);
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(cs) = table.get(&(target.to_string(), rank)) {
        return Some(cs);
    }
    if table.len() >= MAX_TARGETS * 5 {
        return None;
    }
    let leaked: &'static str = Box::leak(target.to_string().into_boxed_str());
    let cs = make(leaked, level);
    table.insert((target.to_string(), rank), cs);
    Some(cs)
}

fn level_rank(level: Level) -> usize {
    match level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

/// Dispatches `message` under `target` at `level` to the current subscriber, in the
/// current span. Whether it could (false: unusable target or full table; the
/// caller then logs under the target `plugin`).
pub(crate) fn emit(level: Level, target: &str, message: &str) -> bool {
    let Some(cs) = callsite(target, level) else {
        return false;
    };
    let meta = cs.metadata();
    tracing::dispatcher::get_default(|d| {
        if d.enabled(meta) {
            let fields = meta.fields();
            let mut names = fields.iter();
            let (Some(m), Some(t)) = (names.next(), names.next()) else {
                return;
            };
            let values: [(&tracing::field::Field, Option<&dyn Value>); 2] = [
                (&m, Some(&message as &dyn Value)),
                (&t, Some(&target as &dyn Value)),
            ];
            d.event(&Event::new(meta, &fields.value_set(&values)));
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked() {
        assert!(usable("my_plugin::stage"));
        assert!(usable("email-code"));
        assert!(!usable(""));
        assert!(!usable("bad target"));
        assert!(!usable("ünicode"));
        assert!(!usable(&"x".repeat(101)));
    }

    #[test]
    fn one_callsite_per_target_and_level() {
        let a = callsite("unit_target_a", Level::INFO).unwrap();
        let b = callsite("unit_target_a", Level::INFO).unwrap();
        assert!(std::ptr::eq(a, b));
        let c = callsite("unit_target_a", Level::DEBUG).unwrap();
        assert!(!std::ptr::eq(a, c));
        assert_eq!(a.metadata().target(), "unit_target_a");
        assert_eq!(*c.metadata().level(), Level::DEBUG);
        assert!(callsite("not usable", Level::INFO).is_none());
    }
}
