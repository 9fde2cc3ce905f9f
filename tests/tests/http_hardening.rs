//! The served host under attack: redirects after a finished flow, session floods,
//! session fixation, logout, cancel with shared sessions, security headers.

use e2e_tests::{Mode, TestServer};
use host_harness::config::HostConfig;
use host_harness::flow::FlowDef;
use host_harness::http::{HttpSettings, SessionLimits};
use host_harness::storage::NewUser;
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(8).build()
}

fn api(s: &TestServer, slug: &str, query: &str) -> String {
    s.url(&host_harness::flow::executor_url(slug, query))
}

fn get(a: &ureq::Agent, url: &str) -> Value {
    a.get(url).call().unwrap().into_json().unwrap()
}

fn post(a: &ureq::Agent, url: &str, body: Value) -> Value {
    a.post(url).send_json(body).unwrap().into_json().unwrap()
}

fn cookie(a: &ureq::Agent, name: &str) -> Option<String> {
    a.cookie_store()
        .get("127.0.0.1", "/", name)
        .map(|c| c.value().to_string())
}

/// A flow whose only stage needs no input: it finishes on the first GET.
fn with_finish_flow(cfg: &mut HostConfig) {
    cfg.flows.push(FlowDef {
        brand: None,
        slug: "finish".into(),
        title: "Finish".into(),
        designation: "authentication".into(),
        stages: vec!["email-change-override".into()],
    });
}

fn finish_with_next(s: &TestServer, next: &str) -> Value {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    get(&agent(), &api(s, "finish", &q))
}

#[test]
fn next_must_resolve_to_this_host() {
    let s = TestServer::start(Mode::Cdylib, with_finish_flow);
    let own = s.url("/app?x=1#top");
    let accepted = [
        ("/home", "/home"),
        ("/a/b?c=d#e", "/a/b?c=d#e"),
        (own.as_str(), "/app?x=1#top"),
    ];
    for (next, to) in accepted {
        let v = finish_with_next(&s, next);
        assert_eq!(v["component"], "xak-flow-redirect", "{next}: {v}");
        assert_eq!(v["to"], to, "{next}");
        assert!(v.get("messages").is_none(), "{next}: {v}");
    }
    let refused = [
        "/\t/evil.test/phish",
        "/\n/evil.test/phish",
        "/\r/evil.test/phish",
        "/ /evil.test",
        "/\\evil.test",
        "\\/evil.test",
        "//evil.test/phish",
        "/.//evil.test/phish",
        "https://evil.test/phish",
        "http://127.0.0.1.evil.test/",
        "javascript:alert(1)",
        "/app\u{0}",
    ];
    for next in refused {
        let v = finish_with_next(&s, next);
        assert_eq!(v["to"], "/", "{next:?} must not be followed: {v}");
        assert_eq!(v["messages"][0]["message"], "Invalid next URL", "{next:?}");
    }
}

#[test]
fn every_response_carries_the_security_headers() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let a = agent();
    let urls = [
        s.url("/"),
        s.url("/if/flow/recover/"),
        s.url("/static/flow.js"),
        api(&s, "recover", ""),
        s.url("/if/flow/nope/"),
    ];
    for url in urls {
        let resp = match a.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{url}: {e}"),
        };
        let csp = resp.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'"), "{url}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{url}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{url}: {csp}");
        assert_eq!(resp.header("x-frame-options"), Some("DENY"), "{url}");
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"), "{url}");
    }
}

#[test]
fn cookies_are_secure_when_the_base_url_is_https() {
    let s = TestServer::start(Mode::Cdylib, |cfg| {
        cfg.base_url = "https://id.example.test".into();
    });
    // The POST's own answer (a 302 to the next stage) sets the cookies.
    let resp = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .post(&api(&s, "recover", ""))
        .send_json(json!({"uid_field": "someone@example.com"}))
        .unwrap();
    let cookies = resp.all("set-cookie");
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    assert!(resp.header("strict-transport-security").is_some());
}

#[test]
fn looking_at_a_flow_creates_no_session() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let url = api(&s, "recover", "");
    for _ in 0..1_000 {
        // A fresh client each time: no cookie is ever sent back.
        let resp = ureq::get(&url).call().unwrap();
        assert!(resp.header("set-cookie").is_none());
        let v: Value = resp.into_json().unwrap();
        assert_eq!(v["component"], "ak-stage-identification");
    }
    assert_eq!(s.server.state.session_count(), 0);
    // State to keep makes a session.
    let a = agent();
    post(&a, &url, json!({"uid_field": "someone@example.com"}));
    assert_eq!(s.server.state.session_count(), 1);
    assert!(cookie(&a, "ih_session").is_some());
}

