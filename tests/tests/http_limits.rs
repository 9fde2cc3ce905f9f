//! Connection limits of the served host: clients that open connections and send
//! nothing, half a request head, a body that never comes, or that hold thousands of
//! idle connections, cannot keep the server from answering anyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{free_port, host_harness_bin, plugin_path, Mode, TestServer};
use host_harness::http::{HttpSettings, ServerLimits};

fn short_limits() -> HttpSettings {
    HttpSettings {
        server: ServerLimits {
            header_read_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Reads until the server closes the connection; how long that took, or `None` if
/// it was still open after `within`. Whatever was read goes to `got`.
fn closed_within(stream: &mut TcpStream, within: Duration, got: &mut Vec<u8>) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn silent_and_half_sent_connections_are_closed() {
    let s = TestServer::start_with(Mode::Rlib, |_| {}, short_limits());
    let mut silent = TcpStream::connect(s.server.addr).unwrap();
    let mut half = TcpStream::connect(s.server.addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut got = Vec::new();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10), &mut got).is_some(),
        "a connection that sends nothing stays open"
    );
    assert!(
        closed_within(&mut half, Duration::from_secs(10), &mut got).is_some(),
        "a connection that sends half a request head stays open"
    );
}

#[test]
fn kept_alive_connections_are_closed_when_idle() {
    let s = TestServer::start_with(Mode::Rlib, |_| {}, short_limits());
    let mut c = TcpStream::connect(s.server.addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let closed = closed_within(&mut c, Duration::from_secs(10), &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed.is_some(), "an idle kept-alive connection stays open");
}

#[test]
fn a_body_that_never_comes_is_answered_and_closed() {
    let s = TestServer::start_with(Mode::Rlib, |_| {}, short_limits());
    let path = host_harness::flow::executor_url("recover", "");
    // A declared length far over the limit is refused at once.
    let mut huge = TcpStream::connect(s.server.addr).unwrap();
    write!(
        huge,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{}}"
    )
    .unwrap();
    let mut got = Vec::new();
    let closed = closed_within(&mut huge, Duration::from_secs(10), &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("larger than"), "{text}");
    assert!(closed.is_some());
    // A small body that stops halfway times out.
    let mut slow = TcpStream::connect(s.server.addr).unwrap();
    write!(
        slow,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\""
    )
    .unwrap();
    let mut got = Vec::new();
    let closed = closed_within(&mut slow, Duration::from_secs(10), &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(closed.is_some());
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `host-harness serve` with a file-descriptor limit of 1,024: 1,100 idle
/// connections must not shut out a client that sends a request.
#[test]
fn a_thousand_idle_connections_do_not_shut_out_a_client() {
    // This process needs more than 1,100 descriptors itself.
    host_harness::http::connection_capacity(usize::MAX);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = host_harness_bin();
    let _server = Killed(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 1024 && exec \"$0\" \"$@\"")
            .arg(&bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.path())
            .arg("--plugin")
            .arg(plugin_path("email-stage-plugin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{base}/")).call().is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle: Vec<TcpStream> = (0..1_100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 1_000, "opened {}", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    let client = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let started = Instant::now();
    let resp = client
        .get(&format!("{base}/api/v3/flows/executor/recover/?query="))
        .call();
    assert!(
        matches!(&resp, Ok(r) if r.status() == 200),
        "a normal client was shut out after {:?}: {resp:?}",
        started.elapsed()
    );
    eprintln!(
        "{} idle connections open; a normal client answered in {:?}",
        idle.len(),
        started.elapsed()
    );
    drop(idle);
}
