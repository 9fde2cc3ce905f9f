//! `host-harness test-email`: one message now, bypassing the outbox (authentik's
//! `ak test_email`), with a classified outcome.

use lettre::message::{Mailbox, Message, MultiPart};
use lettre::{FileTransport, Transport};
use plugin_api::SmtpSettings;

use super::smtp::{classify, smtp_transport, Failure};
use super::Delivery;

/// Why `test-email` could not send.
#[derive(Debug, thiserror::Error)]
pub enum TestEmailError {
    /// No email stage has this name (authentik's wording).
    #[error("Stage '{0}' does not exist")]
    NoStage(String),
    /// The stage or host settings are unusable.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The server refused or could not be reached.
    #[error("{kind} failure: {error}")]
    Delivery {
        /// `transient` or `permanent`.
        kind: &'static str,
        /// What the server or network said.
        error: String,
    },
}

/// Sends one test message from `from` to `to` now, over `stage` settings when given
/// (a stage's own SMTP settings, from its [`plugin_api::Stage::mail_route`]) or the
/// global delivery. `extra_roots_pem` are trusted for TLS. Returns a line saying
/// where it went.
pub fn test_email(
    global: &Delivery,
    stage: Option<&SmtpSettings>,
    extra_roots_pem: &[Vec<u8>],
    from: &str,
    to: &str,
) -> Result<String, TestEmailError> {
    let settings = |e: String| TestEmailError::Settings(e);
    let from: Mailbox = from
        .parse()
        .map_err(|e| settings(format!("from address: {e}")))?;
    let to_box: Mailbox = to
        .parse()
        .map_err(|e| settings(format!("recipient: {e}")))?;
    let msg = Message::builder()
        .from(from)
        .to(to_box)
        .subject("authentik Test-Email")
        .multipart(MultiPart::alternative_plain_html(
            "This is a test email from the identity host.".to_string(),
            "<p>This is a test email from the identity host.</p>".to_string(),
        ))
        .map_err(|e| settings(e.to_string()))?;
    let smtp_send = |s: &SmtpSettings| {
        let t = smtp_transport(s, extra_roots_pem, 1).map_err(|e| settings(e.to_string()))?;
        t.send(&msg).map_err(|e| match classify(&e) {
            Failure::Transient(error) => TestEmailError::Delivery {
                kind: "transient",
                error,
            },
            Failure::Permanent(error) => TestEmailError::Delivery {
                kind: "permanent",
                error,
            },
        })?;
        let mode = if s.use_ssl {
            "implicit TLS"
        } else if s.use_tls {
            "STARTTLS"
        } else {
            "plain"
        };
        Ok(format!(
            "Email to {to} sent via {}:{} ({mode})",
            s.host, s.port
        ))
    };
    match (stage, global) {
        (Some(s), _) | (None, Delivery::Smtp(s)) => smtp_send(s),
        (None, Delivery::MailDir(dir)) => {
            std::fs::create_dir_all(dir).map_err(|e| settings(e.to_string()))?;
            FileTransport::new(dir)
                .send(&msg)
                .map_err(|e| TestEmailError::Delivery {
                    kind: "transient",
                    error: e.to_string(),
                })?;
            Ok(format!("Email to {to} written to {}", dir.display()))
        }
    }
}
