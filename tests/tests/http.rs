//! The flow executor over HTTP, spoken exactly as the flow page speaks it: a client
//! that keeps cookies, passes the page's query as `query`, and follows 302s.

use e2e_tests::{Mode, TestServer};
use serde_json::{json, Value};

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(8).build()
}

/// The executor URL for a flow page opened with `query` (as the page builds it).
fn api(s: &TestServer, slug: &str, query: &str) -> String {
    s.url(&host_harness::flow::executor_url(slug, query))
}

fn get(a: &ureq::Agent, url: &str) -> Value {
    a.get(url).call().unwrap().into_json().unwrap()
}

fn post(a: &ureq::Agent, url: &str, body: Value) -> Value {
    a.post(url).send_json(body).unwrap().into_json().unwrap()
}

fn csrf(a: &ureq::Agent) -> String {
    a.cookie_store()
        .get("127.0.0.1", "/", "ih_csrf")
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

fn link_query(link: &str) -> String {
    link.split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default()
}

#[test]
fn enrollment_over_http_with_cookies_redirects_and_a_confirmed_link() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let a = agent();
    let page = a.get(&s.url("/if/flow/enroll/")).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.into_string().unwrap().contains("/static/flow.js"));
    let resp = a.get(&api(&s, "enroll", "")).call().unwrap();
    assert!(
        resp.header("set-cookie").is_none(),
        "looking at a flow's first stage creates no session"
    );
    let v: Value = resp.into_json().unwrap();
    assert_eq!(v["component"], "ak-stage-prompt");
    // POST → 302 → GET: the client lands on the email stage.
    let v = post(
        &a,
        &api(&s, "enroll", ""),
        json!({"component": "ak-stage-prompt", "username": "web", "name": "Web", "email": "web@example.com", "password": "pw-123456", "password_repeat": "pw-123456"}),
    );
    assert_eq!(v["component"], "ak-stage-email", "{v}");
    // State to keep: now there is a session, in HttpOnly, SameSite=Lax cookies.
    {
        let jar = a.cookie_store();
        let c = jar
            .get("127.0.0.1", "/", "ih_session")
            .expect("a session cookie");
        let text = c.to_string();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax"),
            "{text}"
        );
        assert!(!text.contains("Secure"), "http base URL: no Secure flag");
    }
    let v = post(
        &a,
        &api(&s, "enroll", ""),
        json!({"component": "ak-stage-email"}),
    );
    assert_eq!(
        v["response_errors"]["non_field_errors"][0]["code"],
        "email-sent"
    );
    assert_eq!(v["messages"][0]["message"], "Email Successfully sent.");
    assert!(
        get(&a, &api(&s, "enroll", "")).get("messages").is_none(),
        "messages are delivered once"
    );

    let link = s.mails()[0].link().unwrap();
    assert!(
        link.starts_with(&s.url("/if/flow/enroll/?flow_token=")),
        "{link}"
    );
    // Another browser opens the link.
    let b = agent();
    assert_eq!(b.get(&link).call().unwrap().status(), 200);
    let q = link_query(&link);
    let v = get(&b, &api(&s, "enroll", &q));
    assert_eq!(v["component"], "ak-stage-consent");
    let v = post(
        &b,
        &api(&s, "enroll", &q),
        json!({"component": "ak-stage-consent", "token": v["token"]}),
    );
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    assert!(s.store.find_user("web").unwrap().unwrap().is_active);

    // B is signed in now: POSTs need the CSRF token.
    let v = get(&b, &api(&s, "email-change", ""));
    assert_eq!(v["component"], "ak-stage-prompt");
    let err = b
        .post(&api(&s, "email-change", ""))
        .send_json(json!({"email": "new@example.com"}))
        .unwrap_err();
    match err {
        ureq::Error::Status(403, r) => assert!(r.into_string().unwrap().contains("CSRF")),
        other => panic!("expected 403, got {other:?}"),
    }
    let token = csrf(&b);
    assert_eq!(token.len(), 32);
    let v: Value = b
        .post(&api(&s, "email-change", ""))
        .set("X-CSRFToken", &token)
        .send_json(json!({"email": "new@example.com"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v["component"], "ak-stage-email", "{v}");
}

#[test]
fn unknown_flows_are_404_and_bad_bodies_are_400() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let a = agent();
    for url in [s.url("/if/flow/nope/"), api(&s, "nope", "")] {
        match a.get(&url).call() {
            Err(ureq::Error::Status(404, _)) => {}
            other => panic!("{url}: expected 404, got {other:?}"),
        }
    }
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed JSON"),
        (b"[1, 2]".to_vec(), "must be a JSON object"),
        (vec![b' '; 70 * 1024], "larger than"),
    ];
    for (body, expected) in cases {
        match a
            .post(&api(&s, "recover", ""))
            .set("Content-Type", "application/json")
            .send_bytes(&body)
        {
            Err(ureq::Error::Status(400, r)) => {
                let v: Value = r.into_json().unwrap();
                assert!(v["error"].as_str().unwrap().contains(expected), "{v}");
            }
            other => panic!("expected 400 for {expected}, got {other:?}"),
        }
    }
    // The server still answers normally.
    assert_eq!(
        get(&a, &api(&s, "recover", ""))["component"],
        "ak-stage-identification"
    );
    // An empty POST body counts as `{}`.
    let v = a
        .post(&api(&s, "recover", ""))
        .send_bytes(b"")
        .unwrap()
        .into_json::<Value>()
        .unwrap();
    assert_eq!(
        v["response_errors"]["uid_field"][0]["string"],
        "This field is required."
    );
}

