//! What the outbox stores of a mail, and where it goes: a stage's SMTP settings are
//! kept in memory (from the configuration, through [`plugin_api::Stage::mail_route`])
//! and a queued mail names its stage, so no credential is ever written to storage.

use std::collections::HashMap;
use std::sync::RwLock;

use plugin_api::{MailRoute, OutgoingMail, SmtpSettings};

pub use crate::storage::{QueuedMail, RouteRef};

/// The SMTP settings of each stage binding that sends mail with its own settings.
#[derive(Default)]
pub struct MailRoutes(RwLock<HashMap<String, SmtpSettings>>);

impl MailRoutes {
    /// Records `stage`'s settings (replacing any earlier ones).
    pub fn set(&self, stage: &str, settings: SmtpSettings) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stage.to_string(), settings);
    }

    /// The settings of `stage`, if known.
    pub fn get(&self, stage: &str) -> Option<SmtpSettings> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stage)
            .cloned()
    }

    /// Records the route a stage reported; `Global` needs nothing.
    pub fn register(&self, stage: &str, route: Option<MailRoute>) {
        if let Some(MailRoute::Smtp(s)) = route {
            self.set(stage, s);
        }
    }

    /// The stored form of a plugin's mail sent by `stage`: stage settings become a
    /// reference to the stage. A stage that did not report its route when it was
    /// built (its `mail_route` answered `None`) is recorded now.
    pub fn queued(&self, stage: &str, mail: &OutgoingMail) -> QueuedMail {
        let route = match &mail.route {
            MailRoute::Global => RouteRef::Global,
            MailRoute::Smtp(s) => {
                if self.get(stage).as_ref() != Some(s) {
                    self.set(stage, s.clone());
                }
                RouteRef::Stage {
                    stage: stage.to_string(),
                }
            }
        };
        QueuedMail {
            message_id: mail.message_id.clone(),
            envelope_from: mail.envelope_from.clone(),
            envelope_to: mail.envelope_to.clone(),
            to_display: mail.to_display.clone(),
            subject: mail.subject.clone(),
            raw: mail.raw.clone(),
            route,
            decoy: mail.decoy,
            locale: mail.locale.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_routes_carry_no_credentials_and_old_rows_still_read() {
        let routes = MailRoutes::default();
        let settings = SmtpSettings {
            host: "smtp.example".into(),
            port: 587,
            username: "u".into(),
            password: "pa55-word".into(),
            use_tls: true,
            use_ssl: false,
            timeout_secs: 10,
        };
        let mail = OutgoingMail {
            message_id: "<1@x>".into(),
            envelope_from: "a@b.c".into(),
            envelope_to: vec!["d@e.f".into()],
            to_display: vec!["d@e.f".into()],
            subject: "s".into(),
            raw: b"raw".to_vec(),
            route: MailRoute::Smtp(settings.clone()),
            decoy: false,
            locale: String::new(),
        };
        let q = routes.queued("verify", &mail);
        let meta = serde_json::to_string(&q).unwrap();
        assert!(
            !meta.contains("pa55-word") && !meta.contains("raw"),
            "{meta}"
        );
        assert_eq!(routes.get("verify"), Some(settings.clone()));
        let old = serde_json::json!({
            "message_id": "<2@x>", "envelope_from": "a@b.c", "envelope_to": [],
            "to_display": [], "subject": "s",
            "route": {"kind": "smtp", "host": "h", "port": 25, "username": "",
                      "password": "p", "use_tls": false, "use_ssl": false, "timeout_secs": 5}
        });
        let old: QueuedMail = serde_json::from_value(old).unwrap();
        assert!(matches!(old.route, RouteRef::Smtp(s) if s.host == "h"));
        assert!(!old.decoy);
    }
}
