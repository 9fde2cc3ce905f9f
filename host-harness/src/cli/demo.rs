//! `host-harness demo`: enrollment and recovery, end to end, printed step by step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use host_harness::config::{self, Backends, MailConfig, SmtpConfig};
use host_harness::flow::client::FlowClient;
use host_harness::flow::{Executor, Session};
use host_harness::mail::maildir;
use serde_json::{json, Value};

const BASE_URL: &str = "http://localhost:9000";

/// The email stage plugin next to this executable.
pub fn default_plugin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    let dir = exe.parent().context("executable has no directory")?;
    let name = format!(
        "{}email_stage_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = dir.join(&name);
    if !path.exists() {
        bail!(
            "{} not found; build the plugin first (`cargo build --workspace`) or pass --plugin",
            path.display()
        );
    }
    Ok(path)
}

fn show(step: &str, v: &Value) {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("flow_info");
    }
    println!("  {step:<34} {v}");
}

fn expect(v: &Value, component: &str, step: &str) -> anyhow::Result<()> {
    if v["component"] != component {
        bail!("{step}: expected {component}, got {v}");
    }
    Ok(())
}

struct Mailbox {
    dir: PathBuf,
    seen: usize,
    smtp: bool,
}

impl Mailbox {
    fn next_link(&mut self, ex: &Executor) -> anyhow::Result<String> {
        for _ in 0..100 {
            ex.mail.wait_idle(Duration::from_secs(10));
            let mails = maildir::read_all(&self.dir);
            if mails.len() > self.seen {
                let m = &mails[self.seen];
                self.seen += 1;
                let link = m.link().context("no link in the mail")?;
                println!(
                    "  mail delivered                     To: {} | Subject: {}",
                    m.to, m.subject
                );
                println!("  link in the mail                   {}", redact(&link));
                return Ok(link);
            }
            if !self.smtp {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no mail arrived in {}", self.dir.display())
    }
}

/// Shows the beginning of the token only; the demo prints, it does not leak.
fn redact(link: &str) -> String {
    match link.split_once("flow_token=") {
        Some((a, t)) => format!("{a}flow_token={}…", &t[..t.len().min(6)]),
        None => link.to_string(),
    }
}

/// Opens a link in a new browser session; returns it with the confirmation token.
fn follow_link<'a>(ex: &'a Executor, link: &str) -> anyhow::Result<(FlowClient<'a>, String)> {
    let mut c = FlowClient::open_link(ex, link, Session::default()).context("malformed link")?;
    let v = c.get();
    show("open link (new browser)", &v);
    expect(&v, "ak-stage-consent", "open link")?;
    let token = v["token"].as_str().unwrap_or("").to_string();
    Ok((c, token))
}

/// Where the demo's mail goes and where it reads it back.
fn mail_setup(out: &Path, smtp: Option<&str>) -> anyhow::Result<(MailConfig, PathBuf)> {
    let Some(addr) = smtp else {
        let dir = out.join("mail");
        let mail = MailConfig {
            maildir: Some(dir.clone()),
            ..Default::default()
        };
        return Ok((mail, dir));
    };
    let (host, port) = addr.rsplit_once(':').context("--smtp wants host:port")?;
    let smtp = SmtpConfig {
        host: host.into(),
        port: port.parse().context("--smtp port")?,
        username: String::new(),
        password: String::new(),
        use_tls: false,
        use_ssl: false,
        timeout: 10,
    };
    let dir = std::env::var_os("DEMO_SMTP_MAILDIR")
        .map(PathBuf::from)
        .context(
        "with --smtp, set DEMO_SMTP_MAILDIR to the sink's Maildir so the demo can read the link",
    )?;
    let mail = MailConfig {
        smtp: Some(smtp),
        ..Default::default()
    };
    Ok((mail, dir))
}

/// Loads the plugin and builds the host on a fresh SQLite file in `out`.
fn host(out: &Path, plugin: &Path, mail: MailConfig) -> anyhow::Result<Executor> {
    let db = out.join("host.db");
    let cfg = config::reference_config(
        &format!("sqlite://{}", db.display()),
        BASE_URL,
        Some(plugin),
        mail,
    );
    let plugins = config::load_plugins(&cfg)?;
    for p in &plugins {
        let m = p.manifest();
        println!(
            "loaded plugin {} {} (plugin-api {}) from {}",
            m.name,
            m.version,
            m.api_version,
            plugin.display()
        );
    }
    Ok(config::build_executor(
        &cfg,
        &plugins,
        Backends::from_config(&cfg)?,
    )?)
}

/// Runs the demo.
pub fn run(out: &Path, plugin: Option<PathBuf>, smtp: Option<&str>) -> anyhow::Result<()> {
    let plugin = match plugin {
        Some(p) => p,
        None => default_plugin()?,
    };
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("cannot empty {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    let (mail, mailbox_dir) = mail_setup(out, smtp)?;
    let ex = host(out, &plugin, mail)?;
    let seen = maildir::read_all(&mailbox_dir).len();
    let mut mailbox = Mailbox {
        dir: mailbox_dir,
        seen,
        smtp: smtp.is_some(),
    };
    println!(
        "\n== enrollment (flow 'enroll', SQLite {}) ==",
        out.join("host.db").display()
    );
    let user = enrollment(&ex, &mut mailbox)?;
    println!("\n== recovery (flow 'recover') ==");
    recovery(&ex, &mut mailbox, &user)?;
    println!("\n== recovery for an unknown address (anti-enumeration) ==");
    unknown_address(&ex)?;
    ex.mail.wait_idle(Duration::from_secs(10));
    let sent = ex.store.events(Some("email_sent"))?.len();
    println!(
        "\ndemo complete: both flows finished; {sent} mails delivered; data in {}",
        out.display()
    );
    Ok(())
}

/// Signs up jane, confirms the link, checks she is active and signed in.
fn enrollment(ex: &Executor, mailbox: &mut Mailbox) -> anyhow::Result<plugin_api::User> {
    let mut c = FlowClient::open(ex, "enroll", "");
    let v = c.get();
    show("GET enroll", &v);
    expect(&v, "ak-stage-prompt", "enroll")?;
    let v = c.post(json!({
        "component": "ak-stage-prompt",
        "username": "jane", "name": "Jane Doe", "email": "jane@example.com",
        "password": "correct horse battery staple", "password_repeat": "correct horse battery staple",
    }));
    show("POST sign-up form", &v);
    expect(&v, "ak-stage-email", "sign-up")?;
    let user = ex.store.find_user("jane")?.context("user not written")?;
    println!(
        "  user written                       {} active={}",
        user.username, user.is_active
    );
    let link = mailbox.next_link(ex)?;
    let (mut b, token) = follow_link(ex, &link)?;
    let v = b.post(json!({"component": "ak-stage-consent", "token": token}));
    show("POST confirm", &v);
    expect(&v, "xak-flow-redirect", "confirm")?;
    let user = ex.store.find_user("jane")?.context("user vanished")?;
    println!("  messages                           {}", messages(&v));
    println!(
        "  user activated                     {} active={} signed_in={}",
        user.username,
        user.is_active,
        b.session.user_id == user.id
    );
    if !user.is_active {
        bail!("enrollment did not activate the user");
    }
    Ok(user)
}

/// Recovers jane's password through a resent link; the first link is dead after.
fn recovery(ex: &Executor, mailbox: &mut Mailbox, user: &plugin_api::User) -> anyhow::Result<()> {
    let mut c = FlowClient::open(ex, "recover", "next=%2Fapp");
    let v = c.get();
    show("GET recover", &v);
    expect(&v, "ak-stage-identification", "recover")?;
    let v =
        c.post(json!({"component": "ak-stage-identification", "uid_field": "jane@example.com"}));
    show("POST identifier", &v);
    expect(&v, "ak-stage-email", "identify")?;
    let v = c.post(json!({"component": "ak-stage-email"}));
    show("POST \"Send Email again.\"", &v);
    println!("  messages                           {}", messages(&v));
    let first = mailbox.next_link(ex)?;
    let link = mailbox.next_link(ex)?;
    let (mut b, token) = follow_link(ex, &link)?;
    let v = b.post(json!({"component": "ak-stage-consent", "token": token}));
    show("POST confirm", &v);
    expect(&v, "ak-stage-prompt", "confirm")?;
    let v = b.post(json!({"component": "ak-stage-prompt", "password": "new secret 123", "password_repeat": "new secret 123"}));
    show("POST new password", &v);
    expect(&v, "xak-flow-redirect", "new password")?;
    let id = user.id.clone().unwrap_or_default();
    let ok = ex
        .store
        .password_hash(&id)?
        .is_some_and(|h| host_harness::stages::builtin::verify_password("new secret 123", &h));
    println!(
        "  password changed                   {ok}; redirected to {}",
        v["to"]
    );
    if !ok {
        bail!("recovery did not change the password");
    }
    let v = FlowClient::open_link(ex, &first, Session::default())
        .context("link")?
        .get();
    show("older link after success", &v);
    Ok(())
}

/// The same flow for an unknown address: the same answers, no token.
fn unknown_address(ex: &Executor) -> anyhow::Result<()> {
    let before = ex.store.token_count()?;
    let mut c = FlowClient::open(ex, "recover", "");
    c.get();
    let v =
        c.post(json!({"component": "ak-stage-identification", "uid_field": "nobody@example.com"}));
    show("POST identifier", &v);
    let v = c.post(json!({"component": "ak-stage-email"}));
    show("POST \"Send Email again.\"", &v);
    println!("  messages                           {}", messages(&v));
    println!(
        "  tokens created                     {}",
        ex.store.token_count()? - before
    );
    Ok(())
}

fn messages(v: &Value) -> String {
    v["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    format!(
                        "[{}] {}",
                        m["level"].as_str().unwrap_or(""),
                        m["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}
