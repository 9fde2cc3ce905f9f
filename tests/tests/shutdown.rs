//! Stopping `serve` with SIGTERM while browsers enrol and mail is queued: every
//! request that took effect got its answer, the process exits 0, and after a
//! restart every message whose stage answered is delivered to the real SMTP sink
//! exactly once. A second signal ends a stop that waits on a stalled request at once.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::{free_port, plugin_path, Served, SmtpSink};
use host_harness::storage::admin::OutboxAdmin;
use host_harness::storage::{OutboxStore, SqliteStore, Store};
use serde_json::{json, Value};

/// What became of one enrollment's two effectful requests (the reference flow:
/// prompt POST → 302; GET runs the user write → 302; GET runs the email stage).
#[derive(Debug, Default, Clone)]
struct Flow {
    username: String,
    /// The GET that ran the user write (it creates the user) was answered.
    user_write_answered: bool,
    /// The email stage's GET answered `ak-stage-email` (it queues the mail).
    mail_stage_answered: bool,
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn wait_exit(served: &mut Served, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = served.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One enrollment as the page runs it, on fresh connections (no keep-alive, so a
/// request is either refused or sent on its own connection).
fn enrol(base: &str, n: usize, flows: &Mutex<Vec<Flow>>) -> bool {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .max_idle_connections(0)
        .timeout(Duration::from_secs(30))
        .build();
    let api = format!("{base}{}", host_harness::flow::executor_url("enroll", ""));
    let mut flow = Flow {
        username: format!("load{n}"),
        ..Default::default()
    };
    let done = (|| {
        agent.get(&api).call().ok()?;
        let body = json!({"component": "ak-stage-prompt", "username": flow.username, "name": "Load",
            "email": format!("{}@example.com", flow.username), "password": "pw-123456", "password_repeat": "pw-123456"});
        let posted = agent.post(&api).send_json(body).ok()?;
        assert_eq!(posted.status(), 302, "the prompt passes");
        let written = agent.get(&api).call();
        flow.user_write_answered = written.is_ok();
        assert_eq!(written.ok()?.status(), 302, "the user write passes");
        let v: Value = agent.get(&api).call().ok()?.into_json().ok()?;
        flow.mail_stage_answered = v["component"] == "ak-stage-email";
        Some(())
    })()
    .is_some();
    flows.lock().unwrap().push(flow);
    done
}

fn config(dir: &std::path::Path, port: u16, smtp: u16) -> std::path::PathBuf {
    let cfg = dir.join("host.toml");
    std::fs::write(
        &cfg,
        format!(
            "base_url = \"http://127.0.0.1:{port}\"\ndatabase = \"sqlite://{}\"\n\
             [mail]\nfrom = \"id@example.test\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\n\n\
             [[plugins]]\npath = \"{}\"\n\n{}",
            dir.join("host.db").display(),
            plugin_path("email-stage-plugin").display(),
            include_str!("../../host-harness/flows.toml"),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn sigterm_under_load_answers_what_it_did_and_loses_no_mail() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, sink.port);
    let mut served = Served::with_config(&cfg, port);
    let base = served.base.clone();

    let flows = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (base, flows, next, finished) =
                (base.clone(), flows.clone(), next.clone(), finished.clone());
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= 400 || !enrol(&base, n, &flows) {
                    return;
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Enrollment hashes a password (Argon2, slow in a debug build): a few flows in,
    // the others are in flight.
    let started = Instant::now();
    while finished.load(Ordering::SeqCst) < 6 {
        let f = flows.lock().unwrap().clone();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load did not get going: {f:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(served.child.id(), "TERM");
    let status = wait_exit(&mut served, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}");
    for w in workers {
        w.join().unwrap();
    }
    drop(served);

    // Nothing took effect without its answer.
    let flows = flows.lock().unwrap().clone();
    let store = SqliteStore::open(&dir.path().join("host.db")).unwrap();
    let queued = store.outbox_entries(None, u64::MAX).unwrap();
    for f in &flows {
        let address = format!("{}@example.com", f.username);
        if store.find_user(&f.username).unwrap().is_some() {
            assert!(f.user_write_answered, "{f:?}: user created, answer lost");
        }
        if queued.iter().any(|e| e.is_to(&address)) {
            assert!(f.mail_stage_answered, "{f:?}: mail queued, answer lost");
        }
    }
    let answered: Vec<_> = flows.iter().filter(|f| f.mail_stage_answered).collect();
    assert!(answered.len() >= 6, "{} answered", answered.len());

    // Restarted, the host delivers what was left; each message once.
    let mut again = Served::with_config(&cfg, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = store.outbox_counts().unwrap();
        if c.pending + c.sending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "outbox not drained: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(again.child.id(), "TERM");
    assert_eq!(
        wait_exit(&mut again, Duration::from_secs(30)).code(),
        Some(0)
    );
    let mails = sink.wait_for(answered.len(), Duration::from_secs(10));
    for f in &answered {
        let address = format!("{}@example.com", f.username);
        let n = mails.iter().filter(|m| m.to.contains(&address)).count();
        assert_eq!(n, 1, "{address} received {n} messages");
    }
}

#[test]
fn a_second_signal_ends_a_stop_that_waits_on_a_stalled_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let mut served = Served::on_defaults(port, &data, &[]);
    // A request whose body never comes: the graceful stop waits for it (up to the
    // body timeout, 10 s).
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let path = host_harness::flow::executor_url("enroll", "");
    write!(
        stalled,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(served.child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the first signal waits for the request in flight"
    );
    signal(served.child.id(), "TERM");
    let status = wait_exit(&mut served, Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "{status:?}");
}
