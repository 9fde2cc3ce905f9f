//! Support for the cross-crate tests: plugin libraries built on demand, a host on
//! in-memory backends with a manual clock, and a real SMTP sink.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub mod skew;
pub mod timing;

use host_harness::cache::MemoryCache;
use host_harness::config::{self, Backends, HostConfig, MailConfig, SmtpConfig};
use host_harness::flow::Executor;
use host_harness::mail::maildir::{self, ReceivedMail};
use host_harness::mail::OutboxConfig;
use host_harness::storage::{HostStore, MemoryStore};
use host_harness::system::clock::ManualClock;
use host_harness::system::entropy::{Entropy, SystemEntropy};
use plugin_api::Plugin;

/// Builds `package` (a cdylib of this workspace) with the profile the tests run
/// under and returns the library's path.
pub fn plugin_path(package: &str) -> PathBuf {
    plugin_api::testing::build_cdylib(package).unwrap_or_else(|e| panic!("{e}"))
}

/// Builds and returns the `host-harness` executable.
pub fn host_harness_bin() -> PathBuf {
    let exe = format!("host-harness{}", std::env::consts::EXE_SUFFIX);
    plugin_api::testing::build_artifact("host-harness", &exe).unwrap_or_else(|e| panic!("{e}"))
}

/// The reported file named `file_name`.
pub(crate) fn find_artifact(artifacts: &[PathBuf], file_name: &str) -> PathBuf {
    artifacts
        .iter()
        .find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy() == file_name)
        })
        .cloned()
        .unwrap_or_else(|| panic!("cargo did not report {file_name}"))
}

/// How the host reaches the email stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The cdylib, loaded through the stable ABI.
    Cdylib,
    /// The same crate linked in-process.
    Rlib,
}

/// The email stage plugin in `mode`.
pub fn email_plugin(mode: Mode) -> Arc<dyn Plugin> {
    static LOADED: OnceLock<Arc<dyn Plugin>> = OnceLock::new();
    match mode {
        Mode::Rlib => Arc::new(email_stage_plugin::EmailStagePlugin),
        Mode::Cdylib => LOADED
            .get_or_init(|| {
                Arc::new(
                    plugin_api::load_plugin(&plugin_path("email-stage-plugin"))
                        .expect("load email plugin"),
                )
            })
            .clone(),
    }
}

/// Base URL the test hosts use.
pub const BASE_URL: &str = "https://id.example.test";

/// A host on in-memory backends with a manual clock, delivering into a mail folder.
pub struct TestHost {
    /// The executor.
    pub ex: Executor,
    /// Its clock (starts at 2026-01-01); unused when built on the system clock.
    pub clock: Arc<ManualClock>,
    /// Its store.
    pub store: Arc<dyn HostStore>,
    /// Its cache.
    pub cache: Arc<MemoryCache>,
    /// Where mail lands (mail directory mode).
    pub mail_dir: tempfile::TempDir,
}

/// The reference flows with the email plugin in `mode`; `edit` may change the configuration.
pub fn host(mode: Mode, edit: impl FnOnce(&mut HostConfig)) -> TestHost {
    host_with(vec![email_plugin(mode)], Arc::new(MemoryStore::new()), edit)
}

/// Like [`host`] with explicit plugins and store.
pub fn host_with(
    plugins: Vec<Arc<dyn Plugin>>,
    store: Arc<dyn HostStore>,
    edit: impl FnOnce(&mut HostConfig),
) -> TestHost {
    host_custom(plugins, store, Arc::new(SystemEntropy), edit)
}

/// What a test host runs on besides its plugins and configuration.
pub struct Setup {
    /// Storage.
    pub store: Arc<dyn HostStore>,
    /// Randomness.
    pub entropy: Arc<dyn Entropy>,
    /// Run on the system clock, with the configuration's delivery jitter, instead of
    /// a manual clock (on which a jittered due time would never come) with none.
    pub system_clock: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            entropy: Arc::new(SystemEntropy),
            system_clock: false,
        }
    }
}

/// Like [`host_with`] with an explicit source of randomness.
pub fn host_custom(
    plugins: Vec<Arc<dyn Plugin>>,
    store: Arc<dyn HostStore>,
    entropy: Arc<dyn Entropy>,
    edit: impl FnOnce(&mut HostConfig),
) -> TestHost {
    host_setup(
        plugins,
        Setup {
            store,
            entropy,
            system_clock: false,
        },
        edit,
    )
}

