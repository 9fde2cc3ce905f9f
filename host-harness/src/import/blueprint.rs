//! authentik blueprints read into entries: `version: 1`, `context`, `entries` (a
//! list, or a mapping of named lists), each with `model`, `identifiers`, `attrs`,
//! `id` and `state`. Of authentik's YAML tags, `!KeyOf` becomes a reference to
//! another entry, `!Find` one to an entry of this file it matches, `!Context` the
//! blueprint's context value and `!Format` its `%s`/`%d` text; any other tag
//! (`!Env`, `!File`, `!If`, …) makes its entry unmappable, reported with the tag.
//!
//! Hand-written because it encodes authentik's own semantics (`blueprints/v1`); the
//! YAML itself is parsed by `yaml_serde`, which keeps tags.

use serde_json::{Map, Number, Value};
use yaml_serde::Value as Yaml;

use super::ImportError;

/// A reference to another entry, as the key `$ref` of a JSON object.
pub const REF_KEY: &str = "$ref";

/// One blueprint entry with its tags resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// How reports name it: `<file> <id>`, else `<file> entries[<n>]`.
    pub label: String,
    /// `<file>#<id>` when it has an `id`: what references to it hold (`!KeyOf`
    /// names an entry of its own file).
    pub id: Option<String>,
    /// `app_label.model`.
    pub model: String,
    /// `present`, `created`, `must_created` or `absent`.
    pub state: String,
    /// Lookup fields.
    pub identifiers: Map<String, Value>,
    /// Fields to set.
    pub attrs: Map<String, Value>,
    /// A tag this reader does not evaluate, if one occurs in the entry.
    pub unsupported: Option<String>,
}

/// A reference value: `{"$ref": "<entry id>"}`.
pub fn reference(id: &str) -> Value {
    let mut m = Map::new();
    m.insert(REF_KEY.into(), Value::String(id.into()));
    Value::Object(m)
}

/// The entry id a value refers to, if it is a reference.
pub fn referenced(v: &Value) -> Option<&str> {
    v.as_object()?.get(REF_KEY)?.as_str()
}

/// Parses blueprint `text` (named `file` in errors and labels).
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, ImportError> {
    let doc: Yaml = yaml_serde::from_str(text).map_err(|e| ImportError::Yaml {
        file: file.into(),
        detail: e.to_string(),
    })?;
    let version = doc.get("version").and_then(Yaml::as_i64);
    if version != Some(1) {
        return Err(ImportError::Version {
            file: file.into(),
            found: version.map_or_else(|| "none".into(), |v| v.to_string()),
        });
    }
    let context = match doc.get("context") {
        Some(c) => plain(c),
        None => Value::Object(Map::new()),
    };
    let raw_entries: Vec<&Yaml> = match doc.get("entries") {
        Some(Yaml::Sequence(s)) => s.iter().collect(),
        Some(Yaml::Mapping(m)) => (m.values())
            .filter_map(Yaml::as_sequence)
            .flatten()
            .collect(),
        _ => {
            return Err(ImportError::Invalid {
                entry: file.into(),
                detail: "no `entries` list".into(),
            })
        }
    };
    let short = std::path::Path::new(file)
        .file_name()
        .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
    let mut resolver = Resolver {
        file: short,
        context,
        unsupported: None,
        finds: Vec::new(),
    };
    let mut entries = Vec::with_capacity(raw_entries.len());
    for (n, raw) in raw_entries.into_iter().enumerate() {
        entries.push(resolver.entry(n, raw)?);
    }
    resolve_finds(&mut entries, &resolver.finds);
    Ok(entries)
}

/// A YAML value as JSON, tags left as `{"!Tag": value}` (used for `context`).
fn plain(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => number(n),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(s) => Value::Array(s.iter().map(plain).collect()),
        Yaml::Mapping(m) => Value::Object(m.iter().map(|(k, v)| (key_text(k), plain(v))).collect()),
        Yaml::Tagged(t) => {
            let mut m = Map::new();
            m.insert(format!("!{}", tag_name(&t.tag)), plain(&t.value));
            Value::Object(m)
        }
    }
}

