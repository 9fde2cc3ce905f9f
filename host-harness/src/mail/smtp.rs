//! SMTP transports (pooled, STARTTLS or implicit TLS, AUTH) and the classification
//! of delivery failures by lettre's error kinds.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, SmtpTransport};
use plugin_api::token::sha256_hex;
use plugin_api::SmtpSettings;

use super::route::QueuedMail;
use super::MailError;

/// A delivery failure, classified from lettre's error kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying (4xx, connection, timeout, TLS handshake, I/O).
    Transient(String),
    /// Retrying cannot help (5xx, invalid envelope, bad settings).
    Permanent(String),
}

pub(crate) fn classify(e: &lettre::transport::smtp::Error) -> Failure {
    if e.is_permanent() || e.is_client() {
        Failure::Permanent(e.to_string())
    } else {
        Failure::Transient(e.to_string())
    }
}

/// Builds a pooled, blocking SMTP transport for `s`.
pub fn smtp_transport(
    s: &SmtpSettings,
    extra_roots_pem: &[Vec<u8>],
    pool_size: u32,
) -> Result<SmtpTransport, MailError> {
    if s.use_tls && s.use_ssl {
        return Err(MailError::Settings(
            "use_tls and use_ssl are both set".into(),
        ));
    }
    let mut b = SmtpTransport::builder_dangerous(s.host.as_str())
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))))
        .pool_config(PoolConfig::new().max_size(pool_size.max(1)));
    if s.use_ssl || s.use_tls {
        let mut p = TlsParameters::builder(s.host.clone());
        for pem in extra_roots_pem {
            let cert = lettre::transport::smtp::client::Certificate::from_pem(pem)
                .map_err(|e| MailError::Settings(format!("CA certificate: {e}")))?;
            p = p.add_root_certificate(cert);
        }
        let p = p.build().map_err(|e| MailError::Settings(e.to_string()))?;
        b = b.tls(if s.use_ssl {
            Tls::Wrapper(p)
        } else {
            Tls::Required(p)
        });
    }
    if !s.username.is_empty() && !s.password.is_empty() {
        b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
    }
    Ok(b.build())
}

pub(crate) fn envelope(mail: &QueuedMail) -> Result<Envelope, Failure> {
    let from: Address = mail
        .envelope_from
        .parse()
        .map_err(|e| Failure::Permanent(format!("invalid envelope sender: {e}")))?;
    let to = mail
        .envelope_to
        .iter()
        .map(|a| a.parse::<Address>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Permanent(format!("invalid envelope recipient: {e}")))?;
    Envelope::new(Some(from), to).map_err(|e| Failure::Permanent(e.to_string()))
}

pub(crate) fn settings_key(s: &SmtpSettings) -> String {
    format!(
        "{}:{}:{}:{}:{}:{}:{}",
        s.host,
        s.port,
        s.username,
        sha256_hex(&s.password),
        s.use_tls,
        s.use_ssl,
        s.timeout_secs
    )
}