/// A test host on `setup`.
pub fn host_setup(
    plugins: Vec<Arc<dyn Plugin>>,
    setup: Setup,
    edit: impl FnOnce(&mut HostConfig),
) -> TestHost {
    let Setup {
        store,
        entropy,
        system_clock,
    } = setup;
    let mail_dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config::reference_config(
        "memory://",
        BASE_URL,
        None,
        MailConfig {
            maildir: Some(mail_dir.path().to_path_buf()),
            ..Default::default()
        },
    );
    edit(&mut cfg);
    let clock = Arc::new(ManualClock::new(1_767_225_600_000));
    let cache = Arc::new(MemoryCache::new());
    let outbox = cfg.mail.outbox.to_config().expect("outbox settings");
    let (host_clock, wake_jitter): (Arc<dyn host_harness::system::clock::Clock>, _) =
        if system_clock {
            (
                Arc::new(host_harness::system::clock::SystemClock),
                outbox.wake_jitter,
            )
        } else {
            (clock.clone(), Duration::ZERO)
        };
    let ex = config::build_executor(
        &cfg,
        &plugins,
        Backends {
            store: store.clone(),
            cache: cache.clone(),
            clock: host_clock,
            entropy,
            // The configuration's outbox settings, polled often.
            outbox: OutboxConfig {
                poll: Duration::from_millis(20),
                wake_jitter,
                ..outbox
            },
        },
    )
    .expect("build executor");
    TestHost {
        ex,
        clock,
        store,
        cache,
        mail_dir,
    }
}

impl TestHost {
    /// Mails delivered so far (waits for the queue first).
    pub fn mails(&self) -> Vec<ReceivedMail> {
        assert!(
            self.ex.mail.wait_idle(Duration::from_secs(20)),
            "mail queue did not drain"
        );
        maildir::read_all(self.mail_dir.path())
    }
    /// Events with this action.
    pub fn events(&self, action: &str) -> Vec<serde_json::Value> {
        self.ex.mail.wait_idle(Duration::from_secs(20));
        self.store
            .events(Some(action))
            .expect("events")
            .into_iter()
            .map(|e| e.context)
            .collect()
    }
    /// Number of stored flow tokens.
    pub fn tokens(&self) -> u64 {
        self.store.token_count().expect("token count")
    }
    /// Changes a stage's configuration in `cfg`.
    pub fn edit_stage(cfg: &mut HostConfig, name: &str, patch: serde_json::Value) {
        let s = cfg
            .stages
            .iter_mut()
            .find(|s| s.name == name)
            .expect("stage exists");
        if s.config.is_null() {
            s.config = serde_json::json!({});
        }
        for (k, v) in patch.as_object().expect("object patch") {
            s.config[k] = v.clone();
        }
    }
}

