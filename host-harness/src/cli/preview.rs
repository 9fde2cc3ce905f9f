//! `preview`: what a stage would mail, rendered by the stage itself against an
//! in-memory host, so nothing is stored, queued or sent.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use host_harness::config::{self, HostConfig, MailConfig};
use host_harness::i18n::resolve_brand;
use host_harness::mail::maildir;
use host_harness::stages::StageImpl;
use plugin_api::testing::FakeHost;
use plugin_api::{Host, Outcome, StageRequest, User};

/// What `preview` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The HTML part (a file a browser opens).
    Html,
    /// The text part.
    Text,
    /// The whole RFC 5322 message.
    Eml,
}

/// `preview`'s arguments.
pub struct Args<'a> {
    /// Host configuration; `None`: the embedded defaults.
    pub config: Option<&'a Path>,
    /// Stage binding name.
    pub stage: &'a str,
    /// Locale to render in; empty: the user's, else the host default.
    pub locale: &'a str,
    /// `sample`, or a user id, username or email in the configuration's database.
    pub user: &'a str,
    /// What to write.
    pub format: Format,
    /// Directory to write into; `None`: standard output.
    pub out: Option<&'a Path>,
}

fn configuration(path: Option<&Path>) -> anyhow::Result<HostConfig> {
    match path {
        Some(p) => Ok(HostConfig::load(p)?),
        None => Ok(config::reference_config(
            "sqlite://serve-out/host.db",
            "http://127.0.0.1:9000",
            Some(&super::demo::default_plugin()?),
            MailConfig::default(),
        )),
    }
}

fn sample_user() -> User {
    User {
        id: Some("1".into()),
        username: "sample".into(),
        name: "Sample User".into(),
        email: "sample@example.com".into(),
        is_active: true,
        locale: String::new(),
        attributes: Default::default(),
    }
}

fn the_user(cfg: &HostConfig, who: &str) -> anyhow::Result<User> {
    if who == "sample" {
        return Ok(sample_user());
    }
    let store = config::open_store(&cfg.database)?;
    let found = match store.user(who)? {
        Some(u) => Some(u),
        None => store.find_user(who)?,
    };
    found.with_context(|| format!("no user '{who}' in {}", config::redact_url(&cfg.database)))
}

/// Renders stage `args.stage`'s mail and writes or prints it.
pub fn run(args: &Args<'_>) -> anyhow::Result<()> {
    let cfg = configuration(args.config)?;
    let plugins = config::load_plugins(&cfg)?;
    let bindings = config::validate(&cfg, &plugins)?;
    let Some(binding) = bindings.iter().find(|b| b.name == args.stage) else {
        let names: Vec<&str> = bindings.iter().map(|b| b.name.as_str()).collect();
        bail!("no stage '{}' (stages: {})", args.stage, names.join(", "));
    };
    let StageImpl::Plugin { stage, .. } = &binding.imp else {
        bail!("stage '{}' is built in and sends no mail", args.stage);
    };
    let flow = cfg
        .flows
        .iter()
        .find(|f| f.stages.iter().any(|s| s == args.stage));
    let brand = resolve_brand(&cfg.brand, flow.and_then(|f| f.brand.as_ref()))?;
    let mut user = the_user(&cfg, args.user)?;
    if !args.locale.is_empty() {
        user.locale = args.locale.to_string();
    }
    let host = FakeHost::new()
        .with_user(user.clone())
        .with_from_address(&cfg.mail.from);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    host.advance(now - host.now_ms());
    let context = serde_json::json!({ "pending_user": user, "brand": brand }).to_string();
    let locale =
        (binding.default_locale.clone()).unwrap_or_else(|| cfg.i18n.default_locale.clone());
    let req = StageRequest {
        flow_slug: flow.map_or("preview", |f| f.slug.as_str()),
        flow_designation: flow.map_or("recovery", |f| f.designation.as_str()),
        stage_name: args.stage,
        query: "",
        base_url: cfg.base_url.trim_end_matches('/'),
        locale: &locale,
        requester_id: None,
        context_json: &context,
    };
    let result = stage.get(&req, &host)?;
    let Some(mail) = host.mails().into_iter().next() else {
        let events: Vec<String> = (host.events().iter())
            .map(|(a, c)| format!("{a}: {c}"))
            .collect();
        let outcome = match result.outcome {
            Outcome::Challenge(c) => format!("challenge {c}"),
            other => format!("{other:?}"),
        };
        bail!(
            "stage '{}' mailed nothing ({outcome}) {}",
            args.stage,
            events.join("; ")
        );
    };
    write(args, &mail.locale, &mail.raw)
}

fn write(args: &Args<'_>, locale: &str, raw: &[u8]) -> anyhow::Result<()> {
    let parsed =
        maildir::parse(Path::new("preview"), raw).context("the stage's mail does not parse")?;
    let (ext, body): (&str, Vec<u8>) = match args.format {
        Format::Eml => ("eml", raw.to_vec()),
        Format::Html => (
            "html",
            parsed
                .html
                .context("the mail has no HTML part")?
                .into_bytes(),
        ),
        Format::Text => (
            "txt",
            parsed
                .text
                .context("the mail has no text part")?
                .into_bytes(),
        ),
    };
    let Some(dir) = args.out else {
        use std::io::Write;
        std::io::stdout().write_all(&body)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let locale = if locale.is_empty() { "default" } else { locale };
    let file: PathBuf = dir.join(format!("{}.{locale}.{ext}", args.stage));
    std::fs::write(&file, body).with_context(|| format!("cannot write {}", file.display()))?;
    println!("{}", file.display());
    Ok(())
}
