//! `import-authentik`: authentik blueprints to a host configuration (TOML text) and
//! a report of everything that could not be carried over, each line naming its
//! entry. Flows, flow-stage bindings (in `order`), email stages (every field) and
//! the stages the host has built in (identification, prompt with its fields, user
//! write, user login) are mapped; policies, other stage types and attributes
//! without an equivalent are reported, never dropped in silence.
//!
//! Pure: text in, text out. Imports nothing of the host.

mod blueprint;
mod stages;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

pub use blueprint::{parse, Entry};

/// Why blueprints could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file is not YAML.
    #[error("{file}: {detail}")]
    Yaml {
        /// File name.
        file: String,
        /// The parser's message (with line and column).
        detail: String,
    },
    /// Not a `version: 1` blueprint.
    #[error("{file}: blueprint version {found}, only version 1 is read")]
    Version {
        /// File name.
        file: String,
        /// The version found.
        found: String,
    },
    /// An entry is malformed.
    #[error("{entry}: {detail}")]
    Invalid {
        /// The entry's label.
        entry: String,
        /// What is wrong.
        detail: String,
    },
}

/// One thing not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// The entry's `id`, else `<file> entries[<n>]`.
    pub entry: String,
    /// Its model.
    pub model: String,
    /// What was left out and why.
    pub what: String,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.entry, self.model, self.what)
    }
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The host configuration, TOML.
    pub toml: String,
    /// What was not carried over, in file order.
    pub report: Vec<Unmapped>,
}

/// A `[[stages]]` table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct StageOut {
    pub name: String,
    pub kind: String,
    pub config: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_response_action: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct FlowOut {
    slug: String,
    title: String,
    designation: String,
    stages: Vec<String>,
}

#[derive(Serialize)]
struct PluginOut {
    path: String,
}

#[derive(Serialize)]
struct ConfigOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plugins: Vec<PluginOut>,
    stages: Vec<StageOut>,
    flows: Vec<FlowOut>,
}

/// Collects the report.
#[derive(Default)]
pub(crate) struct Report(Vec<Unmapped>);

impl Report {
    pub(crate) fn add(&mut self, e: &Entry, what: impl Into<String>) {
        self.0.push(Unmapped {
            entry: e.label.clone(),
            model: e.model.clone(),
            what: what.into(),
        });
    }
}

/// Imports `blueprints` (`(file name, YAML text)`); `plugin` is the email stage
/// library to load when an email stage is imported.
pub fn import(blueprints: &[(&str, &str)], plugin: Option<&str>) -> Result<Imported, ImportError> {
    let mut entries = Vec::new();
    for (file, text) in blueprints {
        entries.extend(parse(file, text)?);
    }
    let by_id: BTreeMap<&str, &Entry> = (entries.iter())
        .filter_map(|e| e.id.as_deref().map(|id| (id, e)))
        .collect();
    let mut report = Report::default();
    let mut stage_names: BTreeMap<&str, String> = BTreeMap::new();
    let mut out_stages: Vec<StageOut> = Vec::new();
    let mut flows: Vec<(&Entry, FlowOut)> = Vec::new();
    let mut bindings: Vec<&Entry> = Vec::new();
    for e in &entries {
        if e.state == "absent" {
            report.add(e, "state: absent (authentik deletes it): nothing imported");
            continue;
        }
        if let Some(tag) = &e.unsupported {
            report.add(
                e,
                format!("uses {tag}, which only a running authentik resolves: not imported"),
            );
            continue;
        }
        match e.model.as_str() {
            "authentik_flows.flow" => flows.push((e, flow(e, &mut report)?)),
            "authentik_flows.flowstagebinding" => bindings.push(e),
            "authentik_stages_prompt.prompt" => {}
            model if model.starts_with("authentik_policies") => {
                let target = (e.identifiers.get("target").or(e.attrs.get("target")))
                    .and_then(blueprint::referenced)
                    .and_then(|t| by_id.get(t))
                    .map(|t| format!(" (bound to {})", t.label))
                    .unwrap_or_default();
                report.add(
                    e,
                    format!("policies have no equivalent in this host{target}: not imported; flows run every bound stage"),
                )
            }
            _ => match stages::stage(e, &by_id, &mut report)? {
                Some(s) => {
                    if let Some(id) = e.id.as_deref() {
                        stage_names.insert(id, s.name.clone());
                    }
                    out_stages.push(s);
                }
                None => report.add(
                    e,
                    "stage type without an equivalent in this host: not imported",
                ),
            },
        }
    }
    bind(
        &bindings,
        &mut flows,
        &stage_names,
        &mut out_stages,
        &mut report,
    );
    let plugins = match plugin {
        Some(p) if out_stages.iter().any(|s| s.kind == "email") => {
            vec![PluginOut { path: p.into() }]
        }
        _ => Vec::new(),
    };
    let cfg = ConfigOut {
        plugins,
        stages: out_stages,
        flows: flows.into_iter().map(|(_, f)| f).collect(),
    };
    let body = toml::to_string(&cfg).map_err(|e| ImportError::Invalid {
        entry: "configuration".into(),
        detail: e.to_string(),
    })?;
    let files: Vec<&str> = blueprints.iter().map(|(f, _)| *f).collect();
    let toml = format!(
        "# Imported from authentik blueprints ({}) by host-harness import-authentik.\n\
         # What could not be carried over was reported on standard error.\n\n{body}",
        files.join(", ")
    );
    Ok(Imported {
        toml,
        report: report.0,
    })
}

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