fn number(n: &yaml_serde::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

fn key_text(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        other => plain(other).to_string(),
    }
}

fn tag_name(tag: &yaml_serde::value::Tag) -> String {
    tag.to_string().trim_start_matches('!').to_string()
}

/// A `!Find` waiting for every entry to be read: where it sits and what it matches.
struct Find {
    entry: usize,
    marker: String,
    model: String,
    field: String,
    value: Value,
}

struct Resolver {
    file: String,
    context: Value,
    unsupported: Option<String>,
    finds: Vec<Find>,
}

impl Resolver {
    fn entry(&mut self, n: usize, raw: &Yaml) -> Result<Entry, ImportError> {
        self.unsupported = None;
        let field = |k: &str| raw.get(k);
        let own = field("id").and_then(Yaml::as_str);
        let file = &self.file;
        let label = own.map_or_else(
            || format!("{file} entries[{n}]"),
            |id| format!("{file} {id}"),
        );
        let id = own.map(|id| format!("{file}#{id}"));
        let mut text_of = |k: &str, default: &str| -> String {
            field(k).map_or(default.into(), |v| {
                self.value(v, n).as_str().unwrap_or(default).to_string()
            })
        };
        let model = text_of("model", "");
        let state = text_of("state", "present");
        if model.is_empty() {
            return Err(ImportError::Invalid {
                entry: label,
                detail: "entry has no model".into(),
            });
        }
        let object = |v: Option<Value>| match v {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let identifiers = object(field("identifiers").map(|v| self.value(v, n)));
        let attrs = object(field("attrs").map(|v| self.value(v, n)));
        Ok(Entry {
            label,
            id,
            model,
            state,
            identifiers,
            attrs,
            unsupported: self.unsupported.take(),
        })
    }

    /// `y` as JSON with the tags resolved; `n` is the entry's index (for `!Find`).
    fn value(&mut self, y: &Yaml, n: usize) -> Value {
        match y {
            Yaml::Sequence(s) => Value::Array(s.iter().map(|v| self.value(v, n)).collect()),
            Yaml::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (key_text(k), self.value(v, n)))
                    .collect(),
            ),
            Yaml::Tagged(t) => self.tag(&tag_name(&t.tag), &t.value, n),
            other => plain(other),
        }
    }

    fn tag(&mut self, name: &str, arg: &Yaml, n: usize) -> Value {
        let args: Vec<Value> = match arg {
            Yaml::Sequence(s) => s.iter().map(|v| self.value(v, n)).collect(),
            other => vec![self.value(other, n)],
        };
        match (name, args.as_slice()) {
            ("KeyOf", [Value::String(id)]) => reference(&format!("{}#{id}", self.file)),
            ("Context", [Value::String(key), rest @ ..]) => (self.context.get(key))
                .cloned()
                .or_else(|| rest.first().cloned())
                .unwrap_or(Value::Null),
            ("Format", [Value::String(fmt), rest @ ..]) => match format(fmt, rest) {
                Some(s) => Value::String(s),
                None => self.unsupported(format!("!Format {fmt}")),
            },
            ("Find", [Value::String(model), Value::Array(pair), ..]) if pair.len() == 2 => {
                let marker = format!("$find{}", self.finds.len());
                self.finds.push(Find {
                    entry: n,
                    marker: marker.clone(),
                    model: model.clone(),
                    field: pair[0].as_str().unwrap_or("").to_string(),
                    value: pair[1].clone(),
                });
                Value::String(marker)
            }
            _ => self.unsupported(format!("!{name}")),
        }
    }

    fn unsupported(&mut self, what: String) -> Value {
        self.unsupported.get_or_insert(what);
        Value::Null
    }
}

