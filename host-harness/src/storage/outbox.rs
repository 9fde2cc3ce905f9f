//! The outbox's record of a mail: what is stored of it and where it goes. Stage
//! SMTP settings are never stored, only the stage's name (see
//! [`crate::mail::MailRoutes`]).

use plugin_api::SmtpSettings;
use serde::{Deserialize, Serialize};

/// Where a queued mail goes, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteRef {
    /// The host's global delivery.
    Global,
    /// The SMTP settings of this stage binding, looked up at delivery time.
    Stage {
        /// Binding name.
        stage: String,
    },
    /// Settings written inline by versions before routes were stored by reference.
    /// Delivered as written; the password is scrubbed from the row once it is sent
    /// or dead. Never written now.
    Smtp(SmtpSettings),
}

/// A mail in the outbox. Serialized (JSON) it is the row's metadata: `raw` is kept
/// apart, as bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMail {
    /// `Message-ID`, the idempotency key.
    pub message_id: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub envelope_to: Vec<String>,
    /// Recipients as shown (for the `email_sent` event).
    pub to_display: Vec<String>,
    /// Subject (for the `email_sent` event).
    pub subject: String,
    /// The RFC 5322 message (holds the link: never logged).
    #[serde(skip)]
    pub raw: Vec<u8>,
    /// Where it goes.
    pub route: RouteRef,
    /// Stored like a real mail and never delivered (see [`plugin_api::OutgoingMail::decoy`]).
    #[serde(default)]
    pub decoy: bool,
    /// The locale it was written in (for the `email_sent` event); empty if unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locale: String,
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("message_id", &self.message_id)
            .field("envelope_to", &self.envelope_to)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .field("route", &self.route)
            .field("decoy", &self.decoy)
            .finish()
    }
}
