//! `host-harness`: the reference host's command line.

mod demo;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "host-harness",
    version,
    about = "Reference host for identity-server stage plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs enrollment and recovery end to end on the embedded defaults and prints each step.
    Demo {
        /// Output folder (SQLite file and mail directory); emptied first.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// Email stage plugin library; default: next to this executable.
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Deliver over SMTP to this host:port instead of the mail directory.
        #[arg(long)]
        smtp: Option<String>,
    },
    /// Serves the flows over HTTP (flow page + executor API) with mail delivery.
    Serve {
        /// Configuration file (TOML); default: the reference flows on embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// With no --config: folder for the SQLite file and the mail directory.
        #[arg(long, default_value = "serve-out")]
        data: PathBuf,
        /// With no --config: email stage plugin library (default: next to this executable).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Storage URL, overriding the configuration (`sqlite://…`, `postgres://…`, `memory://`).
        #[arg(long)]
        database: Option<String>,
        /// Cache URL, overriding the configuration (`memory://`, `redis://…`,
        /// `postgres://…`).
        #[arg(long)]
        cache: Option<String>,
    },
    /// Creates, lists and shows users in a host's storage (works while it serves).
    Users {
        /// Storage URL (`sqlite://<path>`); default: the one `serve` uses without --config.
        #[arg(long, global = true, default_value = "sqlite://serve-out/host.db")]
        database: String,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Runs the mail delivery workers over a configuration's outbox.
    Deliver {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Exit once nothing is due or being delivered (retries scheduled later stay queued).
        #[arg(long)]
        until_idle: bool,
    },
    /// Validates a host configuration: loads its plugins, builds every stage, checks the flows.
    Check {
        /// Configuration file (TOML).
        config: PathBuf,
    },
    /// Sends one test message now through the global or a stage's SMTP settings and
    /// reports the outcome (authentik's `ak test_email`).
    TestEmail {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Recipient.
        to: String,
        /// Email stage whose settings to use (default: the global settings).
        #[arg(short = 'S', long)]
        stage: Option<String>,
        /// Sender address (default: the global `mail.from`).
        #[arg(long)]
        from: Option<String>,
    },
    /// Loads a plugin library and prints its manifest, or the reason it is refused.
    Inspect {
        /// Plugin library.
        path: PathBuf,
        /// Print abi_stable's full layout report on incompatibility.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Creates a user and prints it as JSON.
    Create {
        /// Login name.
        username: String,
        /// Email address.
        #[arg(long, default_value = "")]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Create the account inactive.
        #[arg(long)]
        inactive: bool,
        /// Read a password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Prints every user as a JSON line.
    List,
    /// Prints the user with this username or email as JSON.
    Show {
        /// Username or email.
        identifier: String,
    },
}

fn users(database: &str, command: UsersCommand) -> anyhow::Result<()> {
    let store = host_harness::config::open_store(database)?;
    match command {
        UsersCommand::Create {
            username,
            email,
            name,
            inactive,
            password_stdin,
        } => {
            if username.trim().is_empty() || username.chars().any(char::is_whitespace) {
                anyhow::bail!("username must be non-empty and without spaces");
            }
            if !email.is_empty() && email.parse::<lettre::Address>().is_err() {
                anyhow::bail!("'{email}' is not a valid email address");
            }
            let password_hash = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let pw = line.trim_end_matches(['\r', '\n']);
                anyhow::ensure!(!pw.is_empty(), "empty password on standard input");
                Some(host_harness::builtin::hash_password(pw)?)
            } else {
                None
            };
            let user = store.create_user(&host_harness::store::NewUser {
                username,
                name,
                email,
                is_active: !inactive,
                password_hash,
            })?;
            println!("{}", serde_json::to_string(&user)?);
        }
        UsersCommand::List => {
            for u in store.users()? {
                println!("{}", serde_json::to_string(&u)?);
            }
        }
        UsersCommand::Show { identifier } => match store.find_user(&identifier)? {
            Some(u) => println!("{}", serde_json::to_string_pretty(&u)?),
            None => anyhow::bail!("no user '{identifier}'"),
        },
    }
    Ok(())
}

/// `memory://` keeps nothing across a restart: say so where an operator looks.
fn warn_if_not_durable(cfg: &host_harness::config::HostConfig) {
    if cfg.database == "memory://" {
        tracing::warn!(target: "config", "database = \"memory://\": users, tokens, sessions and queued mail are lost when the process stops");
        eprintln!("warning: database = \"memory://\" is not durable: users, tokens, sessions and queued mail are lost when the process stops");
    }
}

/// `test-email`: one message now over the global settings or a stage's own.
fn test_email(
    config: &std::path::Path,
    to: &str,
    stage: Option<&str>,
    from: Option<String>,
) -> anyhow::Result<()> {
    use host_harness::config;
    let cfg = config::HostConfig::load(config)?;
    let plugins = match stage {
        Some(_) => config::load_plugins(&cfg)?,
        None => Vec::new(),
    };
    let line = config::test_email(&cfg, &plugins, to, stage, from.as_deref())?;
    println!("{line}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(host_harness::logging::filter("warn"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo { out, plugin, smtp } => demo::run(&out, plugin, smtp.as_deref()),
        Command::Serve {
            config,
            listen,
            data,
            plugin,
            database,
            cache,
        } => {
            use host_harness::config::{self, MailConfig};
            let cfg = match config {
                Some(c) => config::HostConfig::load(&c)?,
                None => {
                    let plugin = match plugin {
                        Some(p) => p,
                        None => demo::default_plugin()?,
                    };
                    std::fs::create_dir_all(&data)?;
                    config::reference_config(
                        &format!("sqlite://{}", data.join("host.db").display()),
                        &format!("http://{listen}"),
                        Some(&plugin),
                        MailConfig {
                            maildir: Some(data.join("mail")),
                            ..Default::default()
                        },
                    )
                }
            };
            let mut cfg = cfg;
            if let Some(d) = database {
                cfg.database = d;
            }
            if let Some(c) = cache {
                cfg.cache = Some(c);
            }
            warn_if_not_durable(&cfg);
            let settings = cfg.http.to_settings(&cfg.database)?;
            let plugins = config::load_plugins(&cfg)?;
            let ex = config::build_executor(&cfg, &plugins, config::Backends::from_config(&cfg)?)?;
            let _housekeeping = host_harness::maintenance::Maintenance::start(
                ex.store.clone(),
                ex.cache.clone(),
                ex.clock.clone(),
                host_harness::maintenance::Housekeeping {
                    session_idle_ms: settings.sessions.idle_ms,
                    ..Default::default()
                },
            )?;
            let state = host_harness::http::AppState::with_settings(ex, settings);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                eprintln!(
                    "serving {} on http://{listen}/ (Ctrl-C stops)",
                    cfg.base_url
                );
                host_harness::http::serve(listener, state, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
                anyhow::Ok(())
            })
        }
        Command::Users { database, command } => users(&database, command),
        Command::Deliver { config, until_idle } => {
            use host_harness::config;
            let cfg = config::HostConfig::load(&config)?;
            warn_if_not_durable(&cfg);
            // The stages' SMTP settings come from the stages themselves.
            let plugins = config::load_plugins(&cfg)?;
            let routes = config::mail_routes(&config::validate(&cfg, &plugins)?);
            let b = config::Backends::from_config(&cfg)?;
            let store = b.store.clone();
            let queue = host_harness::mail::MailQueue::start(
                cfg.delivery()?,
                std::sync::Arc::new(routes),
                b.store,
                b.clock,
                b.outbox,
            )?;
            loop {
                if until_idle && queue.wait_idle(std::time::Duration::from_secs(1)) {
                    let c = store.outbox_counts()?;
                    println!(
                        "outbox idle: {} sent, {} pending, {} dead",
                        c.sent, c.pending, c.dead
                    );
                    return Ok(());
                }
                if !until_idle {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
        Command::Check { config } => {
            // Validation only: no database is opened, no file created, nothing sent.
            let cfg = host_harness::config::HostConfig::load(&config)?;
            let plugins = host_harness::config::load_plugins(&cfg)?;
            host_harness::config::validate(&cfg, &plugins)
                .with_context(|| format!("{} is not usable", config.display()))?;
            warn_if_not_durable(&cfg);
            println!(
                "{}: {} plugins, {} stages, {} flows: ok",
                config.display(),
                cfg.plugins.len(),
                cfg.stages.len(),
                cfg.flows.len()
            );
            Ok(())
        }
        Command::TestEmail {
            config,
            to,
            stage,
            from,
        } => test_email(&config, &to, stage.as_deref(), from),
        Command::Inspect { path, verbose } => match plugin_api::load_plugin(&path) {
            Ok(p) => {
                use plugin_api::Plugin;
                println!("{}", serde_json::to_string_pretty(&p.manifest())?);
                Ok(())
            }
            Err(plugin_api::LoadError::Incompatible { full_report, .. }) if verbose => {
                Err(anyhow::anyhow!("{full_report}")).context("plugin refused")
            }
            Err(e) => Err(e).context("plugin refused"),
        },
    }
}
