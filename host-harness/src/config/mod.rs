//! Host configuration (TOML) and assembly of an [`crate::flow::Executor`] from it:
//! the only module that wires the others together, imported by nothing but the
//! commands (and tests).
//!
//! - [`model`]: the TOML model, defaults and the checks of each section.
//! - [`open`]: the storage and cache backends opened from their URLs.
//! - [`assemble`]: plugins loaded, stages bound, flows checked, the executor built.
//! - [`pin`]: plugin libraries checked against their pinned SHA-256.
//! - [`schema`]: stage configurations checked against their kind's JSON Schema.

pub mod assemble;
pub mod model;
pub mod open;
pub mod pin;
pub mod schema;

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

    /// The email plugin, counting the stages it is asked to build.
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Plugin for Counting {
        fn manifest(&self) -> plugin_api::Manifest {
            email_stage_plugin::EmailStagePlugin.manifest()
        }
        fn new_stage(
            &self,
            kind: &str,
            name: &str,
            config: &str,
        ) -> Result<Box<dyn plugin_api::Stage>, plugin_api::StageError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            email_stage_plugin::EmailStagePlugin.new_stage(kind, name, config)
        }
    }

    #[test]
    fn a_config_against_its_schema_is_refused_with_the_stage_and_path_before_the_plugin() {
        let counting = Arc::new(Counting::default());
        let plugins: Vec<Arc<dyn Plugin>> = vec![counting.clone()];
        let mut cfg = reference_config("memory://", "http://x", None, MailConfig::default());
        let email = cfg.stages.iter_mut().find(|s| s.kind == "email").unwrap();
        let name = email.name.clone();
        email.config["port"] = serde_json::json!(70000);
        let e = validate(&cfg, &plugins).err().unwrap();
        let ConfigError::Schema { stage, path, .. } = &e else {
            panic!("expected a schema error, got {e}");
        };
        assert_eq!((stage.as_str(), path.as_str()), (name.as_str(), "$.port"));
        assert!(e.to_string().contains("65535"), "{e}");
        assert_eq!(
            counting.0.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the plugin was not called"
        );
        // The schema passes what it can say; the plugin still checks the rest.
        let email = cfg.stages.iter_mut().find(|s| s.kind == "email").unwrap();
        email.config["port"] = serde_json::json!(25);
        email.config["token_expiry"] = serde_json::json!("hours=3,minutes=17");
        let e = validate(&cfg, &plugins).err().unwrap();
        assert!(matches!(e, ConfigError::Stage { .. }), "{e}");
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
