//! The host's command line against a running server: users created with
//! `host-harness users` are seen at once by `host-harness serve`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{free_port, host_harness_bin, plugin_path, Served};
use host_harness::mail::maildir;
use host_harness::storage::Store;

#[test]
fn users_created_on_the_command_line_are_used_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = format!("sqlite://{}", data.join("host.db").display());
    let port = free_port();
    let bin = host_harness_bin();
    let server = Served::on_defaults(port, &data, &[]);
    let agent = ureq::AgentBuilder::new().build();

    let mut create = Command::new(&bin)
        .args([
            "users",
            "--database",
            &db,
            "create",
            "ops",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"initial secret\n")
        .unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(out.status.success());
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["username"], "ops");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"));

    let list = Command::new(&bin)
        .args(["users", "--database", &db, "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);
    let missing = Command::new(&bin)
        .args(["users", "--database", &db, "show", "nobody"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user 'nobody'"));
    let bad = Command::new(&bin)
        .args([
            "users",
            "--database",
            &db,
            "create",
            "x",
            "--email",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // The running server finds the new user: recovery mails it.
    let api = format!("{}/api/v3/flows/executor/recover/?query=", server.base);
    agent.get(&api).call().unwrap();
    let v: serde_json::Value = agent
        .post(&api)
        .send_json(serde_json::json!({"uid_field": "ops"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mails = maildir::read_all(&data.join("mail"));
        if let Some(m) = mails.first() {
            assert_eq!(m.to, "Ops <ops@example.com>");
            break;
        }
        assert!(Instant::now() < deadline, "no mail for the new user");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A configuration in `dir` loading the email plugin, with `extra` lines at the top.
/// `host-harness [extra…] check <cfg>`, which must succeed; its standard error.
fn check_ok(extra: &[&str], cfg: &std::path::Path) -> String {
    let out = Command::new(host_harness_bin())
        .args(extra)
        .arg("check")
        .arg(cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// `inspect` prints the digest to pin; `check` warns about an unpinned plugin,
/// passes the pinned build, and refuses it once the file changed, naming both
/// digests, before loading it.
#[test]
fn a_pinned_plugin_whose_file_changed_is_refused_with_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir
        .path()
        .join(plugin_path("email-stage-plugin").file_name().unwrap());
    std::fs::copy(plugin_path("email-stage-plugin"), &lib).unwrap();
    let out = Command::new(host_harness_bin())
        .arg("inspect")
        .arg(&lib)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = shown["sha256"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);

    let flows = include_str!("../../host-harness/flows.toml");
    let cfg = dir.path().join("host.toml");
    let write = |pin: &str| {
        let text = format!(
            "[[plugins]]\npath = \"{}\"\n{pin}\n\n{flows}",
            lib.display()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    write("");
    assert!(check_ok(&[], &cfg).contains("is not pinned"));
    write(&format!("sha256 = \"{digest}\""));
    assert!(!check_ok(&[], &cfg).contains("is not pinned"));

    // The file changes (one byte appended: still a loadable library).
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.push(0);
    std::fs::write(&lib, &bytes).unwrap();
    let out = Command::new(host_harness_bin())
        .arg("check")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not the pinned build"), "{stderr}");
    assert!(stderr.contains(&digest), "{stderr}");
    let now = host_harness::config::pin::sha256_file(&lib).unwrap();
    assert!(stderr.contains(&now), "{stderr}");
}

/// `check` refuses a stage configuration that breaks the schema the plugin
/// library declares, naming the stage and the JSON path; `inspect --schema` prints
/// that schema.
#[test]
fn a_copy_of_the_flows_without_a_plugin_is_told_how_to_load_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("host.toml");
    std::fs::write(&cfg, include_str!("../../host-harness/flows.toml")).unwrap();
    let out = Command::new(host_harness_bin())
        .arg("check")
        .arg(&cfg)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("kind 'email'") && stderr.contains("no plugin is loaded"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[[plugins]] path = "),
        "says how to load one: {stderr}"
    );
}

#[test]
fn a_stage_config_against_its_schema_is_refused_by_check_with_stage_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let bad = text.replacen(
        "config = { use_global_settings = true, template",
        "config = { use_global_settings = true, token_length = \"60\", template",
        1,
    );
    assert_ne!(bad, text, "flows.toml has the email stage this test edits");
    std::fs::write(&cfg, bad).unwrap();
    let out = Command::new(host_harness_bin())
        .arg("check")
        .arg(&cfg)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("stage 'enroll-verify-email': configuration at $.token_length: value is not of type \"integer\""),
        "{stderr}"
    );

    let out = Command::new(host_harness_bin())
        .args(["inspect", "--schema"])
        .arg(plugin_path("email-stage-plugin"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let schemas: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let email = &schemas["email"];
    assert_eq!(email["properties"]["token_length"]["type"], "integer");
    assert_eq!(email["additionalProperties"], false);
}

fn config_in(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let flows = include_str!("../../host-harness/flows.toml");
    let path = dir.join("host.toml");
    let text = format!(
        "{extra}\n[[plugins]]\npath = \"{}\"\n\n{flows}",
        plugin_path("email-stage-plugin").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_opens_nothing_creates_nothing_and_sends_nothing() {
    let Some(sink) = e2e_tests::SmtpSink::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Mail queued by an earlier run waits in the outbox.
    let queued = dir.path().join("queued.db");
    {
        use host_harness::storage::OutboxStore;
        let store = host_harness::storage::SqliteStore::open(&queued).unwrap();
        assert!(store
            .outbox_push(
                &e2e_tests::test_mail("waiting", "someone@example.com"),
                0,
                0
            )
            .unwrap());
    }
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    for (folder, db) in [
        (&fresh, "sqlite://host.db".to_string()),
        (
            &dir.path().to_path_buf(),
            format!("sqlite://{}", queued.display()),
        ),
    ] {
        let cfg = config_in(
            folder,
            &format!(
                "database = \"{db}\"\n[mail]\nfrom = \"id@example.test\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
                sink.port
            ),
        );
        check_ok(&[], &cfg);
    }
    let left: Vec<_> = std::fs::read_dir(&fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["host.toml"], "check created files");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sink.wait_for(1, Duration::from_millis(10)).is_empty(),
        "check delivered mail"
    );
    use host_harness::storage::OutboxStore;
    let store = host_harness::storage::SqliteStore::open(&queued).unwrap();
    assert_eq!(store.outbox_counts().unwrap().pending, 1);
}

fn serve(cfg: &std::path::Path, port: u16) -> Served {
    Served::with_config(cfg, port)
}

#[test]
fn a_configuration_without_database_keeps_users_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config_in(
        dir.path(),
        &format!("base_url = \"http://127.0.0.1:{port}\"\n[mail]\nmaildir = \"mail\"\n"),
    );
    let api = format!("http://127.0.0.1:{port}/api/v3/flows/executor/");
    {
        let _server = serve(&cfg, port);
        let a = ureq::AgentBuilder::new().build();
        let v: serde_json::Value = a
            .post(&format!("{api}enroll/?query="))
            .send_json(serde_json::json!({
                "username": "kept", "name": "Kept", "email": "kept@example.com",
                "password": "pw 123456", "password_repeat": "pw 123456",
            }))
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(v["component"], "ak-stage-email", "{v}");
    }
    assert!(
        dir.path().join("host.db").exists(),
        "the SQLite file beside the configuration"
    );
    let _server = serve(&cfg, port);
    let a = ureq::AgentBuilder::new().build();
    let v: serde_json::Value = a
        .post(&format!("{api}recover/?query="))
        .send_json(serde_json::json!({"uid_field": "kept"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Enrollment's mail and the recovery mail, both to the user found after restart.
    while maildir::read_all(&dir.path().join("mail")).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no recovery mail for the kept user"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let found = host_harness::storage::SqliteStore::open(&dir.path().join("host.db"))
        .unwrap()
        .find_user("kept")
        .unwrap();
    assert!(found.is_some());
}

/// Container runtimes stop a process with SIGTERM: `serve` stops as gracefully as
/// on Ctrl-C and exits 0 (it used to die of the signal).
#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let mut served = Served::on_defaults(port, &data, &[]);
    let child = &mut served.child;
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// `--log-format json` writes one JSON object per log line, for log shippers; the
/// default stays text.
#[test]
fn log_lines_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    // `database = "memory://"` makes `check` log a warning.
    let cfg = config_in(dir.path(), "database = \"memory://\"\n");
    let json = check_ok(&["--log-format", "json"], &cfg);
    let line = json
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON log line in: {json}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN", "{v}");
    assert_eq!(v["target"], "config", "{v}");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("memory://"),
        "{v}"
    );
    let text = check_ok(&[], &cfg);
    assert!(
        text.contains("WARN") && !text.lines().any(|l| l.starts_with('{')),
        "{text}"
    );
}

/// `serve --metrics-listen` answers `/metrics` and health there; the flow listener
/// has no `/metrics`.
#[test]
fn metrics_are_served_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let (port, monitor) = (free_port(), free_port());
    let data = dir.path().join("data");
    let monitor_addr = format!("127.0.0.1:{monitor}");
    let _served = Served::on_defaults(port, &data, &["--metrics-listen", &monitor_addr]);
    let public = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call();
    assert!(
        matches!(public, Err(ureq::Error::Status(404, _))),
        "{public:?}"
    );
    let text = ureq::get(&format!("http://{monitor_addr}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.contains(
            "host_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1"
        ),
        "{text}"
    );
    let ready = ureq::get(&format!("http://{monitor_addr}/-/health/ready/")).call();
    assert_eq!(ready.unwrap().status(), 200);
}
