//! Mail templates: the built-in ones from `templates/`, custom ones from a directory,
//! rendered with minijinja (HTML autoescaped) under a fuel limit, in the reader's
//! language.
//!
//! Besides the context ([`RenderContext`]) a template has `t(id, **args)`, which
//! returns catalog message `id` ([`crate::i18n`]) in the mail's locale (the brand
//! name is passed as `brand` unless given), and the filters `naturaltime` (a
//! localized "31 minutes from now") and `datetime` (a localized date, UTC).

use std::path::{Component, Path, PathBuf};

use fluent_bundle::{FluentArgs, FluentValue};
use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior, Value};
use plugin_api::Brand;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::i18n::Catalogs;
/// Built-in templates, name → source. The first two are the stage's template choices.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "email/password_reset.html",
        include_str!("../../templates/email/password_reset.html"),
    ),
    (
        "email/account_confirmation.html",
        include_str!("../../templates/email/account_confirmation.html"),
    ),
    (
        "email/password_reset.txt",
        include_str!("../../templates/email/password_reset.txt"),
    ),
    (
        "email/account_confirmation.txt",
        include_str!("../../templates/email/account_confirmation.txt"),
    ),
    (
        "email/base.html",
        include_str!("../../templates/email/base.html"),
    ),
];

/// Instructions a single render may execute; stops runaway operator templates.
const FUEL: u64 = 200_000;
/// Largest custom template file read.
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// Broad class of a [`RenderError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderErrorKind {
    /// The template does not parse (authentik's `TemplateSyntaxError`).
    Syntax,
    /// The template uses a variable the context does not have (checks only: in
    /// production an unknown variable renders empty, as in Django).
    Undefined,
    /// A catalog message the template asks for is missing from the default catalog.
    Message,
    /// Anything else: missing template, runtime error, fuel exhausted.
    Other,
}

/// Why rendering failed, with the template and line when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", self.place(), self.detail)]
pub struct RenderError {
    /// What went wrong.
    pub kind: RenderErrorKind,
    /// The template the error is in.
    pub template: Option<String>,
    /// Its line, 1-based.
    pub line: Option<usize>,
    /// The error chain as text.
    pub detail: String,
}

impl RenderError {
    fn place(&self) -> String {
        match (&self.template, self.line) {
            (Some(t), Some(l)) => format!("{t}, line {l}: "),
            (Some(t), None) => format!("{t}: "),
            _ => String::new(),
        }
    }
    /// The `exception.type` of the `configuration_error` event.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            RenderErrorKind::Syntax => "TemplateSyntaxError",
            RenderErrorKind::Undefined => "UndefinedError",
            RenderErrorKind::Message => "MissingMessage",
            RenderErrorKind::Other => "TemplateError",
        }
    }
}

/// What a template sees.
pub struct RenderContext<'a> {
    /// The link.
    pub url: &'a str,
    /// The pending user (any field readable).
    pub user: &'a plugin_api::User,
    /// Token expiry, Unix ms.
    pub expires_ms: i64,
    /// Now, Unix ms (for `naturaltime`).
    pub now_ms: i64,
    /// The raw token key (authentik passes it as `token`).
    pub token: &'a str,
    /// The mail subject.
    pub subject: &'a str,
    /// The operator's brand.
    pub brand: &'a Brand,
    /// The catalog locale the mail is written in (already resolved).
    pub locale: &'a str,
}

