//! Mail templates: the built-in ones from `templates/`, custom ones from a directory,
//! rendered with minijinja (HTML autoescaped) under a fuel limit.

use std::path::{Component, Path, PathBuf};

use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, State, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

/// Why rendering failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template does not parse (authentik's `TemplateSyntaxError`).
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// Anything else: missing template, runtime error, fuel exhausted.
    #[error("template error: {0}")]
    Other(String),
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

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {many}")
    }
}

/// Django's `naturaltime` for an instant relative to `now_ms`.
pub fn naturaltime(target_ms: i64, now_ms: i64) -> String {
    let delta = (target_ms - now_ms) / 1000;
    let (secs, suffix) = if delta >= 0 {
        (delta, "from now")
    } else {
        (-delta, "ago")
    };
    if secs == 0 {
        return "now".into();
    }
    let amount = if secs < 60 {
        plural(secs, "a second", "seconds")
    } else if secs < 3600 {
        plural(secs / 60, "a minute", "minutes")
    } else if secs < 86400 {
        plural(secs / 3600, "an hour", "hours")
    } else {
        let days = secs / 86400;
        let hours = (secs % 86400) / 3600;
        let d = if days == 1 {
            "1 day".to_string()
        } else {
            format!("{days} days")
        };
        match hours {
            0 => d,
            1 => format!("{d}, 1 hour"),
            h => format!("{d}, {h} hours"),
        }
    };
    format!("{amount} {suffix}")
}

fn naturaltime_filter(state: &State, value: String) -> Result<String, minijinja::Error> {
    let target = OffsetDateTime::parse(&value, &Rfc3339).map_err(|e| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("naturaltime: {e}"))
    })?;
    let now = state
        .lookup("_now_ms")
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(0);
    let target_ms = (target.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(naturaltime(target_ms, now))
}

impl Templates {
    /// Built-in templates plus, if given, files under `custom_dir`.
    pub fn new(custom_dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        for (name, src) in BUILTIN_TEMPLATES {
            env.add_template(name, src)
                .expect("built-in templates parse (checked by a unit test)");
        }
        if let Some(dir) = custom_dir {
            env.set_loader(move |name| {
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
            });
        }
        env.add_filter("naturaltime", naturaltime_filter);
        env.set_fuel(Some(FUEL));
        Self { env }
    }

    /// Renders `name` as the HTML body and its companion (every `html` in the name
    /// replaced by `txt`, as authentik does) as the text body when it exists.
    pub fn render(
        &self,
        name: &str,
        ctx: &RenderContext<'_>,
    ) -> Result<(String, Option<String>), RenderError> {
        let value = minijinja::context! {
            url => ctx.url,
            user => Value::from(Serde(ctx.user)),
            expires => rfc3339(ctx.expires_ms),
            token => ctx.token,
            subject => ctx.subject,
            _now_ms => ctx.now_ms,
        };
        let html = self.render_one(name, &value)?;
        let text = if name.ends_with(".html") {
            let companion = name.replace("html", "txt");
            match self.env.get_template(&companion) {
                Ok(t) => Some(t.render(&value).map_err(classify)?),
                Err(e) if e.kind() == ErrorKind::TemplateNotFound => None,
                Err(e) => return Err(classify(e)),
            }
        } else {
            None
        };
        Ok((html, text))
    }

    fn render_one(&self, name: &str, value: &Value) -> Result<String, RenderError> {
        let t = self.env.get_template(name).map_err(classify)?;
        t.render(value).map_err(classify)
    }
}

fn classify(e: minijinja::Error) -> RenderError {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if e.kind() == ErrorKind::SyntaxError {
        RenderError::Syntax(text)
    } else {
        RenderError::Other(text)
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

    fn ctx<'a>(u: &'a plugin_api::User, url: &'a str) -> RenderContext<'a> {
        RenderContext {
            url,
            user: u,
            expires_ms: 31 * 60_000,
            now_ms: 0,
            token: "T",
            subject: "s",
        }
    }

    #[test]
    fn builtins_render_with_companion_text_and_escape_html() {
        let t = Templates::new(None);
        let u = user();
        let (html, text) = t
            .render(
                "email/password_reset.html",
                &ctx(&u, "https://x/?a=1&flow_token=T"),
            )
            .unwrap();
        assert!(html.contains("Hi &lt;jane&gt;,"), "{html}");
        assert!(html.contains("a=1&amp;flow_token=T\""), "{html}");
        assert!(!html.contains("a=1&flow_token"));
        assert!(html.contains("valid for 31 minutes from now."));
        let text = text.unwrap();
        assert!(text.contains("Hi <jane>,"));
        assert!(text.contains("https://x/?a=1&flow_token=T"));
        let (html, text) = t
            .render("email/account_confirmation.html", &ctx(&u, "u"))
            .unwrap();
        assert!(html.contains("Confirm Account") && html.contains("Powered by authentik."));
        assert!(text.unwrap().contains("Just open the link below."));
    }

    #[test]
    fn custom_templates_syntax_errors_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("html")).unwrap();
        std::fs::write(dir.path().join("ok.html"), "<b>{{ user.email }}</b>").unwrap();
        std::fs::write(dir.path().join("broken.html"), "{% if %}").unwrap();
        std::fs::write(
            dir.path().join("loop.html"),
            "{% for i in range(100000) %}{{ i }}{% endfor %}",
        )
        .unwrap();
        let t = Templates::new(Some(dir.path().to_path_buf()));
        let u = user();
        let (html, text) = t.render("ok.html", &ctx(&u, "u")).unwrap();
        assert_eq!(html, "<b>jane@example.com</b>");
        assert_eq!(text, None);
        assert!(matches!(
            t.render("broken.html", &ctx(&u, "u")),
            Err(RenderError::Syntax(_))
        ));
        assert!(
            matches!(t.render("loop.html", &ctx(&u, "u")), Err(RenderError::Other(m)) if m.contains("fuel"))
        );
        assert!(matches!(
            t.render("../etc/passwd", &ctx(&u, "u")),
            Err(RenderError::Other(_))
        ));
    }

    #[test]
    fn naturaltime_like_django() {
        assert_eq!(naturaltime(31 * 60_000, 0), "31 minutes from now");
        assert_eq!(naturaltime(60_000, 0), "a minute from now");
        assert_eq!(naturaltime(3_600_000, 0), "an hour from now");
        assert_eq!(naturaltime(90_000_000, 0), "1 day, 1 hour from now");
        assert_eq!(naturaltime(0, 5_000), "5 seconds ago");
    }
}
