//! The host's architecture, checked from its source: the modules of `host-harness`
//! form layers (each imports only the modules below it, so there is no import
//! cycle), `config` is imported by no other module, the test kit is behind a
//! feature, and no function needs a `too_many_arguments` allowance.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, bottom first: the order of `host-harness/src/lib.rs`'s module list.
const LAYERS: &[&str] = &[
    "system",
    "i18n",
    "import",
    "plan",
    "storage",
    "cache",
    "mail",
    "stages",
    "flow",
    "maintenance",
    "http",
    "config",
    "testing",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host-harness/src")
}

/// Every `.rs` file of a top-level module (`name.rs` or the folder `name/`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src().join(module)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The top-level modules `text` names through `crate::…`, outside comments.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let before = code[..i].chars().last();
            // `host_harness::…` or `plugin_api::…` paths end in `crate::` only by accident.
            if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(name);
            }
        }
    }
    out
}

/// Every top-level module `module` imports.
fn module_imports(module: &str) -> BTreeSet<String> {
    files_of(module)
        .iter()
        .flat_map(|f| imports(&std::fs::read_to_string(f).unwrap()))
        .filter(|m| m != module)
        .collect()
}

#[test]
fn the_module_list_is_the_layer_list() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let layers: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(
        declared, layers,
        "a new module of host-harness gets its place in LAYERS (tests/tests/architecture.rs) and in lib.rs's module list"
    );
}

#[test]
fn each_module_imports_only_the_layers_below_it() {
    let mut wrong = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        for import in module_imports(module) {
            match LAYERS.iter().position(|l| *l == import) {
                Some(r) if r < rank => {}
                Some(_) => wrong.push(format!("{module} imports {import}, a layer above it")),
                None => wrong.push(format!("{module} imports crate::{import}, not a module")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The parser must find imports in `use` lists and paths, and skip comments.
    let text = "use crate::flow::Executor;\n// crate::http\nlet x = crate::config::open_store(u);\nuse host_harness::crate_like;";
    let found = imports(text);
    assert_eq!(
        found,
        ["config", "flow"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn config_is_imported_by_no_library_module() {
    for module in LAYERS.iter().filter(|m| **m != "config") {
        assert!(
            !module_imports(module).contains("config"),
            "{module} imports config: only the commands assemble the host"
        );
    }
}

#[test]
fn the_test_kit_is_behind_a_feature_and_no_function_takes_too_many_arguments() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(feature = \"testing\")]\npub mod testing;"),
        "host_harness::testing must be behind the `testing` feature"
    );
    let mut files: Vec<PathBuf> = LAYERS.iter().flat_map(|m| files_of(m)).collect();
    files.push(src().join("main.rs"));
    files.extend(files_of("cli"));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("too_many_arguments"),
            "{} allows too_many_arguments: group the parameters",
            f.display()
        );
    }
}