/// A stage's template set, built once per stage.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// Whether `name` is a plain relative path that cannot leave its directory.
pub fn safe_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The companion text template of an HTML one: every `html` replaced by `txt`, as
/// authentik does (quirk: `html/mail.html` → `txt/mail.txt`).
pub fn text_twin(name: &str) -> Option<String> {
    name.ends_with(".html").then(|| name.replace("html", "txt"))
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn args<'a>(pairs: &[(&'a str, FluentValue<'a>)]) -> FluentArgs<'a> {
    let mut a = FluentArgs::new();
    for (k, v) in pairs {
        a.set(*k, v.clone());
    }
    a
}

/// `target_ms` relative to `now_ms` in `locale`, shaped like Django's `naturaltime`
/// ("31 minutes from now", "1 day, 1 hour from now", "5 seconds ago" in English).
pub fn relative_time(cats: &Catalogs, locale: &str, target_ms: i64, now_ms: i64) -> String {
    let delta = (target_ms - now_ms) / 1000;
    let secs = delta.abs();
    if secs == 0 {
        return cats.text(locale, "time-now", None);
    }
    let unit = |id: &str, n: i64| cats.text(locale, id, Some(&args(&[("n", n.into())])));
    let amount = if secs < 60 {
        unit("time-seconds", secs)
    } else if secs < 3600 {
        unit("time-minutes", secs / 60)
    } else if secs < 86400 {
        unit("time-hours", secs / 3600)
    } else {
        let days = unit("time-days", secs / 86400);
        match (secs % 86400) / 3600 {
            0 => days,
            h => cats.text(
                locale,
                "time-days-and-hours",
                Some(&args(&[
                    ("days", days.into()),
                    ("hours", unit("time-day-hours", h).into()),
                ])),
            ),
        }
    };
    let id = if delta > 0 {
        "time-future"
    } else {
        "time-past"
    };
    cats.text(locale, id, Some(&args(&[("amount", amount.into())])))
}

/// Django's `naturaltime` in English.
pub fn naturaltime(target_ms: i64, now_ms: i64) -> String {
    relative_time(Catalogs::builtin(), "en", target_ms, now_ms)
}

/// `ms` as a date and time in `locale`, UTC ("May 3, 2026, 14:05 UTC").
pub fn local_datetime(cats: &Catalogs, locale: &str, ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    let month = cats.text(locale, &format!("month-{}", u8::from(t.month())), None);
    let a = args(&[
        ("month", month.into()),
        ("day", i64::from(t.day()).into()),
        ("year", i64::from(t.year()).into()),
        ("time", format!("{:02}:{:02}", t.hour(), t.minute()).into()),
    ]);
    cats.text(locale, "date-format", Some(&a))
}

fn state_str(state: &State, key: &str) -> String {
    state
        .lookup(key)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_instant(value: &str, filter: &str) -> Result<i64, minijinja::Error> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("{filter}: {e}"))
    })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn naturaltime_filter(state: &State, value: String) -> Result<String, minijinja::Error> {
    let now = state
        .lookup("_now_ms")
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0);
    let target = parse_instant(&value, "naturaltime")?;
    Ok(relative_time(
        Catalogs::builtin(),
        &state_str(state, "locale"),
        target,
        now,
    ))
}

fn datetime_filter(state: &State, value: String) -> Result<String, minijinja::Error> {
    let at = parse_instant(&value, "datetime")?;
    Ok(local_datetime(
        Catalogs::builtin(),
        &state_str(state, "locale"),
        at,
    ))
}

/// Marker in a minijinja error's detail for a missing catalog message.
const MISSING_MESSAGE: &str = "missing catalog message";

/// `t(id, **args)`: catalog message `id` in the template's locale.
fn t_function(state: &State, id: String, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let mut a = FluentArgs::new();
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        let fv = match i64::try_from(v.clone()) {
            Ok(n) if v.is_number() => FluentValue::from(n),
            _ => FluentValue::from(v.to_string()),
        };
        a.set(key.to_string(), fv);
    }
    if !kwargs.has("brand") {
        let brand = state
            .lookup("brand")
            .and_then(|b| b.get_attr("name").ok())
            .map(|n| n.to_string())
            .unwrap_or_default();
        a.set("brand", FluentValue::from(brand));
    }
    Catalogs::builtin()
        .format(&state_str(state, "locale"), &id, Some(&a))
        .map_err(|e| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("{MISSING_MESSAGE}: {e}"),
            )
        })
}

/// The brand as templates see it: the colour is used only when it is `#rrggbb`, and
/// the logo only when it is an absolute `http(s)` URL, so that a bad value cannot
/// break out of the style or `src` attribute.
fn safe_brand(brand: &Brand) -> Brand {
    let mut b = brand.clone();
    if !Brand::color_is_valid(&b.primary_color) {
        b.primary_color = Brand::default().primary_color;
    }
    let lower = b.logo_url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        b.logo_url.clear();
    }
    b
}

