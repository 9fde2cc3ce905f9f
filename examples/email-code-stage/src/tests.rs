//! The stage through the kit's test driver and the conformance battery.

use plugin_api::testing::conformance::check_stage_kind;
use plugin_api::testing::{FakeFlow, FakeHost};
use plugin_api::{Host, Outcome, Plugin, Stage, User};
use serde_json::{json, Value};

use crate::stage::{MSG_EXPIRED, MSG_LOCKED, MSG_SENT, MSG_TOO_MANY_CODES, MSG_WRONG};
use crate::EmailCodePlugin;

fn stage(config: Value) -> Box<dyn Stage> {
    EmailCodePlugin
        .new_stage("email-code", "code", &config.to_string())
        .unwrap()
}

fn jo() -> User {
    User {
        id: Some("1".into()),
        username: "jo".into(),
        email: "jo@example.com".into(),
        is_active: true,
        ..Default::default()
    }
}

/// The code in the last mail's text.
fn mailed_code(host: &FakeHost) -> String {
    let raw = String::from_utf8(host.mails().last().unwrap().raw.clone()).unwrap();
    let at = raw.find("code is ").unwrap() + "code is ".len();
    raw[at..at + 6].to_string()
}

fn error_of(o: &Outcome, field: &str) -> String {
    let Outcome::Challenge(v) = o else {
        panic!("{o:?}")
    };
    v["response_errors"][field][0]["string"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_mailed_code_signs_in_once_and_a_reload_mails_nothing() {
    let (s, host) = (stage(json!({})), FakeHost::new());
    let mut flow = FakeFlow::new(&*s, &host).pending_user(&jo());
    let Outcome::Challenge(page) = flow.get().unwrap() else {
        panic!()
    };
    assert_eq!(page["component"], "xak-form");
    flow.get().unwrap();
    assert_eq!(host.mails().len(), 1, "a reload does not mail again");
    let code = mailed_code(&host);
    let kept = host.flow_state_get("code").unwrap().unwrap();
    assert!(!kept.contains(&code), "only the hash is kept: {kept}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        error_of(&flow.post(json!({"code": wrong})).unwrap(), "code"),
        MSG_WRONG
    );
    assert_eq!(flow.post(json!({"code": code})).unwrap(), Outcome::StageOk);
    assert_eq!(host.flow_state_get("code").unwrap(), None, "spent");
}

#[test]
fn codes_expire_and_wrong_ones_are_limited() {
    let (s, host) = (
        stage(json!({"valid_minutes": 2, "max_wrong": 2})),
        FakeHost::new(),
    );
    let mut flow = FakeFlow::new(&*s, &host).pending_user(&jo());
    flow.get().unwrap();
    host.advance(120_000);
    let code = mailed_code(&host);
    assert_eq!(
        error_of(&flow.post(json!({"code": code})).unwrap(), "code"),
        MSG_EXPIRED
    );
    flow.post(json!({"action": "resend"})).unwrap();
    assert_eq!(
        error_of(&flow.post(json!({"code": "x"})).unwrap(), "code"),
        MSG_WRONG
    );
    let locked = flow.post(json!({"code": "y"})).unwrap();
    assert_eq!(locked, Outcome::StageInvalid(Some(MSG_LOCKED.into())));
}

#[test]
fn codes_per_address_are_limited_per_hour() {
    let (s, host) = (stage(json!({"codes_per_hour": 2})), FakeHost::new());
    let mut flow = FakeFlow::new(&*s, &host).pending_user(&jo());
    flow.get().unwrap();
    flow.post(json!({"action": "resend"})).unwrap();
    assert_eq!(flow.take_messages()[0].message, MSG_SENT);
    let limited = flow.post(json!({"action": "resend"})).unwrap();
    assert_eq!(error_of(&limited, "non_field_errors"), MSG_TOO_MANY_CODES);
    assert_eq!(host.mails().len(), 2);
    host.advance(3_600_000);
    flow.post(json!({"action": "resend"})).unwrap();
    assert_eq!(host.mails().len(), 3, "the hour slid");
}

#[test]
fn an_unknown_user_gets_the_same_page_and_a_decoy() {
    let placeholder = User {
        id: None,
        username: "nobody@example.com".into(),
        email: "nobody@example.com".into(),
        ..Default::default()
    };
    let run = |user: &User| {
        let (s, host) = (stage(json!({})), FakeHost::new());
        let mut flow = FakeFlow::new(&*s, &host).pending_user(user);
        let page = flow.get().unwrap();
        let after = flow.post(json!({"code": "123456"})).unwrap();
        (page, error_of(&after, "code"), host.mails()[0].decoy)
    };
    let (known_page, _, known_decoy) = run(&jo());
    let (unknown_page, unknown_error, unknown_decoy) = run(&placeholder);
    assert_eq!(known_page, unknown_page);
    assert_eq!(unknown_error, MSG_WRONG);
    assert!(!known_decoy && unknown_decoy);
}

#[test]
fn passes_the_conformance_battery() {
    let report = check_stage_kind(&EmailCodePlugin, "email-code", &json!({}));
    assert!(report.iter().all(|p| p.passed), "{report:#?}");
}
