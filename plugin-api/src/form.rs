//! The generic challenge `xak-form`: a title, text, typed fields, buttons and
//! errors, described as data. The reference host's flow page renders it, so a stage
//! gets a working page without writing JavaScript.
//!
//! The page posts `{"component": "xak-form", <field name>: <value>, …}`: text-like
//! fields as strings, checkboxes as booleans, and the clicked button's `name` with
//! its `value` when the button has one. Errors shown under a field are keyed by the
//! field's name; `non_field_errors` go under the form, as authentik's do.
//!
//! ```
//! use plugin_api::form::{Field, FieldKind, Form};
//!
//! let challenge = Form::new("Enter your code")
//!     .text("We sent a 6-digit code to your address.")
//!     .field(Field::new("code", "Code", FieldKind::Code).required())
//!     .button("Sign in")
//!     .action("Send a new code", "action", "resend")
//!     .error("code", "That code is not valid.")
//!     .challenge();
//! assert_eq!(challenge["component"], "xak-form");
//! assert_eq!(challenge["fields"][0]["type"], "code");
//! assert_eq!(challenge["response_errors"]["code"][0]["string"], "That code is not valid.");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The component name the flow page renders this challenge under.
pub const COMPONENT: &str = "xak-form";

/// What kind of input a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// A password (hidden while typed).
    Password,
    /// An email address.
    Email,
    /// A number.
    Number,
    /// A one-time code: digits, offered by the browser from a received message.
    Code,
    /// A checkbox; posted as `true` or `false`.
    Checkbox,
    /// Not shown; posted with its value.
    Hidden,
}

/// One input of a [`Form`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The key it is posted under.
    pub name: String,
    /// The label shown.
    pub label: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// The page does not post the form while it is empty.
    #[serde(default)]
    pub required: bool,
    /// The value it starts with.
    #[serde(default)]
    pub value: String,
}

impl Field {
    /// An optional, empty field.
    pub fn new(name: &str, label: &str, kind: FieldKind) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            kind,
            required: false,
            value: String::new(),
        }
    }
    /// Makes it required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Sets its starting value.
    #[must_use]
    pub fn value(mut self, value: &str) -> Self {
        self.value = value.into();
        self
    }
}

/// A submit button; with a `name`, its `value` is posted under that name, so a
/// stage tells its buttons apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// Its text.
    pub label: String,
    /// The key its value is posted under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The value posted under `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An error message in authentik's `response_errors` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The text shown.
    pub string: String,
    /// A machine-readable code (`invalid`).
    pub code: String,
}

/// The `xak-form` challenge; build it, then [`Form::challenge`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    /// Heading of the form.
    pub title: String,
    /// A paragraph under the heading.
    #[serde(default)]
    pub text: String,
    /// The inputs, in order.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// The buttons, in order; none means one "Continue".
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// Errors by field name (`non_field_errors` for the form).
    #[serde(default)]
    pub response_errors: BTreeMap<String, Vec<FieldError>>,
}

impl Form {
    /// A form with this heading.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Default::default()
        }
    }
    /// Sets the paragraph under the heading.
    #[must_use]
    pub fn text(mut self, text: &str) -> Self {
        self.text = text.into();
        self
    }
    /// Adds an input.
    #[must_use]
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }
    /// Adds a plain submit button.
    #[must_use]
    pub fn button(mut self, label: &str) -> Self {
        self.buttons.push(Button {
            label: label.into(),
            name: None,
            value: None,
        });
        self
    }
    /// Adds a button that posts `name` = `value`.
    #[must_use]
    pub fn action(mut self, label: &str, name: &str, value: &str) -> Self {
        self.buttons.push(Button {
            label: label.into(),
            name: Some(name.into()),
            value: Some(value.into()),
        });
        self
    }
    /// Adds an error under `field` (`non_field_errors` for the whole form).
    #[must_use]
    pub fn error(mut self, field: &str, message: &str) -> Self {
        self.response_errors
            .entry(field.into())
            .or_default()
            .push(FieldError {
                string: message.into(),
                code: "invalid".into(),
            });
        self
    }
    /// The challenge JSON: this form with `"component": "xak-form"`.
    pub fn challenge(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Value::Object(m) = &mut v {
            m.insert("component".into(), Value::String(COMPONENT.into()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_round_trips_and_names_its_component() {
        let f = Form::new("T")
            .field(Field::new("a", "A", FieldKind::Checkbox).value("x"))
            .action("Go", "do", "go")
            .error("non_field_errors", "no");
        let v = f.challenge();
        assert_eq!(v["component"], COMPONENT);
        assert_eq!(
            v["buttons"][0],
            serde_json::json!({"label": "Go", "name": "do", "value": "go"})
        );
        let back: Form = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