fn custom_loader(
    dir: PathBuf,
) -> impl Fn(&str) -> Result<Option<String>, minijinja::Error> + Send + Sync + 'static {
    move |name| {
        if !safe_relative(name) {
            return Ok(None);
        }
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_TEMPLATE_BYTES => {}
            Ok(m) if m.is_file() => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("template {name} is larger than {MAX_TEMPLATE_BYTES} bytes"),
                ))
            }
            _ => return Ok(None),
        }
        std::fs::read_to_string(&path).map(Some).map_err(|e| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("Custom template file is not readable, check permissions: {e}"),
            )
        })
    }
}

impl Templates {
    /// Built-in templates plus, if given, files under `custom_dir` (which take
    /// precedence over nothing: a custom file of a built-in's name is not read).
    pub fn new(custom_dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        for (name, src) in BUILTIN_TEMPLATES {
            env.add_template(name, src)
                .expect("built-in templates parse (checked by a unit test)");
        }
        if let Some(dir) = custom_dir {
            env.set_loader(custom_loader(dir));
        }
        // Django renders an unknown variable, or a field of one, as empty.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_filter("naturaltime", naturaltime_filter);
        env.add_filter("datetime", datetime_filter);
        env.add_function("t", t_function);
        env.set_fuel(Some(FUEL));
        Self { env }
    }

    fn context(ctx: &RenderContext<'_>) -> Value {
        minijinja::context! {
            url => ctx.url,
            user => Value::from(Serde(ctx.user)),
            expires => rfc3339(ctx.expires_ms),
            token => ctx.token,
            subject => ctx.subject,
            brand => Value::from(Serde(safe_brand(ctx.brand))),
            locale => ctx.locale,
            _now_ms => ctx.now_ms,
        }
    }

    /// Renders `name` as the HTML body and its companion ([`text_twin`]) as the text
    /// body when it exists.
    pub fn render(
        &self,
        name: &str,
        ctx: &RenderContext<'_>,
    ) -> Result<(String, Option<String>), RenderError> {
        render_pair(&self.env, name, &Self::context(ctx))
    }

    /// Renders `name` and its twin as [`Templates::render`] does, but with unknown
    /// variables as errors (for `check`). `Ok(false)` when an HTML template has no
    /// text twin.
    pub fn check(&self, name: &str, ctx: &RenderContext<'_>) -> Result<bool, RenderError> {
        let mut env = self.env.clone();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let (_, text) = render_pair(&env, name, &Self::context(ctx))?;
        Ok(text.is_some() || text_twin(name).is_none())
    }
}

fn render_pair(
    env: &Environment<'static>,
    name: &str,
    value: &Value,
) -> Result<(String, Option<String>), RenderError> {
    let html = env
        .get_template(name)
        .and_then(|t| t.render(value))
        .map_err(classify)?;
    let text = match text_twin(name) {
        Some(companion) => match env.get_template(&companion) {
            Ok(t) => Some(t.render(value).map_err(classify)?),
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => None,
            Err(e) => return Err(classify(e)),
        },
        None => None,
    };
    Ok((html, text))
}

