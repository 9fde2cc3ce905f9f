//! `serve`: the flows over HTTP, with delivery and maintenance in the background.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use host_harness::config::{self, HostConfig, MailConfig};
use host_harness::http::HttpSettings;
use host_harness::maintenance::{Housekeeping, Maintenance};
use host_harness::system::clock::{Clock, ManualClock, SystemClock};

/// The clock `serve` runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClockKind {
    /// The system clock.
    #[default]
    System,
    /// Starts at the system time and moves only by `POST /-/test/clock`, for tests of
    /// expiry and rate-limit windows against a running host. Loopback only.
    Manual,
}

/// The command line of `serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML); default: the reference flows on embedded defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Address for `/metrics` and the health endpoints (none unless given; keep it
    /// off the public side).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// With no --config: folder for the SQLite file and the mail directory.
    #[arg(long, default_value = "serve-out")]
    pub data: PathBuf,
    /// With no --config: email stage plugin library (default: next to this executable).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Storage URL, overriding the configuration (`sqlite://…`, `postgres://…`, `memory://`).
    #[arg(long)]
    pub database: Option<String>,
    /// Cache URL, overriding the configuration (`memory://`, `redis://…`,
    /// `postgres://…`).
    #[arg(long)]
    pub cache: Option<String>,
    /// `manual`: a clock moved only by `POST /-/test/clock {"advance_ms": N}`, for
    /// tests; refused unless --listen is a loopback address.
    #[arg(long, value_enum, default_value_t = ClockKind::System)]
    pub clock: ClockKind,
}

/// With `--clock manual`: a hand-moved clock, after checking that only this
/// machine can reach it (before anything is opened).
fn manual_clock(args: &Args) -> anyhow::Result<Option<Arc<ManualClock>>> {
    if args.clock != ClockKind::Manual {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = args.listen.parse().with_context(|| {
        format!("--clock manual needs --listen as a loopback IP address and port, such as 127.0.0.1:9000, not '{}'", args.listen)
    })?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--clock manual is for tests: refused on {addr}, which is not a loopback address"
    );
    eprintln!(
        "warning: --clock manual: time moves only by POST http://{addr}/-/test/clock (tests only)"
    );
    Ok(Some(Arc::new(ManualClock::new(SystemClock.now_ms()))))
}

/// Puts the hand-moved clock on `backends` and `settings`. Delivery starts at once
/// (no jitter): a jittered due time would never come on a clock that stands.
fn use_clock(
    clock: Arc<ManualClock>,
    backends: &mut config::Backends,
    settings: &mut HttpSettings,
) {
    backends.clock = clock.clone();
    backends.outbox.wake_jitter = Duration::ZERO;
    settings.test_clock = Some(clock);
}

/// The configuration `args` name, with the URL overrides applied.
fn configuration(args: &Args) -> anyhow::Result<HostConfig> {
    let mut cfg = match &args.config {
        Some(c) => HostConfig::load(c)?,
        None => {
            let plugin = match &args.plugin {
                Some(p) => p.clone(),
                None => super::demo::default_plugin()?,
            };
            std::fs::create_dir_all(&args.data)?;
            let mut cfg = config::reference_config(
                &format!("sqlite://{}", args.data.join("host.db").display()),
                &format!("http://{}", args.listen),
                Some(&plugin),
                MailConfig {
                    maildir: Some(args.data.join("mail")),
                    ..Default::default()
                },
            );
            with_email_code_example(&mut cfg, &plugin)?;
            cfg
        }
    };
    if let Some(d) = &args.database {
        cfg.database = d.clone();
    }
    if let Some(c) = &args.cache {
        cfg.cache = Some(c.clone());
    }
    Ok(cfg)
}

/// The email-code example's sign-in flow (`examples/email-code-stage/flow.toml`,
/// flow `code-signin`), added to the embedded defaults when its library was built
/// beside the email stage's (`cargo build --workspace` builds both).
fn with_email_code_example(
    cfg: &mut HostConfig,
    email_plugin: &std::path::Path,
) -> anyhow::Result<()> {
    let name = format!(
        "{}email_code_stage{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let Some(lib) = email_plugin
        .parent()
        .map(|d| d.join(name))
        .filter(|p| p.exists())
    else {
        return Ok(());
    };
    let text = include_str!("../../../examples/email-code-stage/flow.toml");
    let example: HostConfig =
        toml::from_str(text).context("examples/email-code-stage/flow.toml")?;
    cfg.plugins.push(config::PluginRef {
        path: lib,
        sha256: None,
    });
    cfg.stages.extend(example.stages);
    cfg.flows.extend(example.flows);
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which container runtimes send to stop a
/// process: either one stops the server the same graceful way. Gives the exit
/// status a process killed by that signal would have (130, 143).
async fn stop_signal() -> i32 {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(target: "serve", error = %e, "SIGTERM cannot be watched; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return 130;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    }
}

/// Serves until Ctrl-C or SIGTERM (a second one exits at once).
pub fn run(args: Args) -> anyhow::Result<()> {
    let test_clock = manual_clock(&args)?;
    let cfg = configuration(&args)?;
    super::warn_if_not_durable(&cfg);
    let mut settings = cfg.http.to_settings(&cfg.database)?;
    let mut backends = config::Backends::from_config(&cfg)?;
    if let Some(clock) = test_clock {
        use_clock(clock, &mut backends, &mut settings);
    }
    let plugins = config::load_plugins(&cfg)?;
    let ex = config::build_executor(&cfg, &plugins, backends)?;
    let _housekeeping = Maintenance::start(
        ex.store.clone(),
        ex.cache.clone(),
        ex.clock.clone(),
        Housekeeping {
            session_idle_ms: settings.sessions.idle_ms,
            ..Default::default()
        },
    )?;
    let state = host_harness::http::AppState::with_settings(ex, settings);
    let (listen, metrics_listen) = (args.listen, args.metrics_listen);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = bind(&listen).await?;
        let monitor = match &metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        // One signal stops both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
            // In-flight requests may take the whole grace period; a second signal
            // does not wait for them.
            let status = stop_signal().await;
            eprintln!("second signal: exiting without waiting for requests in flight");
            std::process::exit(status);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics = monitor.map(|l| {
            eprintln!(
                "metrics and health on http://{}/metrics",
                metrics_listen.unwrap_or_default()
            );
            tokio::spawn(host_harness::http::serve_metrics(
                l,
                state.clone(),
                stopped(stop_rx.clone()),
            ))
        });
        eprintln!(
            "serving {} on http://{listen}/ (Ctrl-C or SIGTERM stops)",
            cfg.base_url
        );
        host_harness::http::serve(listener, state, stopped(stop_rx)).await?;
        if let Some(m) = metrics {
            m.await??;
        }
        anyhow::Ok(())
    })
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