fn create_user(s: &TestServer, username: &str, email: &str) {
    s.store
        .create_user(&NewUser {
            username: username.into(),
            email: email.into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
}

/// Recovery from the link in the newest mail to `email`, in `a`'s session: confirm,
/// set a password, land signed in.
fn recover_and_sign_in(s: &TestServer, a: &ureq::Agent, email: &str) {
    get(a, &api(s, "recover", ""));
    let v = post(a, &api(s, "recover", ""), json!({"uid_field": email}));
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    let link = s
        .mails()
        .into_iter()
        .rfind(|m| m.to.contains(email))
        .and_then(|m| m.link())
        .expect("a recovery mail");
    let q = link.split_once('?').unwrap().1.to_string();
    let v = get(a, &api(s, "recover", &q));
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    let v = post(a, &api(s, "recover", &q), json!({"token": v["token"]}));
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let v = post(
        a,
        &api(s, "recover", &q),
        json!({"password": "new secret 1", "password_repeat": "new secret 1"}),
    );
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
}

fn agent_with_cookies(session: &str, csrf: &str) -> ureq::Agent {
    let mut jar = cookie_store::CookieStore::default();
    let url = url::Url::parse("http://127.0.0.1/").unwrap();
    for (k, v) in [("ih_session", session), ("ih_csrf", csrf)] {
        jar.insert_raw(&cookie_store::RawCookie::new(k, v), &url)
            .unwrap();
    }
    ureq::AgentBuilder::new()
        .redirects(8)
        .cookie_store(jar)
        .build()
}

#[test]
fn a_planted_session_is_worthless_after_sign_in() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    create_user(&s, "victim", "victim@example.com");
    // The attacker starts a session and plants both cookies in the victim's browser.
    let attacker = agent();
    post(
        &attacker,
        &api(&s, "recover", ""),
        json!({"uid_field": "nobody@example.com"}),
    );
    attacker.get(&s.url("/flows/-/cancel/")).call().unwrap();
    let planted = cookie(&attacker, "ih_session").unwrap();
    let planted_csrf = cookie(&attacker, "ih_csrf").unwrap();
    let victim = agent_with_cookies(&planted, &planted_csrf);
    recover_and_sign_in(&s, &victim, "victim@example.com");
    let now = cookie(&victim, "ih_session").unwrap();
    assert_ne!(now, planted, "the session id changed at sign-in");
    assert_ne!(cookie(&victim, "ih_csrf").unwrap(), planted_csrf);

    // The attacker, with the planted cookies, is nobody: changing the email runs as
    // an anonymous session (no CSRF check) and finds no pending user.
    let replay = agent_with_cookies(&planted, &planted_csrf);
    let v: Value = replay
        .post(&api(&s, "email-change", ""))
        .set("X-CSRFToken", &planted_csrf)
        .send_json(json!({"email": "attacker@evil.test"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    let u = s.store.find_user("victim").unwrap().unwrap();
    assert_eq!(u.email, "victim@example.com");

    // The victim is signed in under the new id: a POST needs the new CSRF token.
    match victim
        .post(&api(&s, "email-change", ""))
        .send_json(json!({"email": "x@example.com"}))
    {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("expected 403, got {other:?}"),
    }
}

#[test]
fn logout_needs_the_csrf_token_and_ends_the_session() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    create_user(&s, "leaving", "leaving@example.com");
    let a = agent();
    recover_and_sign_in(&s, &a, "leaving@example.com");
    let logout = s.url("/flows/-/logout/");
    match a.post(&logout).send_bytes(b"") {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("expected 403 without the CSRF token, got {other:?}"),
    }
    let token = cookie(&a, "ih_csrf").unwrap();
    let old = cookie(&a, "ih_session").unwrap();
    let resp = a
        .post(&logout)
        .set("X-CSRFToken", &token)
        .send_bytes(b"")
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp
        .all("set-cookie")
        .iter()
        .any(|c| c.starts_with("ih_session=;") && c.contains("Max-Age=0")));
    // The old cookie no longer names a signed-in session.
    let replay = agent_with_cookies(&old, &token);
    let v: Value = replay
        .post(&api(&s, "email-change", ""))
        .send_json(json!({"email": "x@example.com"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
}

#[test]
fn at_the_cap_anonymous_sessions_go_before_signed_in_ones() {
    let settings = HttpSettings {
        sessions: SessionLimits {
            max_sessions: 50,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(Mode::Cdylib, |_| {}, settings);
    create_user(&s, "member", "member@example.com");
    let member = agent();
    recover_and_sign_in(&s, &member, "member@example.com");
    // Fill the table with anonymous sessions, several times over.
    for i in 0..200 {
        let a = agent();
        post(
            &a,
            &api(&s, "recover", ""),
            json!({"uid_field": format!("flood{i}@example.com")}),
        );
    }
    assert!(s.server.state.session_count() <= 50);
    // Still signed in: a POST without the CSRF token is refused, one with it passes.
    match member
        .post(&api(&s, "email-change", ""))
        .send_json(json!({"email": "m2@example.com"}))
    {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("the member was signed out: {other:?}"),
    }
}

#[test]
fn sessions_expire_when_idle() {
    let settings = HttpSettings {
        sessions: SessionLimits {
            idle_ms: 10 * 60_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(Mode::Cdylib, |_| {}, settings);
    let a = agent();
    get(&a, &api(&s, "recover", ""));
    let v = post(
        &a,
        &api(&s, "recover", ""),
        json!({"uid_field": "x@example.com"}),
    );
    assert_eq!(v["component"], "ak-stage-email");
    s.clock.advance(9 * 60_000);
    assert_eq!(
        get(&a, &api(&s, "recover", ""))["component"],
        "ak-stage-email"
    );
    s.clock.advance(11 * 60_000);
    assert_eq!(
        get(&a, &api(&s, "recover", ""))["component"],
        "ak-stage-identification",
        "an idle session is gone"
    );
}

#[test]
fn cancel_works_with_shared_sessions() {
    let settings = HttpSettings {
        shared_sessions: true,
        ..Default::default()
    };
    let s = TestServer::start_with(Mode::Cdylib, |_| {}, settings);
    let a = agent();
    get(&a, &api(&s, "recover", ""));
    let v = post(
        &a,
        &api(&s, "recover", ""),
        json!({"uid_field": "c@example.com"}),
    );
    assert_eq!(v["component"], "ak-stage-email");
    let resp = ureq::AgentBuilder::new().redirects(0).build();
    let session = cookie(&a, "ih_session").unwrap();
    let r = resp
        .get(&s.url("/flows/-/cancel/"))
        .set("Cookie", &format!("ih_session={session}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        get(&a, &api(&s, "recover", ""))["component"],
        "ak-stage-identification",
        "the cancelled plan is not read back from the store"
    );
}

/// Sends a GET on a kept-alive connection and reads the whole answer; its head.
fn raw_get(c: &mut std::io::BufReader<std::net::TcpStream>, path: &str) -> String {
    use std::io::{BufRead, Read, Write};
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    c.get_mut().write_all(request.as_bytes()).unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    head
}

fn median_micros(a: &ureq::Agent, url: &str, n: usize) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let start = std::time::Instant::now();
            a.get(url).call().unwrap();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// 100,000 cookie-less requests: no session is created, the signed-in one stays,
/// and its requests are as fast as before (median within 2×, plus 1 ms for a noisy
/// shared machine; before, the table filled and every lookup slowed 100×).
#[test]
fn a_flood_of_cookie_less_requests_leaves_signed_in_sessions_alone() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    create_user(&s, "steady", "steady@example.com");
    let member = agent();
    recover_and_sign_in(&s, &member, "steady@example.com");
    let url = api(&s, "email-change", "");
    let before = median_micros(&member, &url, 300);
    let path = host_harness::flow::executor_url("recover", "");
    let addr = s.server.addr;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                // One kept-alive connection that never sends a cookie back.
                let stream = std::net::TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut c = std::io::BufReader::new(stream);
                for _ in 0..12_500 {
                    let head = raw_get(&mut c, &path);
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        s.server.state.session_count(),
        1,
        "only the member's session"
    );
    let after = median_micros(&member, &url, 300);
    eprintln!("signed-in GET median: {before:.0} µs before, {after:.0} µs after 100k cookie-less requests");
    assert!(
        after <= 2.0 * before + 1_000.0,
        "{before:.0} µs before, {after:.0} µs after"
    );
    match member
        .post(&url)
        .send_json(json!({"email": "x@example.com"}))
    {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("the member is no longer signed in: {other:?}"),
    }
}