fn classify(e: minijinja::Error) -> RenderError {
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    let kind = match e.kind() {
        ErrorKind::SyntaxError => RenderErrorKind::Syntax,
        ErrorKind::UndefinedError => RenderErrorKind::Undefined,
        _ if detail.contains(MISSING_MESSAGE) => RenderErrorKind::Message,
        _ => RenderErrorKind::Other,
    };
    RenderError {
        kind,
        template: e.name().map(str::to_string),
        line: e.line(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> plugin_api::User {
        plugin_api::User {
            id: Some("1".into()),
            username: "<jane>".into(),
            name: "Jane".into(),
            email: "jane@example.com".into(),
            is_active: true,
            locale: String::new(),
            attributes: Default::default(),
        }
    }

    fn brand() -> Brand {
        Brand {
            name: "Acme ID".into(),
            support_email: "help@acme.test".into(),
            ..Brand::default()
        }
    }

    fn ctx<'a>(
        u: &'a plugin_api::User,
        url: &'a str,
        b: &'a Brand,
        locale: &'a str,
    ) -> RenderContext<'a> {
        RenderContext {
            url,
            user: u,
            expires_ms: 31 * 60_000,
            now_ms: 0,
            token: "T",
            subject: "s",
            brand: b,
            locale,
        }
    }

    #[test]
    fn builtins_render_with_companion_text_and_escape_html() {
        let t = Templates::new(None);
        let (u, b) = (user(), brand());
        let (html, text) = t
            .render(
                "email/password_reset.html",
                &ctx(&u, "https://x/?a=1&flow_token=T", &b, "en"),
            )
            .unwrap();
        assert!(html.contains("Hi &lt;jane&gt;,"), "{html}");
        assert!(html.contains("a=1&amp;flow_token=T\""), "{html}");
        assert!(!html.contains("a=1&flow_token"));
        assert!(html.contains("valid for 31 minutes from now."));
        assert!(html.contains("your Acme ID account"), "{html}");
        assert!(html.contains("Sent by Acme ID.") && html.contains("help@acme.test"));
        assert!(html.contains("<html lang=\"en\">"));
        let text = text.unwrap();
        assert!(text.contains("Hi <jane>,"));
        assert!(text.contains("https://x/?a=1&flow_token=T"));
        let (html, text) = t
            .render("email/account_confirmation.html", &ctx(&u, "u", &b, "en"))
            .unwrap();
        assert!(html.contains("Confirm Account"));
        assert!(text.unwrap().contains("Just open the link below."));
    }

    #[test]
    fn builtins_speak_every_shipped_language_and_name_no_other_product() {
        let t = Templates::new(None);
        let (u, b) = (user(), brand());
        let expect = [
            ("en", "31 minutes from now"),
            ("de", "in 31 Minuten"),
            ("fr", "dans 31 minutes"),
            ("es", "dentro de 31 minutos"),
            ("it", "tra 31 minuti"),
        ];
        for (locale, validity) in expect {
            for name in [
                "email/password_reset.html",
                "email/account_confirmation.html",
            ] {
                let (html, text) = t.render(name, &ctx(&u, "https://x/", &b, locale)).unwrap();
                let text = text.unwrap();
                for body in [&html, &text] {
                    assert!(
                        !body.to_lowercase().contains("authentik"),
                        "{locale} {name}"
                    );
                    assert!(body.contains("Acme ID"), "{locale} {name}: {body}");
                }
                if name.contains("reset") {
                    assert!(html.contains(validity), "{locale}: {html}");
                }
                assert!(t.check(name, &ctx(&u, "https://x/", &b, locale)).unwrap());
            }
        }
        let (html, _) = t
            .render("email/password_reset.html", &ctx(&u, "u", &b, "de"))
            .unwrap();
        assert!(html.contains("Passwort zurücksetzen") && html.contains("lang=\"de\""));
    }

    #[test]
    fn brand_colour_and_logo_cannot_break_out() {
        let t = Templates::new(None);
        let u = user();
        let b = Brand {
            primary_color: "red; } body { display:none".into(),
            logo_url: "javascript:alert(1)".into(),
            ..brand()
        };
        let (html, _) = t
            .render("email/password_reset.html", &ctx(&u, "u", &b, "en"))
            .unwrap();
        assert!(!html.contains("display:none") && html.contains("background: #2563eb;"));
        assert!(!html.contains("javascript:") && !html.contains("<img"));
        let b = Brand {
            logo_url: "https://cdn.acme.test/logo.png".into(),
            primary_color: "#112233".into(),
            footer: "Acme Corp, 1 Main St".into(),
            ..brand()
        };
        let (html, text) = t
            .render("email/password_reset.html", &ctx(&u, "u", &b, "en"))
            .unwrap();
        // minijinja writes `/` as `&#x2f;` in HTML, which attributes decode.
        assert!(
            html.contains(
                "<img class=\"logo\" src=\"https:&#x2f;&#x2f;cdn.acme.test&#x2f;logo.png\""
            ),
            "{html}"
        );
        assert!(html.contains("#112233"));
        assert!(html.contains("Acme Corp, 1 Main St") && !html.contains("Sent by"));
        assert!(text.unwrap().contains("Acme Corp, 1 Main St"));
    }

    #[test]
    fn custom_templates_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("html")).unwrap();
        std::fs::write(dir.path().join("ok.html"), "<b>{{ user.email }}</b>").unwrap();
        std::fs::write(dir.path().join("broken.html"), "line one\n{% if %}").unwrap();
        std::fs::write(dir.path().join("undef.html"), "a\nb\n{{ nope.x }}").unwrap();
        std::fs::write(dir.path().join("msg.html"), "{{ t(\"no-such-message\") }}").unwrap();
        std::fs::write(dir.path().join("mine.html"), "{{ t(\"msg-sent\") }}").unwrap();
        std::fs::write(dir.path().join("mine.txt"), "{{ brand.name }}").unwrap();
        std::fs::write(
            dir.path().join("loop.html"),
            "{% for i in range(100000) %}{{ i }}{% endfor %}",
        )
        .unwrap();
        let t = Templates::new(Some(dir.path().to_path_buf()));
        let (u, b) = (user(), brand());
        let c = ctx(&u, "u", &b, "de");
        let (html, text) = t.render("ok.html", &c).unwrap();
        assert_eq!(html, "<b>jane@example.com</b>");
        assert_eq!(text, None);
        assert_eq!(t.check("ok.html", &c), Ok(false), "no text twin");
        assert_eq!(
            t.render("mine.html", &c).unwrap().0,
            "E-Mail erfolgreich gesendet."
        );
        assert_eq!(t.check("mine.html", &c), Ok(true));
        let e = t.render("broken.html", &c).unwrap_err();
        assert_eq!(
            (e.kind, e.template.as_deref(), e.line),
            (RenderErrorKind::Syntax, Some("broken.html"), Some(2))
        );
        assert!(e.to_string().starts_with("broken.html, line 2: "), "{e}");
        // Unknown variables render empty in production and fail the check.
        assert_eq!(t.render("undef.html", &c).unwrap().0, "a\nb\n");
        let e = t.check("undef.html", &c).unwrap_err();
        assert_eq!(
            (e.kind, e.line),
            (RenderErrorKind::Undefined, Some(3)),
            "{e}"
        );
        let e = t.render("msg.html", &c).unwrap_err();
        assert_eq!(e.kind, RenderErrorKind::Message, "{e}");
        assert!(
            e.to_string()
                .contains("'no-such-message' is not in the default catalog"),
            "{e}"
        );
        let e = t.render("loop.html", &c).unwrap_err();
        assert!(
            e.kind == RenderErrorKind::Other && e.detail.contains("fuel"),
            "{e}"
        );
        assert!(t.render("../etc/passwd", &c).is_err());
    }

    #[test]
    fn relative_times_like_django_in_english_and_localized_elsewhere() {
        assert_eq!(naturaltime(31 * 60_000, 0), "31 minutes from now");
        assert_eq!(naturaltime(60_000, 0), "a minute from now");
        assert_eq!(naturaltime(3_600_000, 0), "an hour from now");
        assert_eq!(naturaltime(90_000_000, 0), "1 day, 1 hour from now");
        assert_eq!(naturaltime(0, 5_000), "5 seconds ago");
        assert_eq!(naturaltime(0, 0), "now");
        let c = Catalogs::builtin();
        assert_eq!(
            relative_time(c, "de", 90_000_000, 0),
            "in einem Tag und einer Stunde"
        );
        assert_eq!(relative_time(c, "fr", 0, 120_000), "il y a 2 minutes");
        assert_eq!(relative_time(c, "it", 0, 120_000), "2 minuti fa");
        assert_eq!(relative_time(c, "es", 7_200_000, 0), "dentro de 2 horas");
    }

    #[test]
    fn dates_are_localized() {
        let c = Catalogs::builtin();
        // 2026-03-05T14:07:00Z
        let ms = 1_772_719_620_000;
        assert_eq!(local_datetime(c, "en", ms), "March 5, 2026, 14:07 UTC");
        assert_eq!(local_datetime(c, "de", ms), "5. März 2026, 14:07 UTC");
        assert_eq!(local_datetime(c, "fr", ms), "5 mars 2026 à 14:07 UTC");
    }
}
