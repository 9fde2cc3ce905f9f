//! Building an [`OutgoingMail`] without writing MIME by hand (feature `mail`):
//! headers encoded (RFC 2047 for a non-ASCII subject or name), `Date` from the
//! host's clock, a `Message-ID` from the host's randomness, `multipart/alternative`
//! for text and HTML, and the envelope and event fields filled from the same values.
//! The message itself is written by lettre's builder.
//!
//! ```
//! use plugin_api::testing::FakeHost;
//! use plugin_api::OutgoingMail;
//!
//! let host = FakeHost::new();
//! let mail = OutgoingMail::builder()
//!     .to("Jo Müller", "jo@example.com")
//!     .subject("Your sign-in code")
//!     .text("Your code is 123456.")
//!     .html("<p>Your code is <b>123456</b>.</p>")
//!     .build(&host)
//!     .unwrap();
//! assert_eq!(mail.envelope_to, ["jo@example.com"]);
//! let raw = String::from_utf8(mail.raw.clone()).unwrap();
//! assert!(raw.contains("multipart/alternative"));
//! assert!(raw.contains(&format!("Message-ID: {}", mail.message_id)));
//! ```

use std::time::{Duration, SystemTime};

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::address::EmailAddress;
use crate::host::Host;
use crate::types::{MailRoute, OutgoingMail};
use crate::{HostError, StageError};

/// Why a mail could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailBuildError {
    /// No recipient was given.
    #[error("the mail has no recipient")]
    NoRecipient,
    /// Neither a text nor an HTML body was given.
    #[error("the mail has no body: set text, html or both")]
    NoBody,
    /// An address is not one the host would send to ([`crate::address`]'s rules).
    #[error("invalid address '{address}': {reason}")]
    Address {
        /// The address, up to 64 characters.
        address: String,
        /// Why.
        reason: String,
    },
    /// The host's randomness failed (the Message-ID needs it).
    #[error(transparent)]
    Host(#[from] HostError),
    /// lettre refused the message.
    #[error("cannot build the message: {0}")]
    Build(String),
}

impl From<MailBuildError> for StageError {
    fn from(e: MailBuildError) -> Self {
        match e {
            MailBuildError::Host(h) => StageError::Host(h),
            other => StageError::Internal(other.to_string()),
        }
    }
}

/// A mail being built; see the [module](self) docs.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MailBuilder {
    from: Option<(String, String)>,
    to: Vec<(String, String)>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    route: Option<MailRoute>,
    decoy: bool,
    locale: String,
}

impl OutgoingMail {
    /// Starts a mail; see [`MailBuilder`].
    pub fn builder() -> MailBuilder {
        MailBuilder::default()
    }
}

impl MailBuilder {
    /// The sender; default: the host's global `From` address.
    pub fn from(mut self, name: &str, address: &str) -> Self {
        self.from = Some((name.into(), address.into()));
        self
    }
    /// Adds a recipient (`name` may be empty).
    pub fn to(mut self, name: &str, address: &str) -> Self {
        self.to.push((name.into(), address.into()));
        self
    }
    /// The subject (encoded as needed).
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = subject.into();
        self
    }
    /// The plain-text body.
    pub fn text(mut self, text: &str) -> Self {
        self.text = Some(text.into());
        self
    }
    /// The HTML body.
    pub fn html(mut self, html: &str) -> Self {
        self.html = Some(html.into());
        self
    }
    /// Which SMTP settings deliver it; default [`MailRoute::Global`].
    pub fn route(mut self, route: MailRoute) -> Self {
        self.route = Some(route);
        self
    }
    /// Marks it a decoy: queued like a real mail, never delivered
    /// ([`OutgoingMail::decoy`]).
    pub fn decoy(mut self, decoy: bool) -> Self {
        self.decoy = decoy;
        self
    }

    /// The locale the mail is written in, for the host's `email_sent` event.
    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = locale.into();
        self
    }

    /// Writes the message, with `Date` from `host`'s clock and a random
    /// `Message-ID` under the sender's domain.
    pub fn build(self, host: &dyn Host) -> Result<OutgoingMail, MailBuildError> {
        let from = match &self.from {
            Some((name, addr)) => mailbox(name, addr)?,
            None => mailbox("", &host.default_from_address())?,
        };
        if self.to.is_empty() {
            return Err(MailBuildError::NoRecipient);
        }
        let to = (self.to.iter())
            .map(|(n, a)| mailbox(n, a))
            .collect::<Result<Vec<_>, _>>()?;
        let message_id = message_id(host, from.email.domain())?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(host.now_ms().max(0) as u64);
        let mut b = Message::builder()
            .from(from.clone())
            .subject(self.subject.as_str())
            .date(at)
            .message_id(Some(message_id.clone()));
        for m in &to {
            b = b.to(m.clone());
        }
        let built = match (self.text, self.html) {
            (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(t, h)),
            (Some(t), None) => b.singlepart(part(ContentType::TEXT_PLAIN, t)),
            (None, Some(h)) => b.singlepart(part(ContentType::TEXT_HTML, h)),
            (None, None) => return Err(MailBuildError::NoBody),
        };
        let msg = built.map_err(|e| MailBuildError::Build(e.to_string()))?;
        Ok(OutgoingMail {
            message_id,
            envelope_from: from.email.to_string(),
            envelope_to: to.iter().map(|m| m.email.to_string()).collect(),
            to_display: to.iter().map(Mailbox::to_string).collect(),
            subject: self.subject,
            raw: msg.formatted(),
            route: self.route.unwrap_or(MailRoute::Global),
            decoy: self.decoy,
            locale: self.locale,
        })
    }
}

