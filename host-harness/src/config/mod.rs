//! Host configuration (TOML) and assembly of an [`crate::flow::Executor`] from it:
//! the only module that wires the others together, imported by nothing but the
//! commands (and tests).
//!
//! - [`model`]: the TOML model, defaults and the checks of each section.
//! - [`open`]: the storage and cache backends opened from their URLs.
//! - [`assemble`]: plugins loaded, stages bound, flows checked, the executor built.

pub mod assemble;
pub mod model;
pub mod open;
pub mod pin;

pub use assemble::*;
pub use model::*;
pub use open::*;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use plugin_api::Plugin;

    use super::*;

    #[test]
    fn reference_flows_parse_and_build_with_the_plugin_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = reference_config(
            "memory://",
            "http://localhost:9000",
            None,
            MailConfig {
                maildir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        );
        assert_eq!(cfg.flows.len(), 3);
        let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(email_stage_plugin::EmailStagePlugin)];
        let ex = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap()).unwrap();
        assert!(ex.flow("enroll").is_some());
    }

    #[test]
    fn clear_errors() {
        let mut cfg = reference_config("memory://", "http://x", None, MailConfig::default());
        let plugins: Vec<Arc<dyn Plugin>> = vec![Arc::new(email_stage_plugin::EmailStagePlugin)];
        cfg.stages[0].kind = "nope".into();
        let e = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap())
            .err()
            .unwrap();
        assert!(e.to_string().contains("kind 'nope'"), "{e}");
        let mut cfg = reference_config("memory://", "http://x", None, MailConfig::default());
        let email = cfg.stages.iter_mut().find(|s| s.kind == "email").unwrap();
        email.config = serde_json::json!({"token_expiry": "hours=3,minutes=17"});
        let e = build_executor(&cfg, &plugins, Backends::from_config(&cfg).unwrap())
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("is not in the correct format"),
            "{e}"
        );
        assert!(open_store("mysql://x").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("host=db user=u password=s3cret dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
        assert!(!redact_url("postgres://u:s3cret@[bad").contains("s3cret"));
        assert!(toml::from_str::<HostConfig>("bogus = 1").is_err());
    }
}