fn flow(e: &Entry, report: &mut Report) -> Result<FlowOut, ImportError> {
    let Some(slug) = text(&e.identifiers, "slug").or_else(|| text(&e.attrs, "slug")) else {
        return Err(ImportError::Invalid {
            entry: e.label.clone(),
            detail: "flow without a slug".into(),
        });
    };
    for (k, v) in &e.attrs {
        if !matches!(k.as_str(), "title" | "designation" | "slug" | "name") {
            report.add(e, format!("flow attribute {k} = {v} has no equivalent"));
        }
    }
    Ok(FlowOut {
        slug,
        title: text(&e.attrs, "title").unwrap_or_default(),
        designation: text(&e.attrs, "designation").unwrap_or_else(|| "authentication".into()),
        stages: Vec::new(),
    })
}

/// Puts each flow-stage binding's stage into its flow, in `order`.
fn bind(
    bindings: &[&Entry],
    flows: &mut [(&Entry, FlowOut)],
    stage_names: &BTreeMap<&str, String>,
    stages: &mut [StageOut],
    report: &mut Report,
) {
    let mut ordered: Vec<(i64, usize, &Entry)> = Vec::new();
    for (i, b) in bindings.iter().enumerate() {
        let get = |k: &str| b.identifiers.get(k).or(b.attrs.get(k));
        let order = get("order").and_then(Value::as_i64).unwrap_or(0);
        ordered.push((order, i, b));
    }
    ordered.sort_by_key(|(order, i, _)| (*order, *i));
    for (_, _, b) in ordered {
        let get = |k: &str| b.identifiers.get(k).or(b.attrs.get(k));
        let target = get("target").and_then(blueprint::referenced);
        let stage = get("stage").and_then(blueprint::referenced);
        let Some(flow) = flows.iter_mut().find(|(fe, _)| fe.id.as_deref() == target) else {
            report.add(
                b,
                format!("binds to flow {target:?}, which this import has not: not imported"),
            );
            continue;
        };
        let Some(name) = stage.and_then(|s| stage_names.get(s)) else {
            report.add(
                b,
                format!(
                    "binds stage {stage:?}, which was not imported: flow '{}' runs without it",
                    flow.1.slug
                ),
            );
            continue;
        };
        flow.1.stages.push(name.clone());
        for (k, v) in &b.attrs {
            match (k.as_str(), v.as_str()) {
                ("invalid_response_action", Some("retry")) => {}
                ("invalid_response_action", Some(action)) => {
                    if let Some(s) = stages.iter_mut().find(|s| &s.name == name) {
                        s.invalid_response_action = Some(action.into());
                    }
                }
                // Only about policies, which are reported where they are bound.
                ("evaluate_on_plan" | "re_evaluate_policies" | "policy_engine_mode", _) => {}
                _ => report.add(b, format!("binding attribute {k} = {v} has no equivalent")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLUEPRINT: &str = r#"
version: 1
entries:
  - {model: authentik_flows.flow, id: flow, identifiers: {slug: verify}, attrs: {title: Verify, designation: enrollment, layout: stacked}}
  - model: authentik_stages_email.emailstage
    id: mail
    identifiers: {name: mail}
    attrs: {use_global_settings: true, token_expiry: 45, recovery_cache_timeout: 600, recovery_max_attempts: 0, subject: Hello, template: email/account_confirmation.html}
  - {model: authentik_stages_consent.consentstage, id: consent, identifiers: {name: consent}, attrs: {mode: always_require}}
  - {model: authentik_stages_prompt.prompt, id: p2, identifiers: {name: p2}, attrs: {field_key: b, label: B, type: dropdown, order: 2}}
  - {model: authentik_stages_prompt.prompt, id: p1, identifiers: {name: p1}, attrs: {field_key: a, label: A, type: text, order: 1}}
  - {model: authentik_stages_prompt.promptstage, id: ask, identifiers: {name: ask}, attrs: {fields: [!KeyOf p2, !KeyOf p1]}}
  - {model: authentik_stages_email.emailstage, id: secret, identifiers: {name: secret}, attrs: {password: !Env SMTP_PASSWORD}}
  - {model: authentik_flows.flowstagebinding, identifiers: {target: !KeyOf flow, stage: !KeyOf mail, order: 20}, attrs: {invalid_response_action: restart}}
  - {model: authentik_flows.flowstagebinding, identifiers: {target: !KeyOf flow, stage: !KeyOf ask, order: 10}}
  - {model: authentik_flows.flowstagebinding, identifiers: {target: !KeyOf flow, stage: !KeyOf consent, order: 30}}
"#;

    fn lines(i: &Imported) -> Vec<String> {
        i.report.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn stages_map_field_by_field_and_every_left_out_entry_is_reported_by_id() {
        let i = import(&[("bp.yaml", BLUEPRINT)], Some("/lib/email.so")).unwrap();
        let cfg: toml::Value = toml::from_str(&i.toml).unwrap();
        assert_eq!(cfg["plugins"][0]["path"].as_str(), Some("/lib/email.so"));
        let flow = &cfg["flows"][0];
        assert_eq!(flow["slug"].as_str(), Some("verify"));
        let stages: Vec<&str> = (flow["stages"].as_array().unwrap().iter())
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(stages, ["ask", "mail"], "in order; consent dropped");
        let mail = &cfg["stages"][0];
        assert_eq!(mail["invalid_response_action"].as_str(), Some("restart"));
        let c = &mail["config"];
        assert_eq!(c["token_expiry"].as_str(), Some("minutes=45"));
        assert_eq!(c["recovery_cache_timeout"].as_str(), Some("seconds=600"));
        assert_eq!(c["subject"].as_str(), Some("Hello"));
        assert!(c.get("recovery_max_attempts").is_none());
        let fields = cfg["stages"][1]["config"]["fields"].as_array().unwrap();
        assert_eq!(
            fields[0]["field_key"].as_str(),
            Some("a"),
            "sorted by order"
        );
        let report = lines(&i).join("\n");
        for expected in [
            "bp.yaml consent (authentik_stages_consent.consentstage): stage type without an equivalent",
            "bp.yaml secret (authentik_stages_email.emailstage): uses !Env",
            "bp.yaml entries[9] (authentik_flows.flowstagebinding): binds stage",
            "bp.yaml p2 (authentik_stages_prompt.prompt): prompt type dropdown",
            "bp.yaml flow (authentik_flows.flow): flow attribute layout",
            "recovery_max_attempts = 0",
        ] {
            assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
        }
    }

    #[test]
    fn key_of_names_an_entry_of_its_own_file() {
        let other = "version: 1\nentries:\n  - {model: authentik_flows.flow, id: other, identifiers: {slug: other}}\n";
        let binds = "version: 1\nentries:\n  - {model: authentik_flows.flowstagebinding, identifiers: {target: !KeyOf other, stage: !KeyOf x, order: 1}}\n";
        let i = import(&[("a.yaml", other), ("b.yaml", binds)], None).unwrap();
        assert!(lines(&i)[0].contains("binds to flow"), "{:?}", lines(&i));
        assert!(!i.toml.contains("[[plugins]]"));
    }
}