fn part(kind: ContentType, body: String) -> SinglePart {
    SinglePart::builder().header(kind).body(body)
}

/// A mailbox from a display name (line breaks become spaces) and an address
/// checked by [`EmailAddress::parse`] (line breaks removed first).
fn mailbox(name: &str, address: &str) -> Result<Mailbox, MailBuildError> {
    let address: String = address
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let refused = |reason: String| MailBuildError::Address {
        address: address.chars().take(64).collect(),
        reason,
    };
    let parsed = EmailAddress::parse(&address).map_err(|e| refused(e.to_string()))?;
    let email =
        Address::new(parsed.local(), parsed.domain()).map_err(|e| refused(e.to_string()))?;
    let name: String = name
        .chars()
        .map(|c| if matches!(c, '\r' | '\n') { ' ' } else { c })
        .collect();
    let name = name.trim();
    Ok(Mailbox::new((!name.is_empty()).then(|| name.into()), email))
}

/// `<32 hex digits@domain>` from the host's randomness.
fn message_id(host: &dyn Host, domain: &str) -> Result<String, MailBuildError> {
    let mut b = [0u8; 16];
    host.fill_random(&mut b)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("<{hex}@{domain}>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    fn raw(m: &OutgoingMail) -> String {
        String::from_utf8(m.raw.clone()).unwrap()
    }

    #[test]
    fn headers_are_encoded_and_dated_by_the_hosts_clock() {
        let host = FakeHost::new();
        let m = OutgoingMail::builder()
            .from("Sign-in", "noreply@example.org")
            .to("Jöhn\r\nBcc: evil@x.y", "john@example.com\r\n")
            .subject("Ihr Anmeldecode: 123456 ✓")
            .text("123456")
            .build(&host)
            .unwrap();
        let r = raw(&m);
        assert!(!r.lines().any(|l| l.starts_with("Bcc:")), "{r}");
        let subject = r.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(
            subject.is_ascii() && subject.contains("=?utf-8?"),
            "RFC 2047: {r}"
        );
        assert!(r.contains("Date: Thu, 01 Jan 2026 00:00:00 +0000"), "{r}");
        assert!(m.message_id.ends_with("@example.org>") && m.message_id.len() == 46);
        assert_eq!(m.envelope_from, "noreply@example.org");
        assert_eq!(m.envelope_to, ["john@example.com"]);
        assert_eq!(m.subject, "Ihr Anmeldecode: 123456 ✓");
        assert!(r.contains("Content-Type: text/plain"), "{r}");
        assert_eq!(m.route, MailRoute::Global);
    }

    #[test]
    fn the_default_sender_is_the_hosts_and_mistakes_are_typed() {
        let host = FakeHost::new();
        let m = OutgoingMail::builder()
            .to("", "a@example.com")
            .html("<p>x</p>")
            .build(&host)
            .unwrap();
        assert_eq!(m.envelope_from, host.default_from_address());
        assert!(raw(&m).contains("Content-Type: text/html"));
        let none = OutgoingMail::builder().text("x").build(&host);
        assert!(matches!(none, Err(MailBuildError::NoRecipient)));
        let empty = OutgoingMail::builder().to("", "a@example.com").build(&host);
        assert!(matches!(empty, Err(MailBuildError::NoBody)));
        let bad = OutgoingMail::builder()
            .to("", "no-at")
            .text("x")
            .build(&host);
        assert!(matches!(bad, Err(MailBuildError::Address { .. })));
        let e: StageError = bad.unwrap_err().into();
        assert!(matches!(e, StageError::Internal(_)));
    }

    #[test]
    fn the_same_host_state_builds_the_same_message() {
        let build = || {
            OutgoingMail::builder()
                .to("", "a@example.com")
                .subject("s")
                .text("t")
                .html("<p>t</p>")
                .build(&FakeHost::new())
                .unwrap()
        };
        let (a, b) = (build(), build());
        assert_eq!(a.message_id, b.message_id, "fixed-seed randomness");
    }
}
