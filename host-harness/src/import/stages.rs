//! authentik stage models to this host's stage kinds, field by field.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::blueprint::{referenced, Entry};
use super::{text, ImportError, Report, StageOut};

/// Email stage fields carried over as they are (same names in the email stage).
const EMAIL_FIELDS: &[&str] = &[
    "use_global_settings",
    "host",
    "port",
    "username",
    "password",
    "use_tls",
    "use_ssl",
    "timeout",
    "from_address",
    "template",
    "activate_user_on_success",
    "recovery_max_attempts",
];

/// Prompt types the host's prompt stage understands.
const PROMPT_TYPES: &[&str] = &["text", "email", "username", "password"];

/// The stage `e` describes, or `None` for a model without an equivalent.
pub(super) fn stage(
    e: &Entry,
    by_id: &BTreeMap<&str, &Entry>,
    report: &mut Report,
) -> Result<Option<StageOut>, ImportError> {
    let (kind, config) = match e.model.as_str() {
        "authentik_stages_email.emailstage" => ("email", email(e, report)),
        "authentik_stages_identification.identificationstage" => {
            ("identification", identification(e, report))
        }
        "authentik_stages_prompt.promptstage" => ("prompt", prompt(e, by_id, report)?),
        "authentik_stages_user_write.userwritestage" => ("user_write", user_write(e, report)),
        "authentik_stages_user_login.userloginstage" => {
            for (k, v) in &e.attrs {
                report.add(
                    e,
                    format!("{k} = {v} has no equivalent (sessions are set in [http])"),
                );
            }
            ("user_login", Map::new())
        }
        _ => return Ok(None),
    };
    let Some(name) = text(&e.identifiers, "name").or_else(|| text(&e.attrs, "name")) else {
        return Err(ImportError::Invalid {
            entry: e.label.clone(),
            detail: "stage without a name".into(),
        });
    };
    Ok(Some(StageOut {
        name,
        kind: kind.into(),
        config,
        invalid_response_action: None,
    }))
}

/// An authentik duration: a string as written (the grammar is the same here), an
/// integer as `unit=N` (the older integer fields).
fn duration(v: &Value, unit: &str) -> Value {
    match v {
        Value::Number(n) => Value::String(format!("{unit}={n}")),
        other => other.clone(),
    }
}

fn email(e: &Entry, report: &mut Report) -> Map<String, Value> {
    let mut c = Map::new();
    for (k, v) in &e.attrs {
        match k.as_str() {
            k if EMAIL_FIELDS.contains(&k) => {
                c.insert(k.into(), v.clone());
            }
            "token_expiry" => {
                c.insert(k.into(), duration(v, "minutes"));
            }
            "recovery_cache_timeout" => {
                c.insert(k.into(), duration(v, "seconds"));
            }
            "subject" if v == "authentik" => report.add(
                e,
                "subject \"authentik\" (authentik's default) left unset: the catalog's subject, naming [brand], is sent",
            ),
            "subject" => {
                c.insert(k.into(), v.clone());
            }
            "name" => {}
            _ => report.add(e, format!("email stage attribute {k} = {v} has no equivalent")),
        }
    }
    if c.get("recovery_max_attempts").and_then(Value::as_i64) == Some(0) {
        c.remove("recovery_max_attempts");
        report.add(
            e,
            "recovery_max_attempts = 0 breaks every resend in authentik: left at the default (5)",
        );
    }
    c
}

fn identification(e: &Entry, report: &mut Report) -> Map<String, Value> {
    let mut c = Map::new();
    for (k, v) in &e.attrs {
        match k.as_str() {
            "pretend_user_exists" => {
                c.insert(k.into(), v.clone());
            }
            "user_fields" => {
                let mut fields: Vec<&str> = (v.as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect();
                fields.sort_unstable();
                if fields != ["email", "username"] {
                    report.add(
                        e,
                        format!("user_fields = {v}: this host matches username or email"),
                    );
                }
            }
            _ => report.add(
                e,
                format!("identification attribute {k} = {v} has no equivalent"),
            ),
        }
    }
    c
}

fn user_write(e: &Entry, report: &mut Report) -> Map<String, Value> {
    let mut c = Map::new();
    for (k, v) in &e.attrs {
        match (k.as_str(), v.as_str()) {
            ("create_users_as_inactive", _) => {
                c.insert(k.into(), v.clone());
            }
            ("user_creation_mode", Some("create_when_required")) => {}
            ("user_creation_mode", _) => report.add(
                e,
                format!("user_creation_mode = {v}: this host creates a user only when the flow has none (create_when_required)"),
            ),
            _ => report.add(e, format!("user write attribute {k} = {v} has no equivalent")),
        }
    }
    c
}

/// The prompt stage's fields from the prompt entries it references, in their `order`
/// (authentik shows them so; ties keep the blueprint's order).
fn prompt(
    e: &Entry,
    by_id: &BTreeMap<&str, &Entry>,
    report: &mut Report,
) -> Result<Map<String, Value>, ImportError> {
    let mut fields = Vec::new();
    for (k, v) in &e.attrs {
        match k.as_str() {
            "fields" => {
                for r in v.as_array().into_iter().flatten() {
                    let p = referenced(r).and_then(|id| by_id.get(id)).ok_or_else(|| {
                        ImportError::Invalid {
                            entry: e.label.clone(),
                            detail: format!("field {r} is not a prompt entry of these blueprints"),
                        }
                    })?;
                    fields.push(*p);
                }
            }
            "validation_policies" if v.as_array().is_some_and(Vec::is_empty) => {}
            _ => report.add(
                e,
                format!("prompt stage attribute {k} = {v} has no equivalent"),
            ),
        }
    }
    let order = |p: &Entry| p.attrs.get("order").and_then(Value::as_i64).unwrap_or(0);
    fields.sort_by_key(|p| order(p));
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|p| prompt_field(p, report))
        .collect();
    let mut c = Map::new();
    c.insert("fields".into(), Value::Array(fields));
    Ok(c)
}

fn prompt_field(p: &Entry, report: &mut Report) -> Value {
    let a = &p.attrs;
    let kind = text(a, "type").unwrap_or_else(|| "text".into());
    if !PROMPT_TYPES.contains(&kind.as_str()) {
        report.add(p, format!("prompt type {kind} is shown as a text field"));
    }
    for (k, v) in a {
        let empty = v.is_null() || v == "" || v == false;
        if !matches!(
            k.as_str(),
            "field_key" | "label" | "type" | "required" | "order"
        ) && !empty
        {
            report.add(p, format!("prompt attribute {k} = {v} has no equivalent"));
        }
    }
    json!({
        "field_key": text(a, "field_key").unwrap_or_default(),
        "label": text(a, "label").unwrap_or_default(),
        "type": kind,
        "required": a.get("required").and_then(Value::as_bool).unwrap_or(true),
    })
}
