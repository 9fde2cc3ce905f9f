//! A short account of a layout mismatch: the type, where it is reached from, and
//! what differs, once, from abi_stable's structured errors (its full report stays
//! available as [`crate::LoadError::Incompatible`]'s `full_report`).

use abi_stable::abi_stability::abi_checking::{
    AbiInstability, AbiInstabilityErrors, ExpectedFound,
};
use abi_stable::type_layout::{TLFieldOrFunction, TypeLayout};

/// Summarizes `e`; `interface` says which side ("host" or "plugin") was the
/// interface of the check, so each value is attributed to the right side.
///
/// ```text
/// type `FfiMessage` (reached through `new_stage.vtable.get.messages`) differs,
/// host / plugin: 40 / 48 bytes; 2 / 3 fields; field `weight` is on one side only
/// ```
pub(crate) fn summarize(e: &AbiInstabilityErrors, interface: &str) -> String {
    // Values in the order "host / plugin", whichever side was the interface.
    let hp = |expected: String, found: String| {
        if interface == "host" {
            format!("{expected} / {found}")
        } else {
            format!("{found} / {expected}")
        }
    };
    let Some(first) = e.errors.iter().find(|x| !x.errs.is_empty()) else {
        return "the layouts differ".into();
    };
    let last = first.stack_trace.last();
    let type_name = match last.map(|ef| &ef.expected) {
        Some(TLFieldOrFunction::Field(f)) => f.layout().name().to_string(),
        Some(TLFieldOrFunction::Function(f)) => format!("fn {}", f.name),
        None => "the root module".into(),
    };
    let diffs: Vec<String> = first
        .errs
        .iter()
        .map(|x| match x {
            AbiInstability::Name(ef) => {
                format!(
                    "type {}",
                    hp(format!("`{}`", ef.expected), format!("`{}`", ef.found))
                )
            }
            AbiInstability::FieldCountMismatch(ef) => {
                format!(
                    "{} fields",
                    hp(ef.expected.to_string(), ef.found.to_string())
                )
            }
            AbiInstability::UnexpectedField(ef) => format!(
                "field {}",
                hp(
                    format!("`{}`", ef.expected.name()),
                    format!("`{}`", ef.found.name())
                )
            ),
            AbiInstability::Size(ef) => {
                format!(
                    "{} bytes",
                    hp(ef.expected.to_string(), ef.found.to_string())
                )
            }
            other_err => format!("{other_err:?}"),
        })
        .collect();
    let renamed = first
        .errs
        .iter()
        .any(|x| matches!(x, AbiInstability::Name(_)));
    let diffs: Vec<String> = if renamed {
        diffs
    } else {
        diffs.into_iter().chain(only_on_one_side(last)).collect()
    };
    let path = path_from_root(first.stack_trace.iter().map(|ef| &ef.expected));
    format!(
        "type `{type_name}` (reached through {path}) differs, host / plugin: {}",
        diffs.join("; ")
    )
}

/// `new_stage.vtable.get.messages`: the fields of this crate's types on the way
/// from the root module, leaving out the inside of abi_stable's and std's types.
fn path_from_root<'a>(trace: impl Iterator<Item = &'a TLFieldOrFunction>) -> String {
    let mut in_ours = true;
    let mut names = Vec::new();
    for step in trace {
        let TLFieldOrFunction::Field(f) = step else {
            continue;
        };
        let name = f.name();
        if in_ours && !name.chars().all(|c| c.is_ascii_digit()) {
            names.push(name.to_string());
        }
        in_ours = f.layout().package() == env!("CARGO_PKG_NAME");
    }
    if names.is_empty() {
        "the root module".into()
    } else {
        format!("`{}`", names.join("."))
    }
}

/// "field `x` only in one of them", from the two sides' field lists.
fn only_on_one_side(at: Option<&ExpectedFound<TLFieldOrFunction>>) -> Option<String> {
    let at = at?;
    let (TLFieldOrFunction::Field(a), TLFieldOrFunction::Field(b)) = (&at.expected, &at.found)
    else {
        return None;
    };
    let names = |t: &'static TypeLayout| -> Vec<String> {
        t.get_fields()
            .map(|fs| fs.iter().map(|f| f.name().to_string()).collect())
            .unwrap_or_default()
    };
    let (x, y) = (names(a.layout()), names(b.layout()));
    let extra: Vec<String> = x
        .iter()
        .filter(|n| !y.contains(n))
        .chain(y.iter().filter(|n| !x.contains(n)))
        .map(|n| format!("`{n}`"))
        .collect();
    (!extra.is_empty()).then(|| format!("field {} is on one side only", extra.join(", ")))
}
