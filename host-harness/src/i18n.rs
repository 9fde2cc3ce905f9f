//! The reader's locale and the operator's brand, as the executor hands them to stages.
//!
//! A stage hook gets one locale in [`plugin_api::StageRequest::locale`], chosen in
//! this order: the pending user's own locale (`locale`, or authentik's
//! `attributes.settings.locale`), the request's `Accept-Language` (quality values
//! honoured, only languages the host lists), the stage binding's `default_locale`,
//! then `[i18n] default_locale`. The brand reaches each hook in the plan context as
//! `brand` ([`plugin_api::Brand`]): `[brand]` with the flow's `brand` table laid over
//! it. Imports nothing of the host; imported by stages, flow and config.

use plugin_api::address::EmailAddress;
use plugin_api::Brand;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A locale or brand setting that is refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

/// `[i18n]`: which locales requests may ask for and the last-resort default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct I18nConfig {
    /// Locale when neither the user, the request nor the stage has one.
    pub default_locale: String,
    /// Languages an `Accept-Language` header may select (BCP 47 language tags).
    pub locales: Vec<String>,
}

impl Default for I18nConfig {
    fn default() -> Self {
        Self {
            default_locale: "en".into(),
            locales: ["en", "de", "fr", "es", "it"].map(String::from).to_vec(),
        }
    }
}

/// Whether `tag` looks like a BCP 47 tag: letters, digits and `-`/`_`, at most 35.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.starts_with(|c: char| c.is_ascii_alphabetic())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl I18nConfig {
    /// Refuses malformed tags.
    pub fn check(&self) -> Result<(), SettingError> {
        for tag in std::iter::once(&self.default_locale).chain(&self.locales) {
            if !valid_tag(tag) {
                return Err(SettingError(format!(
                    "i18n: '{tag}' is not a language tag (such as en or de-AT)"
                )));
            }
        }
        Ok(())
    }

    /// The first tag of `header` (by quality) whose language the host lists: the tag
    /// itself (`fr-CH`), so a stage can use a regional catalog it has.
    pub fn negotiate(&self, header: &str) -> Option<String> {
        if header.is_empty() || header.len() > 1024 {
            return None;
        }
        let listed = |t: &str| self.locales.iter().any(|l| l.eq_ignore_ascii_case(t));
        accept_language::parse(header).into_iter().find(|tag| {
            valid_tag(tag) && (listed(tag) || tag.split('-').next().is_some_and(listed))
        })
    }
}

/// The pending user's own locale in a plan context, if any.
pub fn user_locale(ctx: &Map<String, Value>) -> Option<&str> {
    let user = ctx.get("pending_user")?;
    let own = user.get("locale").and_then(Value::as_str);
    let settings = user
        .pointer("/attributes/settings/locale")
        .and_then(Value::as_str);
    own.into_iter().chain(settings).find(|t| valid_tag(t))
}

/// The locale a hook runs in (see the [module](self) docs).
pub fn request_locale<'a>(
    ctx: &'a Map<String, Value>,
    accept_language: &str,
    stage_default: Option<&'a str>,
    i18n: &'a I18nConfig,
) -> std::borrow::Cow<'a, str> {
    if let Some(own) = user_locale(ctx) {
        return own.into();
    }
    if let Some(negotiated) = i18n.negotiate(accept_language) {
        return negotiated.into();
    }
    stage_default.unwrap_or(&i18n.default_locale).into()
}

/// `[brand]`, or a flow's `brand` table: each field overrides the one below it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrandConfig {
    /// Product or organisation name, in subjects and bodies.
    pub name: Option<String>,
    /// Absolute `https://` (or `http://`) logo URL.
    pub logo_url: Option<String>,
    /// Help address shown in mail footers.
    pub support_email: Option<String>,
    /// Accent colour, `#rrggbb`.
    pub primary_color: Option<String>,
    /// Footer line of mails.
    pub footer: Option<String>,
}

fn brand_err(field: &str, why: &str) -> SettingError {
    SettingError(format!("brand.{field}: {why}"))
}

/// `over` laid over `base` laid over the default brand, validated.
pub fn resolve_brand(
    base: &BrandConfig,
    over: Option<&BrandConfig>,
) -> Result<Brand, SettingError> {
    let mut b = Brand::default();
    for layer in std::iter::once(base).chain(over) {
        let pairs = [
            (&layer.name, &mut b.name),
            (&layer.logo_url, &mut b.logo_url),
            (&layer.support_email, &mut b.support_email),
            (&layer.primary_color, &mut b.primary_color),
            (&layer.footer, &mut b.footer),
        ];
        for (from, to) in pairs {
            if let Some(v) = from {
                v.clone_into(to);
            }
        }
    }
    check_brand(&b)?;
    Ok(b)
}

