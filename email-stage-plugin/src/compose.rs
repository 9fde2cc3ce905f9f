//! Mail composition with lettre: `Name <addr>`, subject, `multipart/alternative`.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use plugin_api::address::EmailAddress;

/// Why a message could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The recipient is not a valid address (e.g. empty email and no override).
    #[error("invalid recipient address '{0}'")]
    Recipient(String),
    /// lettre refused the message.
    #[error("cannot build message: {0}")]
    Build(String),
}

/// A composed message ready for the host's queue.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipient.
    pub envelope_to: String,
    /// The `To` header as a display string.
    pub to_display: String,
    /// RFC 5322 bytes.
    pub raw: Vec<u8>,
}

/// Parses a recipient by the rules every part of the host shares
/// ([`plugin_api::address`]); CR/LF are removed from the address first (authentik's
/// sanitising) and from the name. IDN domains go out as punycode.
pub fn recipient(name: &str, address: &str) -> Result<Mailbox, ComposeError> {
    let addr: String = address
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let name: String = name
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let parsed = EmailAddress::parse(&addr).map_err(|e| {
        let shown: String = addr.chars().take(64).collect();
        ComposeError::Recipient(format!("{shown} ({e})"))
    })?;
    let address = Address::new(parsed.local(), parsed.domain())
        .map_err(|e| ComposeError::Recipient(format!("{parsed} ({e})")))?;
    let name = name.trim();
    Ok(Mailbox::new(
        (!name.is_empty()).then(|| name.to_string()),
        address,
    ))
}

/// Builds the message: HTML alone, or text + HTML as `multipart/alternative`.
pub fn compose(
    from: Mailbox,
    to: Mailbox,
    subject: &str,
    message_id: &str,
    html: String,
    text: Option<String>,
) -> Result<Composed, ComposeError> {
    let builder = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject)
        .message_id(Some(message_id.to_string()));
    let msg = match text {
        Some(text) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        ),
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Composed {
        envelope_from: from.email.to_string(),
        envelope_to: to.email.to_string(),
        to_display: to.to_string(),
        raw: msg.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_address_are_sanitised() {
        let m = recipient("Jane\r\nBcc: evil@x.y", "jane@example.com\r\n").unwrap();
        assert_eq!(m.email.to_string(), "jane@example.com");
        let c = compose(
            "system@authentik.local".parse().unwrap(),
            m,
            "Hi",
            "<1@x>",
            "<p>x</p>".into(),
            Some("x".into()),
        )
        .unwrap();
        let raw = String::from_utf8(c.raw).unwrap();
        assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("Message-ID: <1@x>"));
    }

    #[test]
    fn bad_addresses() {
        assert!(recipient("", "").is_err());
        assert!(recipient("", "no-at-sign").is_err());
        assert!(recipient("", &format!("{}@x.y", "a".repeat(300))).is_err());
    }

    #[test]
    fn idn_domains_are_punycoded_and_unicode_local_parts_refused() {
        let m = recipient("Jöhn", "user@bücher.example").unwrap();
        assert_eq!(m.email.to_string(), "user@xn--bcher-kva.example");
        let c = compose("a@b.c".parse().unwrap(), m, "s", "<3@x>", "h".into(), None).unwrap();
        assert!(c.raw.is_ascii());
        let e = recipient("", "jöhn@example.com").unwrap_err();
        assert!(e.to_string().contains("SMTPUTF8"), "{e}");
        assert!(recipient("", "a@b@c").is_err());
        assert!(recipient("", "a@").is_err());
    }

    #[test]
    fn non_ascii_name_is_encoded() {
        let m = recipient("Jöhn Dœ", "j@example.com").unwrap();
        let c = compose(
            "a@b.c".parse().unwrap(),
            m,
            "Grüße",
            "<2@x>",
            "h".into(),
            None,
        )
        .unwrap();
        let raw = String::from_utf8(c.raw).unwrap();
        assert!(raw.contains("=?utf-8?"), "{raw}");
        assert!(raw.contains("Content-Type: text/html"));
        assert!(raw.is_ascii());
    }
}