#[test]
fn recovery_for_an_unknown_address_answers_like_a_known_one() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    s.store
        .create_user(&host_harness::storage::NewUser {
            username: "kn".into(),
            email: "known@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let run = |uid: &str| {
        let a = agent();
        get(&a, &api(&s, "recover", ""));
        let v1 = post(&a, &api(&s, "recover", ""), json!({"uid_field": uid}));
        let v2 = post(
            &a,
            &api(&s, "recover", ""),
            json!({"component": "ak-stage-email"}),
        );
        (v1, v2)
    };
    assert_eq!(run("known@example.com"), run("unknown@example.com"));
    assert_eq!(
        s.mails().len(),
        2,
        "only the known address got mail (GET + resend)"
    );
}

#[test]
fn concurrent_requests_of_one_session_share_it() {
    let s = TestServer::start(Mode::Cdylib, |_| {});
    let a = agent();
    get(&a, &api(&s, "recover", ""));
    let v = post(
        &a,
        &api(&s, "recover", ""),
        json!({"uid_field": "someone@example.com"}),
    );
    assert_eq!(v["component"], "ak-stage-email");
    let url = api(&s, "recover", "");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (a, url) = (a.clone(), url.clone());
            std::thread::spawn(move || {
                (0..20).all(|_| get(&a, &url)["component"] == "ak-stage-email")
            })
        })
        .collect();
    for h in handles {
        assert!(
            h.join().unwrap(),
            "every concurrent request saw the same plan"
        );
    }
    assert_eq!(s.server.state.session_count(), 1, "no session was forked");
}

#[test]
fn email_stage_branches_over_http() {
    let s = TestServer::start(Mode::Cdylib, |cfg| {
        e2e_tests::TestHost::edit_stage(cfg, "recovery-email", json!({"recovery_max_attempts": 2}));
    });
    s.store
        .create_user(&host_harness::storage::NewUser {
            username: "br".into(),
            email: "br@example.com".into(),
            is_active: true,
            ..Default::default()
        })
        .unwrap();
    let a = agent();
    get(&a, &api(&s, "recover", "next=%2Fhome"));
    post(
        &a,
        &api(&s, "recover", "next=%2Fhome"),
        json!({"uid_field": "br"}),
    );
    let v = post(
        &a,
        &api(&s, "recover", "next=%2Fhome"),
        json!({"component": "ak-stage-email"}),
    );
    assert_eq!(v["messages"][0]["message"], "Email Successfully sent.");
    let v = post(
        &a,
        &api(&s, "recover", "next=%2Fhome"),
        json!({"component": "ak-stage-email"}),
    );
    assert_eq!(v["messages"][0]["level"], "error");
    assert!(v["messages"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("Too many account verification attempts."));
    assert_eq!(
        v["response_errors"]["non_field_errors"][0]["code"], "email-sent",
        "same JSON when limited"
    );

    let link = s.mails()[1].link().unwrap();
    let q = link_query(&link);
    assert!(q.starts_with("next=%2Fhome&flow_token="), "{q}");
    // Two browsers load the confirmation; a wrong token re-prompts; one confirms.
    let (b, c) = (agent(), agent());
    let tb = get(&b, &api(&s, "recover", &q))["token"].clone();
    get(&c, &api(&s, "recover", &q));
    let v = post(&b, &api(&s, "recover", &q), json!({"token": "wrong"}));
    assert_eq!(v["component"], "ak-stage-consent");
    let tb2 = v["token"].clone();
    assert_ne!(tb, tb2, "a fresh confirmation token each time");
    let v = post(&b, &api(&s, "recover", &q), json!({"token": tb2}));
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    assert_eq!(v["messages"][0]["message"], "Successfully verified Email.");
    // The other browser reloads: the link is used.
    let v = get(&c, &api(&s, "recover", &q));
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(
        v["error_message"],
        "Link was already used, please request a new link."
    );
    // B finishes: new password, signed in, sent to the relative `next`.
    let v = post(
        &b,
        &api(&s, "recover", &q),
        json!({"password": "n3w-secret", "password_repeat": "n3w-secret"}),
    );
    assert_eq!(v["component"], "xak-flow-redirect");
    assert_eq!(v["to"], "/home");
}

#[test]
fn server_timing_is_sent_only_when_configured() {
    let plain = TestServer::start(Mode::Cdylib, |_| {});
    let resp = agent().get(&api(&plain, "enroll", "")).call().unwrap();
    assert_eq!(resp.header("server-timing"), None, "off by default");

    let settings = host_harness::http::HttpSettings {
        server_timing: true,
        ..Default::default()
    };
    let timed = TestServer::start_with(Mode::Cdylib, |_| {}, settings);
    let resp = agent().get(&api(&timed, "enroll", "")).call().unwrap();
    let header = resp
        .header("server-timing")
        .expect("Server-Timing")
        .to_string();
    let ms: f64 = header
        .strip_prefix("app;dur=")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("app;dur=<ms>: {header}"));
    assert!(ms > 0.0 && ms < 60_000.0, "{header}");
}
