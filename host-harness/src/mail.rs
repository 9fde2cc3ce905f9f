//! The mail queue: plugins enqueue composed messages; a background worker delivers
//! them over SMTP or into a mail directory and records `email_sent` / `email_failed`.
//! The request path never waits on SMTP.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, FileTransport, SmtpTransport, Transport};
use plugin_api::{MailRoute, OutgoingMail, SmtpSettings};
use serde_json::json;

use crate::clock::Clock;
use crate::store::{Event, Store};

/// Where mail for the global route goes.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An SMTP server.
    Smtp(SmtpSettings),
    /// One `.eml` file per message in this directory (lettre's file transport).
    MailDir(PathBuf),
}

/// Why a mail could not be queued or delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The queue's worker is gone.
    #[error("mail queue is closed")]
    Closed,
    /// SMTP settings are unusable.
    #[error("invalid SMTP settings: {0}")]
    Settings(String),
    /// The envelope is invalid.
    #[error("invalid envelope: {0}")]
    Envelope(String),
    /// Delivery failed.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

/// Builds a blocking SMTP transport for `s`.
pub fn smtp_transport(s: &SmtpSettings) -> Result<SmtpTransport, MailError> {
    if s.use_tls && s.use_ssl {
        return Err(MailError::Settings(
            "use_tls and use_ssl are both set".into(),
        ));
    }
    let mut b = SmtpTransport::builder_dangerous(s.host.as_str())
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))));
    if s.use_ssl || s.use_tls {
        let p =
            TlsParameters::new(s.host.clone()).map_err(|e| MailError::Settings(e.to_string()))?;
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

fn envelope(mail: &OutgoingMail) -> Result<Envelope, MailError> {
    let from: Address = mail
        .envelope_from
        .parse()
        .map_err(|e| MailError::Envelope(format!("from: {e}")))?;
    let to = mail
        .envelope_to
        .iter()
        .map(|a| a.parse::<Address>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MailError::Envelope(format!("to: {e}")))?;
    Envelope::new(Some(from), to).map_err(|e| MailError::Envelope(e.to_string()))
}

fn deliver(
    global: &Delivery,
    global_smtp: Option<&SmtpTransport>,
    mail: &OutgoingMail,
) -> Result<(), MailError> {
    let env = envelope(mail)?;
    let smtp_err = |e: lettre::transport::smtp::Error| MailError::Delivery(e.to_string());
    match (&mail.route, global) {
        (MailRoute::Smtp(s), _) => smtp_transport(s)?
            .send_raw(&env, &mail.raw)
            .map(drop)
            .map_err(smtp_err),
        (MailRoute::Global, Delivery::Smtp(_)) => match global_smtp {
            Some(t) => t.send_raw(&env, &mail.raw).map(drop).map_err(smtp_err),
            None => Err(MailError::Settings(
                "global SMTP transport unavailable".into(),
            )),
        },
        (MailRoute::Global, Delivery::MailDir(dir)) => FileTransport::new(dir)
            .send_raw(&env, &mail.raw)
            .map(drop)
            .map_err(|e| MailError::Delivery(e.to_string())),
    }
}

/// A background delivery worker fed by a channel.
pub struct MailQueue {
    tx: Mutex<Option<Sender<OutgoingMail>>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl MailQueue {
    /// Starts the worker.
    pub fn start(
        global: Delivery,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        let global_smtp = match &global {
            Delivery::Smtp(s) => Some(smtp_transport(s)?),
            Delivery::MailDir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| MailError::Settings(format!("{}: {e}", dir.display())))?;
                None
            }
        };
        let (tx, rx) = channel::<OutgoingMail>();
        let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
        let p2 = pending.clone();
        let worker = std::thread::Builder::new()
            .name("mail-queue".into())
            .spawn(move || {
                for mail in rx {
                    let result = deliver(&global, global_smtp.as_ref(), &mail);
                    let (action, ctx) = match &result {
                        Ok(()) => {
                            tracing::info!(target: "mail", message_id = %mail.message_id, "Successfully sent mail.");
                            ("email_sent", json!({
                                "message": format!("Email to {} sent", mail.to_display.join(", ")),
                                "subject": mail.subject,
                                "from_email": mail.envelope_from,
                                "to_email": mail.to_display,
                                "message_id": mail.message_id,
                            }))
                        }
                        Err(e) => {
                            tracing::error!(target: "mail", message_id = %mail.message_id, error = %e, "mail delivery failed");
                            ("email_failed", json!({
                                "message": format!("Email to {} failed", mail.to_display.join(", ")),
                                "subject": mail.subject,
                                "to_email": mail.to_display,
                                "message_id": mail.message_id,
                                "error": e.to_string(),
                            }))
                        }
                    };
                    if let Err(e) = store.add_event(&Event { action: action.into(), context: ctx, at_ms: clock.now_ms() }) {
                        tracing::error!(target: "mail", error = %e, "cannot record mail event");
                    }
                    let (lock, cv) = &*p2;
                    let mut n = lock.lock().unwrap_or_else(|p| p.into_inner());
                    *n = n.saturating_sub(1);
                    cv.notify_all();
                }
            })
            .map_err(|e| MailError::Settings(format!("cannot start mail worker: {e}")))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            pending,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues a message; returns at once.
    pub fn enqueue(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard.as_ref().ok_or(MailError::Closed)?;
        *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        tx.send(mail).map_err(|_| {
            *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            MailError::Closed
        })
    }

    /// Waits until every queued message was handled, at most `timeout`. Whether the
    /// queue is empty.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.pending;
        let g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = cv
            .wait_timeout_while(g, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *g == 0
    }
}

impl Drop for MailQueue {
    fn drop(&mut self) {
        // Closing the channel lets the worker finish what is queued, then exit.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}
