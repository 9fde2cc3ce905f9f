//! `host-harness`: the reference host's command line. The commands themselves are
//! in [`cli`], one file each.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "host-harness",
    version,
    about = "Reference host for identity-server stage plugins"
)]
struct Cli {
    /// How log lines are written to standard error: `text` for people, `json` (one
    /// object per line) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    Serve(cli::serve::Args),
    /// Creates, lists and shows users in a host's storage (works while it serves).
    Users {
        /// Storage URL (`sqlite://<path>`); default: the one `serve` uses without --config.
        #[arg(long, global = true, default_value = "sqlite://serve-out/host.db")]
        database: String,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Lists, shows, retries and purges queued mail in a host's storage (works while
    /// it serves). Nothing printed holds a message body, link or SMTP setting.
    Outbox {
        /// Storage URL (`sqlite://<path>` or `postgres://…`); default: the one `serve`
        /// uses without --config.
        #[arg(long, global = true, default_value = "sqlite://serve-out/host.db")]
        database: String,
        /// PostgreSQL schema (the configuration's `database_schema`).
        #[arg(long, global = true)]
        database_schema: Option<String>,
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Steers the plugin stages of hosts serving from a storage (works while they
    /// serve).
    Plugins {
        /// Storage URL (`sqlite://<path>` or `postgres://…`); default: the one `serve`
        /// uses without --config.
        #[arg(long, global = true, default_value = "sqlite://serve-out/host.db")]
        database: String,
        /// PostgreSQL schema (the configuration's `database_schema`).
        #[arg(long, global = true)]
        database_schema: Option<String>,
        #[command(subcommand)]
        command: PluginsCommand,
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
    /// Writes a host configuration from authentik blueprints (YAML) and reports, one
    /// line per entry, what could not be carried over.
    ImportAuthentik {
        /// Blueprint files.
        #[arg(required = true)]
        blueprints: Vec<PathBuf>,
        /// Where to write the configuration (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Email stage library to load (default: the one beside this executable).
        #[arg(long)]
        plugin: Option<PathBuf>,
    },
    /// Renders what a stage would mail, without storing, queueing or sending anything.
    Preview {
        /// Stage binding name (e.g. recovery-email).
        stage: String,
        /// Configuration file (TOML); default: the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Locale to render in (e.g. de); default: the user's, else the stage's or host's.
        #[arg(long, default_value = "")]
        locale: String,
        /// `sample`, or a user's id, username or email in the configuration's database.
        #[arg(long, default_value = "sample")]
        user: String,
        /// What to write.
        #[arg(long, value_enum, default_value = "html")]
        format: cli::preview::Format,
        /// Directory to write `<stage>.<locale>.<ext>` into (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs the conformance battery on a plugin library's stage kinds: one PASS or
    /// FAIL line per property; exits non-zero when any fails.
    CheckPlugin {
        /// Plugin library.
        path: PathBuf,
        /// Only this stage kind (default: every kind the plugin provides).
        #[arg(long)]
        kind: Option<String>,
        /// Stage configuration the kind accepts, as JSON (default `{}`).
        #[arg(long)]
        config: Option<String>,
    },
    /// Writes a new stage plugin crate: config type, stage, unit tests on the kit, an
    /// FFI test and a host configuration that loads it.
    NewPlugin {
        /// Crate name and stage kind (a-z, 0-9, '-').
        name: String,
        /// Folder the crate folder is made in.
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The plugin-api crate to depend on (default: the one this binary was built from).
        #[arg(long)]
        plugin_api: Option<PathBuf>,
    },
    /// Loads a plugin library and prints its manifest, or the reason it is refused.
    Inspect {
        /// Plugin library.
        path: PathBuf,
        /// Print abi_stable's full layout report on incompatibility.
        #[arg(long)]
        verbose: bool,
        /// Print only the configuration schema of each stage kind, as
        /// `{"<kind>": <JSON Schema>}`.
        #[arg(long)]
        schema: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum UsersCommand {
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
        /// Preferred locale of mail and messages (e.g. `de`, `fr-CH`).
        #[arg(long, default_value = "")]
        locale: String,
    },
    /// Prints every user as a JSON line.
    List,
    /// Prints the user with this username or email as JSON.
    Show {
        /// Username or email.
        identifier: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum OutboxCommand {
    /// Prints entries as JSON lines, newest first.
    List {
        /// Only entries in this state: queued, retrying, sending, sent, dead.
        #[arg(long)]
        state: Option<host_harness::storage::admin::EntryState>,
        /// Only mail to this address (ASCII case ignored).
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Prints one entry as JSON.
    Show {
        /// Entry id (from `list`).
        id: i64,
    },
    /// Puts a dead or waiting entry (or every dead one) back in the queue, due now,
    /// with a fresh retry budget.
    Retry {
        /// Entry id (from `list`).
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Every dead entry.
        #[arg(long)]
        all_dead: bool,
    },
    /// Deletes dead entries queued longer ago than --older-than.
    Purge {
        /// Dead entries (the only kind purged; required to say so).
        #[arg(long, required = true)]
        dead: bool,
        /// Age, such as 30d, 12h or 90m.
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
}

#[derive(Subcommand)]
pub(crate) enum PluginsCommand {
    /// Ends a stage's quarantine (begun after repeated plugin panics) before its
    /// cool-down: every host serving from this storage calls the plugin again
    /// within a second.
    Release {
        /// Stage binding name (`[[stages]] name`).
        stage: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(host_harness::system::logging::filter("warn"))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Demo { out, plugin, smtp } => cli::demo::run(&out, plugin, smtp.as_deref()),
        Command::Serve(args) => cli::serve::run(args),
        Command::Users { database, command } => cli::users::run(&database, command),
        Command::Outbox {
            database,
            database_schema,
            command,
        } => cli::outbox::run(&database, database_schema.as_deref(), command),
        Command::Plugins {
            database,
            database_schema,
            command,
        } => cli::plugins::run(&database, database_schema.as_deref(), command),
        Command::Deliver { config, until_idle } => cli::deliver::run(&config, until_idle),
        Command::Check { config } => cli::check::run(&config),
        Command::TestEmail {
            config,
            to,
            stage,
            from,
        } => cli::test_email::run(&config, &to, stage.as_deref(), from),
        Command::ImportAuthentik {
            blueprints,
            output,
            plugin,
        } => cli::import::run(&blueprints, output.as_deref(), plugin),
        Command::Preview {
            stage,
            config,
            locale,
            user,
            format,
            out,
        } => cli::preview::run(&cli::preview::Args {
            config: config.as_deref(),
            stage: &stage,
            locale: &locale,
            user: &user,
            format,
            out: out.as_deref(),
        }),
        Command::CheckPlugin { path, kind, config } => {
            cli::check_plugin::run(&path, kind.as_deref(), config.as_deref())
        }
        Command::NewPlugin {
            name,
            path,
            plugin_api,
        } => cli::new_plugin::run(&name, &path, plugin_api),
        Command::Inspect {
            path,
            verbose,
            schema,
        } => cli::inspect::run(&path, verbose, schema),
    }
}
