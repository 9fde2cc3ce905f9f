//! The host's command line against a running server: users created with
//! `host-harness users` are seen at once by `host-harness serve`.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{free_port, host_harness_bin, plugin_path};
use host_harness::maildir;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn users_created_on_the_command_line_are_used_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = format!("sqlite://{}", data.join("host.db").display());
    let port = free_port();
    let bin = host_harness_bin();
    let _server = Killed(
        Command::new(&bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(&data)
            .arg("--plugin")
            .arg(plugin_path("email-stage-plugin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new().build();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("{base}/")).call().is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

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
    let api = format!("{base}/api/v3/flows/executor/recover/?query=");
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
