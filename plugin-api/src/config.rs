//! A stage configuration from one source: the plugin's own config type gives both
//! the JSON Schema in the manifest ([`schema`]) and the parser ([`parse`]).
//!
//! The host validates every stage configuration against the schema of its kind
//! before it calls [`crate::Plugin::new_stage`], so a wrong type, a missing field or
//! a value out of a declared range is refused with the stage name and the JSON path,
//! without the plugin being called. Checks a schema cannot say (a duration grammar,
//! two switches that exclude each other) stay in the plugin and name their field.
//!
//! ```
//! use plugin_api::schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// Configuration of a `hello` stage.
//! #[derive(Deserialize, JsonSchema)]
//! #[schemars(crate = "plugin_api::schemars")]
//! #[serde(deny_unknown_fields)]
//! struct HelloConfig {
//!     /// Greeting shown to the person.
//!     #[schemars(length(min = 1))]
//!     greeting: String,
//!     /// Times it is repeated.
//!     #[serde(default)]
//!     #[schemars(range(min = 1, max = 3))]
//!     times: Option<u8>,
//! }
//!
//! let schema = plugin_api::config::schema::<HelloConfig>();
//! assert_eq!(schema["required"], serde_json::json!(["greeting"]));
//!
//! let err = plugin_api::config::parse::<HelloConfig>(r#"{"greeting": 3}"#).err().unwrap();
//! assert!(err.to_string().contains("greeting: invalid type"), "{err}");
//! ```
//!
//! A config type derives [`schemars::JsonSchema`] through this crate's re-export
//! (`#[schemars(crate = "plugin_api::schemars")]`), so the plugin and the host agree
//! on one schemars. Doc comments become `description`s; with `#[serde(default)]` on
//! the type and `Serialize`, each field's default appears in the schema too.

use serde::de::DeserializeOwned;

use crate::StageError;

/// The JSON Schema (draft 2020-12) of config type `T`, for [`crate::StageKind`]'s
/// `config_schema`.
pub fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// Parses a stage configuration (JSON) into `T`. A serde error is a
/// [`StageError::Config`] that starts with the path of the field it is about
/// (`smtp.port: invalid type: …`); a syntax error says where in the text.
pub fn parse<T: DeserializeOwned>(config_json: &str) -> Result<T, StageError> {
    let de = &mut serde_json::Deserializer::from_str(config_json);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(path_error)?;
    // Text after the document ("{} x") is refused, as `serde_json::from_str` does.
    de.end().map_err(|e| StageError::Config(e.to_string()))?;
    Ok(value)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> StageError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." || inner.is_syntax() || inner.is_eof() {
        StageError::Config(inner.to_string())
    } else {
        StageError::Config(format!("{path}: {inner}"))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: u16,
    }

    #[derive(Debug, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        #[serde(default)]
        smtp: Option<Inner>,
    }

    fn err(json: &str) -> String {
        parse::<Outer>(json).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field_path() {
        assert!(
            err(r#"{"name": "a", "smtp": {"port": "25"}}"#).contains("smtp.port: invalid type"),
            "{}",
            err(r#"{"name": "a", "smtp": {"port": "25"}}"#)
        );
        assert!(err(r#"{"name": "a", "colour": 1}"#).contains("unknown field `colour`"));
        assert!(err(r#"{}"#).contains("missing field `name`"));
        assert!(err(r#"{"name": "a","#).contains("line 1"));
        assert!(err(r#"{"name": "a"} x"#).contains("trailing"));
        let ok = parse::<Outer>(r#"{"name": "a", "smtp": {"port": 25}}"#).unwrap();
        assert_eq!((ok.name.as_str(), ok.smtp.map(|s| s.port)), ("a", Some(25)));
    }

    #[test]
    fn schema_is_the_types() {
        let s = schema::<Outer>();
        assert_eq!(s["required"], serde_json::json!(["name"]));
        assert!(s["$schema"].as_str().unwrap().contains("2020-12"));
        assert!(s["properties"]["smtp"].is_object());
    }
}
