//! `host-harness check-plugin` through real libraries: the email stage and both
//! examples (terms, email-code) pass every property; the bad fixture (panics on garbage, mails on
//! every reload, logs its link) fails exactly those three.

use std::process::Command;

use e2e_tests::{host_harness_bin, plugin_path};

/// `check-plugin <package's library> <args>`: exit success and stdout.
fn check(package: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(host_harness_bin())
        .arg("check-plugin")
        .arg(plugin_path(package))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run host-harness");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn verdicts(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (verdict, rest) = l.trim().split_once(' ')?;
            let name = rest.split(':').next()?;
            matches!(verdict, "PASS" | "FAIL").then(|| (verdict.into(), name.into()))
        })
        .collect()
}

#[test]
fn the_email_stage_and_both_examples_pass_every_property() {
    for (package, args) in [
        ("email-stage-plugin", vec![]),
        ("email-code-stage", vec![]),
        (
            "terms-stage",
            vec!["--config", r#"{"text": "Be nice.", "version": "v1"}"#],
        ),
    ] {
        let (ok, stdout) = check(package, &args);
        let v = verdicts(&stdout);
        assert_eq!(v.len(), 7, "{package}: {stdout}");
        assert!(
            ok && v.iter().all(|(p, _)| p == "PASS"),
            "{package}: {stdout}"
        );
    }
}

#[test]
fn the_bad_fixture_fails_the_right_properties() {
    let (ok, stdout) = check("bad-stage", &[]);
    assert!(!ok, "{stdout}");
    let failed: Vec<String> = verdicts(&stdout)
        .into_iter()
        .filter(|(p, _)| p == "FAIL")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        failed,
        [
            "garbage_context_is_an_error",
            "repeated_get_mails_at_most_once",
            "no_secret_in_events_or_logs"
        ],
        "{stdout}"
    );
}

#[test]
fn a_configuration_the_kind_refuses_is_one_clear_failure() {
    let (ok, stdout) = check("terms-stage", &[]);
    assert!(!ok);
    let v = verdicts(&stdout);
    assert_eq!(
        v,
        [("FAIL".to_string(), "configuration_accepted".to_string())],
        "{stdout}"
    );
    assert!(stdout.contains("missing field `text`"), "{stdout}");
}