/// A Python `aiosmtpd` server on a free loopback port, writing a Maildir.
pub struct SmtpSink {
    child: Child,
    /// Port it listens on.
    pub port: u16,
    /// Its Maildir.
    pub maildir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mail settings for an SMTP server at `host:port`: plain, no AUTH, `From`
/// `authentik@id.example.test`. Tests switch on TLS or AUTH on the result.
pub fn smtp_mail(host: &str, port: u16) -> MailConfig {
    MailConfig {
        from: "authentik@id.example.test".into(),
        smtp: Some(SmtpConfig {
            host: host.into(),
            port,
            username: String::new(),
            password: String::new(),
            use_tls: false,
            use_ssl: false,
            timeout: 5,
        }),
        ..Default::default()
    }
}

/// Log output captured in memory: a writer for `tracing_subscriber`'s
/// `with_writer(move || logs.clone())`.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// A `host-harness serve` process on a loopback port, killed when dropped.
pub struct Served {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Served {
    /// `host-harness serve --listen 127.0.0.1:<port> <args…>`, once `GET /` answers
    /// (panics after 30 s).
    pub fn start<S: AsRef<std::ffi::OsStr>>(port: u16, args: &[S]) -> Self {
        let child = Command::new(host_harness_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let served = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{}/", served.base)).call().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "serve on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// `serve` on embedded defaults: the reference flows, data in `data`, the
    /// email stage built for this test profile; `extra` arguments after those.
    pub fn on_defaults(port: u16, data: &Path, extra: &[&str]) -> Self {
        let plugin = plugin_path("email-stage-plugin");
        let mut args = vec![
            std::ffi::OsStr::new("--data"),
            data.as_os_str(),
            std::ffi::OsStr::new("--plugin"),
            plugin.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        Self::start(port, &args)
    }

    /// `serve --config <config>`.
    pub fn with_config(config: &Path, port: u16) -> Self {
        Self::start(
            port,
            &[std::ffi::OsStr::new("--config"), config.as_os_str()],
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A test message with this Message-ID (`<{id}@test>`) to `to`, on the global route.
pub fn test_mail(id: &str, to: &str) -> host_harness::mail::QueuedMail {
    use email_stage_plugin::compose;
    let message_id = format!("<{id}@test>");
    let c = compose::compose(
        compose::recipient("", "sender@id.example.test").expect("from"),
        compose::recipient("", to).expect("to"),
        "outbox test",
        &message_id,
        format!("<p>message {id}</p>"),
        Some(format!("message {id}")),
    )
    .expect("compose");
    host_harness::mail::QueuedMail {
        message_id,
        envelope_from: c.envelope_from,
        envelope_to: vec![c.envelope_to],
        to_display: vec![c.to_display],
        subject: "outbox test".into(),
        raw: c.raw,
        route: host_harness::mail::RouteRef::Global,
        decoy: false,
        locale: String::new(),
    }
}

fn python_with_aiosmtpd() -> Option<String> {
    let mut candidates = vec![];
    if let Ok(p) = std::env::var("SMTP_SINK_PYTHON") {
        candidates.push(p);
    }
    candidates.extend(["/usr/bin/python3".to_string(), "python3".to_string()]);
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl SmtpSink {
    /// Starts the sink. `None` (with the reason printed) when aiosmtpd is missing
    /// outside CI; under `CI=true` a missing sink fails the test.
    pub fn start() -> Option<Self> {
        Self::start_with(None, &[])
    }

    /// Starts the sink on `port` (a free one when `None`) with extra options of
    /// `smtp_sink.py` (`--fail-first`, `--reject-rcpt`, TLS, AUTH).
    pub fn start_with(port: Option<u16>, options: &[&str]) -> Option<Self> {
        let Some(py) = python_with_aiosmtpd() else {
            let msg = "SMTP sink unavailable: no python3 with aiosmtpd (apt-get install python3-aiosmtpd, or set SMTP_SINK_PYTHON)";
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{msg}; CI=true requires it");
            }
            eprintln!("skipped: {msg}");
            return None;
        };
        let port = port.unwrap_or_else(free_port);
        let maildir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(["--port", &port.to_string(), "--maildir"])
            // A folder that does not exist yet: Python's Maildir creates its layout only then.
            .arg(maildir.path().join("Maildir"))
            .args(options)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start smtp sink");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("sink stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sink ready line");
        assert!(line.starts_with("ready"), "sink did not start: {line:?}");
        Some(Self {
            child,
            port,
            maildir,
        })
    }

    /// Messages received so far, waiting up to `timeout` for at least `n`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = maildir::read_all(self.maildir.path());
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A self-signed certificate for `localhost`, written as PEM files.
pub struct TestCert {
    /// Folder holding the files.
    pub dir: tempfile::TempDir,
    /// Certificate file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
}

/// Generates a fresh self-signed certificate for `localhost`.
pub fn self_signed_localhost() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    TestCert { dir, cert, key }
}

/// The reference flows served over HTTP on a free loopback port, with the email
/// plugin in `mode`; links in mails point at this server.
pub struct TestServer {
    /// The running server (its state holds the executor).
    pub server: host_harness::http::RunningServer,
    /// The host clock.
    pub clock: Arc<ManualClock>,
    /// The store.
    pub store: Arc<dyn HostStore>,
    /// Where mail lands.
    pub mail_dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server; `edit` may change the configuration.
    pub fn start(mode: Mode, edit: impl FnOnce(&mut HostConfig)) -> Self {
        Self::start_with(mode, edit, host_harness::http::HttpSettings::default())
    }

    /// Like [`TestServer::start`] with these HTTP settings.
    pub fn start_with(
        mode: Mode,
        edit: impl FnOnce(&mut HostConfig),
        settings: host_harness::http::HttpSettings,
    ) -> Self {
        Self::start_custom(mode, edit, settings, Setup::default())
    }

    /// Like [`TestServer::start_with`] on `setup`.
    pub fn start_custom(
        mode: Mode,
        edit: impl FnOnce(&mut HostConfig),
        settings: host_harness::http::HttpSettings,
        setup: Setup,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = host_setup(vec![email_plugin(mode)], setup, |cfg| {
            cfg.base_url = format!("http://{addr}");
            edit(cfg);
        });
        let TestHost {
            ex,
            clock,
            store,
            mail_dir,
            ..
        } = h;
        let state = host_harness::http::AppState::with_settings(ex, settings);
        let server = host_harness::http::RunningServer::start(listener, state).expect("serve");
        Self {
            server,
            clock,
            store,
            mail_dir,
        }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// Mails delivered so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        assert!(self
            .server
            .state
            .executor
            .mail
            .wait_idle(Duration::from_secs(20)));
        maildir::read_all(self.mail_dir.path())
    }
}

/// PostgreSQL for the tests (`TEST_POSTGRES_URL`, default the local server's `test`
/// database). `None`, with the reason printed, when it is unreachable outside CI;
/// under `CI=true` an unreachable server fails the test.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    reachable(&url, "127.0.0.1:5432", "PostgreSQL")
}

/// Redis for the tests (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`); as
/// [`postgres_url`].
pub fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    reachable(&url, "127.0.0.1:6379", "Redis")
}

fn reachable(url: &str, default_addr: &str, what: &str) -> Option<String> {
    let addr = url
        .rsplit_once('@')
        .map(|(_, r)| r)
        .unwrap_or_else(|| url.split_once("://").map_or(url, |(_, r)| r))
        .split('/')
        .next()
        .filter(|a| a.contains(':'))
        .unwrap_or(default_addr)
        .to_string();
    let ok = addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    if ok {
        return Some(url.to_string());
    }
    let msg = format!("{what} unreachable at {addr}");
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}; CI=true requires it");
    }
    eprintln!("skipped: {msg}");
    None
}

/// A benchmark's iteration count: `n`, or a hundredth of it (at least 10) when
/// `BENCH_QUICK` is set, as CI does to keep every benchmark running without
/// measuring anything.
pub fn bench_count(n: usize) -> usize {
    if std::env::var_os("BENCH_QUICK").is_some() {
        (n / 100).max(10)
    } else {
        n
    }
}

/// A fresh, unique name for a PostgreSQL schema or a Redis namespace.
pub fn unique_name(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("randomness");
    format!(
        "{prefix}_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// A private `redis-server` on a free loopback port (for tests that stop it, or
/// that need a password). `None`, with the reason printed, when `redis-server` is
/// not installed outside CI; under `CI=true` that fails the test.
pub struct RedisServer {
    child: Child,
    /// Its port.
    pub port: u16,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts one with these extra arguments (e.g. `--requirepass x`).
    pub fn start(extra: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let msg = "redis-server is not installed";
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{msg}; CI=true requires it");
            }
            eprintln!("skipped: {msg}");
            return None;
        }
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Self::spawn(&args, port);
        Some(Self { child, port, args })
    }

    fn spawn(args: &[String], port: u16) -> Child {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Kills it (the data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(&self.args, self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy on a free loopback port to `target`, that a test can cut (every
/// connection reset, new ones refused) and restore: a network or server outage as
/// the host sees it, without stopping a server other tests share.
pub struct TcpProxy {
    /// Port to connect to instead of the target's.
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (up2, open2, target) = (up.clone(), open.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                // Checked and registered under the lock `cut` takes, so a connection
                // accepted while the proxy is cut is either refused or reset by it.
                let mut open = open2.lock().unwrap_or_else(|p| p.into_inner());
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        open.push(c);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { port, up, open }
    }

    /// Resets every connection and refuses new ones.
    pub fn cut(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in open.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The cache goes away in the middle of a recovery flow and comes back: while it
/// is down, "Send Email again." is a flow error with a `system_exception` event
/// naming the cache; once it is back the same flow sends, and both mails reach
/// `mail_dir`. `set_up(false)` stops the cache server (Redis, or a proxy in front of
/// PostgreSQL), `set_up(true)` brings it back. Creates the user `jane` it recovers.
pub fn cache_outage_then_recovery(ex: &Executor, mail_dir: &Path, mut set_up: impl FnMut(bool)) {
    use host_harness::flow::client::FlowClient;
    use serde_json::json;
    ex.store
        .create_user(&host_harness::storage::NewUser {
            username: "jane".into(),
            email: "jane@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let mut c = FlowClient::open(ex, "recover", "");
    c.get();
    let v = c.post(json!({"uid_field": "jane"}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");

    set_up(false);
    let v = c.post(json!({"component": "ak-stage-email"}));
    assert_eq!(
        v["component"], "ak-stage-flow-error",
        "while the cache is down: {v}"
    );
    let ev = ex.store.events(Some("system_exception")).unwrap();
    let last = ev.last().map(|e| e.context["error"].to_string());
    assert!(last.is_some_and(|e| e.contains("cache")), "{ev:?}");

    set_up(true);
    let v = c.post(json!({"component": "ak-stage-email"}));
    assert_eq!(
        v["messages"][0]["message"], "Email Successfully sent.",
        "recovered: {v}"
    );
    assert!(ex.mail.wait_idle(Duration::from_secs(20)));
    assert_eq!(maildir::read_all(mail_dir).len(), 2, "no queued mail lost");
}
