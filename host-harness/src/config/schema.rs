//! Stage configurations checked against the JSON Schema their plugin declares for
//! the stage kind (`StageKind::config_schema`), before the plugin is called.
//!
//! The first error is reported with the stage's name and the JSON path of the value
//! (`$.port`, `$.smtp.hosts[2]`). Messages never repeat the value itself: a stage
//! configuration can hold a password. Formats (`"format": "email"`) are annotations,
//! as draft 2020-12 defines them: checking them is the plugin's. References resolve
//! only inside the schema; nothing is fetched.

use jsonschema::paths::LocationSegment;
use plugin_api::StageKind;
use serde_json::Value;

use super::model::ConfigError;

/// Checks `config` (the stage's configuration, `{}` when absent) against `kind`'s
/// schema from plugin `plugin`. A schema the validator cannot compile is the
/// plugin's fault and says so.
pub fn check_stage_config(
    stage: &str,
    plugin: &str,
    kind: &StageKind,
    config: &Value,
) -> Result<(), ConfigError> {
    let validator = jsonschema::options()
        .should_validate_formats(false)
        .build(&kind.config_schema)
        .map_err(|e| ConfigError::PluginSchema {
            plugin: plugin.to_string(),
            kind: kind.kind.clone(),
            reason: e.masked().to_string(),
        })?;
    let first = validator
        .iter_errors(config)
        .next()
        .map(|e| ConfigError::Schema {
            stage: stage.to_string(),
            path: json_path(e.instance_path().segments()),
            reason: e.masked().to_string(),
        });
    first.map_or(Ok(()), Err)
}

/// `$` followed by `.name` for plain property names, `["odd name"]` for others and
/// `[n]` for array indices.
fn json_path<'a>(segments: impl Iterator<Item = LocationSegment<'a>>) -> String {
    let mut path = String::from("$");
    for segment in segments {
        match segment {
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
            LocationSegment::Property(name) if is_identifier(&name) => {
                path.push('.');
                path.push_str(&name);
            }
            LocationSegment::Property(name) => {
                path.push('[');
                path.push_str(&Value::from(name.as_ref()).to_string());
                path.push(']');
            }
        }
    }
    path
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind(schema: Value) -> StageKind {
        StageKind {
            kind: "k".into(),
            component: "c".into(),
            config_schema: schema,
        }
    }

    fn refused(schema: Value, config: Value) -> (String, String) {
        match check_stage_config("s", "p", &kind(schema), &config) {
            Err(ConfigError::Schema {
                stage,
                path,
                reason,
            }) => {
                assert_eq!(stage, "s");
                (path, reason)
            }
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    #[test]
    fn the_first_error_names_its_path_and_not_the_value() {
        let schema = json!({
            "type": "object",
            "properties": {
                "password": {"type": "string"},
                "smtp": {"type": "object", "properties": {
                    "hosts": {"type": "array", "items": {"type": "string"}}
                }},
                "odd key": {"type": "integer", "maximum": 3}
            },
            "additionalProperties": false
        });
        let (path, reason) = refused(schema.clone(), json!({"password": 1234567}));
        assert_eq!(path, "$.password");
        assert!(reason.contains("is not of type \"string\""), "{reason}");
        assert!(
            !reason.contains("1234567"),
            "the value is not repeated: {reason}"
        );
        let (path, _) = refused(schema.clone(), json!({"smtp": {"hosts": ["a", "b", 3]}}));
        assert_eq!(path, "$.smtp.hosts[2]");
        let (path, _) = refused(schema.clone(), json!({"odd key": 4}));
        assert_eq!(path, "$[\"odd key\"]");
        let (path, reason) = refused(schema.clone(), json!({"colour": "blue"}));
        assert_eq!(path, "$");
        assert!(reason.contains("colour"), "{reason}");
        assert!(check_stage_config("s", "p", &kind(schema), &json!({"password": "x"})).is_ok());
    }

    #[test]
    fn formats_are_annotations_and_nothing_is_fetched() {
        let email = json!({"properties": {"from": {"type": "string", "format": "email"}}});
        assert!(check_stage_config("s", "p", &kind(email), &json!({"from": "x"})).is_ok());
        let remote = json!({"$ref": "http://127.0.0.1:9/schema.json"});
        match check_stage_config("s", "p", &kind(remote), &json!({})) {
            Err(ConfigError::PluginSchema { plugin, kind, .. }) => {
                assert_eq!((plugin.as_str(), kind.as_str()), ("p", "k"))
            }
            other => panic!("a remote reference is refused, got {other:?}"),
        }
        let broken = json!({"type": 12});
        assert!(matches!(
            check_stage_config("s", "p", &kind(broken), &json!({})),
            Err(ConfigError::PluginSchema { .. })
        ));
    }
}