fn check_brand(b: &Brand) -> Result<(), SettingError> {
    for (field, v, max) in [
        ("name", &b.name, 100),
        ("footer", &b.footer, 500),
        ("support_email", &b.support_email, 254),
        ("logo_url", &b.logo_url, 2048),
    ] {
        if v.chars().any(char::is_control) {
            return Err(brand_err(
                field,
                "must not contain line breaks or control characters",
            ));
        }
        if v.len() > max {
            return Err(brand_err(field, &format!("must be at most {max} bytes")));
        }
    }
    if b.name.trim().is_empty() {
        return Err(brand_err("name", "must not be empty"));
    }
    if !Brand::color_is_valid(&b.primary_color) {
        return Err(brand_err("primary_color", "must be #rrggbb"));
    }
    if !b.logo_url.is_empty() {
        match url::Url::parse(&b.logo_url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => return Err(brand_err("logo_url", "must be an absolute http(s) URL")),
        }
    }
    if !b.support_email.is_empty() {
        EmailAddress::parse(&b.support_email)
            .map_err(|e| brand_err("support_email", &e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn accept_language_honours_quality_and_listed_languages() {
        let i = I18nConfig::default();
        assert_eq!(i.negotiate("fr-CH, fr;q=0.9").as_deref(), Some("fr-CH"));
        assert_eq!(i.negotiate("xx, de;q=0.5, it;q=0.7").as_deref(), Some("it"));
        assert_eq!(i.negotiate("pt-BR, pt;q=0.8"), None);
        assert_eq!(i.negotiate("*"), None);
        assert_eq!(i.negotiate(""), None);
        assert_eq!(
            i.negotiate(&"de,".repeat(600)),
            None,
            "oversized header ignored"
        );
    }

    #[test]
    fn user_then_header_then_stage_then_host() {
        let i = I18nConfig::default();
        let de = ctx(json!({"pending_user": {"username": "j", "locale": "de"}}));
        assert_eq!(request_locale(&de, "fr", Some("it"), &i), "de");
        let settings = ctx(json!({"pending_user": {"username": "j",
            "attributes": {"settings": {"locale": "es"}}}}));
        assert_eq!(request_locale(&settings, "fr", None, &i), "es");
        let none = ctx(json!({"pending_user": {"username": "j", "locale": ""}}));
        assert_eq!(request_locale(&none, "fr-CH, fr;q=0.9", None, &i), "fr-CH");
        assert_eq!(request_locale(&none, "pt", Some("it"), &i), "it");
        assert_eq!(request_locale(&Map::new(), "pt", None, &i), "en");
        let bad = ctx(json!({"pending_user": {"username": "j", "locale": "<script>"}}));
        assert_eq!(request_locale(&bad, "", None, &i), "en");
    }

    #[test]
    fn brands_layer_and_refuse_what_could_inject() {
        let host = BrandConfig {
            name: Some("Acme".into()),
            support_email: Some("help@acme.test".into()),
            ..Default::default()
        };
        let flow = BrandConfig {
            name: Some("Acme Shop".into()),
            primary_color: Some("#ff0000".into()),
            ..Default::default()
        };
        let b = resolve_brand(&host, Some(&flow)).unwrap();
        assert_eq!(
            (b.name.as_str(), b.support_email.as_str()),
            ("Acme Shop", "help@acme.test")
        );
        assert_eq!(b.primary_color, "#ff0000");
        assert_eq!(
            resolve_brand(&BrandConfig::default(), None).unwrap(),
            Brand::default()
        );
        for bad in [
            BrandConfig {
                name: Some("A\r\nBcc: x@y.z".into()),
                ..Default::default()
            },
            BrandConfig {
                name: Some(" ".into()),
                ..Default::default()
            },
            BrandConfig {
                primary_color: Some("red;}".into()),
                ..Default::default()
            },
            BrandConfig {
                logo_url: Some("javascript:alert(1)".into()),
                ..Default::default()
            },
            BrandConfig {
                support_email: Some("nope".into()),
                ..Default::default()
            },
        ] {
            assert!(resolve_brand(&bad, None).is_err(), "{bad:?}");
        }
    }
}