/// Python `%` formatting for `%s`, `%d`, `%i` and `%%`; `None` for anything else.
fn format(fmt: &str, args: &[Value]) -> Option<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            's' | 'd' | 'i' => match args.next()? {
                Value::String(s) => out.push_str(s),
                other => out.push_str(&other.to_string()),
            },
            _ => return None,
        }
    }
    Some(out)
}

/// Replaces each `!Find` marker with a reference to the entry of that model whose
/// identifier or attribute `field` equals the value; unmatched ones make their entry
/// unmappable (they name an object of a running authentik, not of this file).
fn resolve_finds(entries: &mut [Entry], finds: &[Find]) {
    for f in finds {
        let target = entries.iter().find(|e| {
            e.model == f.model
                && (e.identifiers.get(&f.field).or(e.attrs.get(&f.field)) == Some(&f.value))
        });
        let replacement = match target.and_then(|t| t.id.clone()) {
            Some(id) => reference(&id),
            None => {
                let e = &mut entries[f.entry];
                e.unsupported.get_or_insert(format!(
                    "!Find {} {}={}: no entry of this blueprint matches (an object of a running authentik)",
                    f.model, f.field, f.value
                ));
                Value::Null
            }
        };
        let e = &mut entries[f.entry];
        for map in [&mut e.identifiers, &mut e.attrs] {
            replace_marker(map, &f.marker, &replacement);
        }
    }
}

fn replace_marker(map: &mut Map<String, Value>, marker: &str, with: &Value) {
    for v in map.values_mut() {
        replace_in(v, marker, with);
    }
}

fn replace_in(v: &mut Value, marker: &str, with: &Value) {
    match v {
        Value::String(s) if s == marker => *v = with.clone(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_in(x, marker, with)),
        Value::Object(m) => replace_marker(m, marker, with),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_resolve_to_references_context_and_text() {
        let text = r#"
version: 1
context: {suffix: prod}
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: !Format [recover-%s, !Context suffix]}
  - model: authentik_flows.flowstagebinding
    identifiers:
      target: !KeyOf flow
      stage: !Find [authentik_flows.flow, [slug, recover-prod]]
      order: 10
  - model: authentik_stages_email.emailstage
    id: mail
    identifiers: {name: mail}
    attrs: {password: !Env [SMTP_PASSWORD, ""], subject: !Context [missing, Hi]}
"#;
        let e = parse("bp.yaml", text).unwrap();
        assert_eq!(e[0].identifiers["slug"], "recover-prod");
        assert_eq!(e[1].label, "bp.yaml entries[1]");
        assert_eq!(e[0].label, "bp.yaml flow");
        assert_eq!(e[1].identifiers["target"], json!({"$ref": "bp.yaml#flow"}));
        assert_eq!(e[1].identifiers["stage"], json!({"$ref": "bp.yaml#flow"}));
        assert_eq!(e[1].unsupported, None);
        assert_eq!(e[2].attrs["subject"], "Hi");
        assert_eq!(e[2].unsupported.as_deref(), Some("!Env"));
    }

    #[test]
    fn bad_documents_are_refused_with_the_file() {
        let err = parse("a.yaml", "version: 2\nentries: []").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml: blueprint version 2, only version 1 is read"
        );
        assert!(parse("b.yaml", "version: 1\n")
            .unwrap_err()
            .to_string()
            .contains("entries"));
        assert!(parse("c.yaml", "version: [")
            .unwrap_err()
            .to_string()
            .starts_with("c.yaml: "));
        let e = parse(
            "d.yaml",
            "version: 1\nentries:\n  - model: x\n    identifiers:\n      k: !Find [m, [f, v]]\n",
        )
        .unwrap();
        assert!(e[0]
            .unsupported
            .as_deref()
            .unwrap()
            .contains("no entry of this blueprint"));
        assert_eq!(format("a%sb%%", &[json!("X")]).as_deref(), Some("aXb%"));
        assert_eq!(format("%x", &[json!(1)]), None);
    }
}
