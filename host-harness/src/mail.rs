//! Mail delivery from the durable outbox.
//!
//! Plugins hand a composed message to the host ([`MailQueue::enqueue`]): it is
//! written to the store's outbox and the request goes on. Worker threads claim due
//! messages (a lease, so a crashed worker's messages come back), deliver them over
//! SMTP through pooled connections or into a mail directory, and record the result:
//! `email_sent`, a retry with exponential backoff and jitter for transient failures
//! (connection refused, timeouts, SMTP 4xx), or a dead letter with `email_failed` for
//! permanent ones (SMTP 5xx, invalid addresses) and for messages out of attempts or
//! too old. One failing message never holds up the others.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, FileTransport, SmtpTransport, Transport};
use plugin_api::token::sha256_hex;
use plugin_api::{MailRoute, OutgoingMail, SmtpSettings};
use serde_json::json;

use crate::clock::Clock;
use crate::store::{Event, HostStore, OutboxOutcome, OutboxRow};

/// Where mail for the global route goes.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An SMTP server.
    Smtp(SmtpSettings),
    /// One `.eml` file per message in this directory (lettre's file transport).
    MailDir(PathBuf),
}

/// Why a mail could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// SMTP settings are unusable.
    #[error("invalid SMTP settings: {0}")]
    Settings(String),
    /// The outbox could not be written.
    #[error("outbox unavailable: {0}")]
    Store(String),
}

/// Retry rules for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before a message becomes a dead letter.
    pub max_attempts: u32,
    /// Age after which a message becomes a dead letter, ms.
    pub max_age_ms: i64,
    /// Delay before the second attempt, ms; doubles with each attempt.
    pub base_backoff_ms: i64,
    /// Largest delay between attempts, ms.
    pub max_backoff_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_age_ms: 24 * 3600 * 1000,
            base_backoff_ms: 1000,
            max_backoff_ms: 5 * 60 * 1000,
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts: `base · 2^(attempts-1)`, capped,
    /// then a random point in its upper half (`jitter` in 0..=1).
    pub fn backoff_ms(&self, attempts: u32, jitter: f64) -> i64 {
        let exp = self
            .base_backoff_ms
            .saturating_mul(1i64 << attempts.saturating_sub(1).min(30))
            .min(self.max_backoff_ms);
        exp / 2 + ((exp / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
    }
}

/// How the delivery workers run.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Worker threads, which is also the most SMTP connections open at once.
    pub workers: usize,
    /// Messages a worker claims at once (one storage write for the claim).
    pub batch: usize,
    /// How long a claim lasts before another worker may take the message, ms.
    pub lease_ms: i64,
    /// How often idle workers look for due messages (other hosts may add some).
    pub poll: Duration,
    /// Retry rules.
    pub retry: RetryPolicy,
    /// Extra CA certificates (PEM) trusted for STARTTLS / implicit TLS.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            batch: 8,
            lease_ms: 120_000,
            poll: Duration::from_millis(200),
            retry: RetryPolicy::default(),
            extra_roots_pem: Vec::new(),
        }
    }
}

/// A delivery failure, classified from lettre's error kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying (4xx, connection, timeout, TLS handshake, I/O).
    Transient(String),
    /// Retrying cannot help (5xx, invalid envelope, bad settings).
    Permanent(String),
}

fn classify(e: &lettre::transport::smtp::Error) -> Failure {
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

fn envelope(mail: &OutgoingMail) -> Result<Envelope, Failure> {
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

fn settings_key(s: &SmtpSettings) -> String {
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

struct Shared {
    store: Arc<dyn HostStore>,
    clock: Arc<dyn Clock>,
    global: Delivery,
    config: OutboxConfig,
    transports: Mutex<HashMap<String, SmtpTransport>>,
    wake: (Mutex<u64>, Condvar),
    stop: AtomicBool,
    busy: AtomicUsize,
}

impl Shared {
    fn transport(&self, s: &SmtpSettings) -> Result<SmtpTransport, Failure> {
        let key = settings_key(s);
        let mut map = self.transports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(&key) {
            return Ok(t.clone());
        }
        let t = smtp_transport(s, &self.config.extra_roots_pem, self.config.workers as u32)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        map.insert(key, t.clone());
        Ok(t)
    }

    fn deliver(&self, mail: &OutgoingMail) -> Result<(), Failure> {
        let env = envelope(mail)?;
        let smtp = |s: &SmtpSettings| -> Result<(), Failure> {
            self.transport(s)?
                .send_raw(&env, &mail.raw)
                .map(drop)
                .map_err(|e| classify(&e))
        };
        match (&mail.route, &self.global) {
            (MailRoute::Smtp(s), _) | (MailRoute::Global, Delivery::Smtp(s)) => smtp(s),
            (MailRoute::Global, Delivery::MailDir(dir)) => FileTransport::new(dir)
                .send_raw(&env, &mail.raw)
                .map(drop)
                .map_err(|e| Failure::Transient(e.to_string())),
        }
    }

    fn event(&self, action: &str, context: serde_json::Value) -> Option<Event> {
        Some(Event {
            action: action.into(),
            context,
            at_ms: self.clock.now_ms(),
        })
    }

    fn handle(&self, row: OutboxRow) {
        let mail = &row.mail;
        let now = self.clock.now_ms();
        let (outcome, event) = match self.deliver(mail) {
            Ok(()) => {
                tracing::info!(target: "mail", message_id = %mail.message_id, attempts = row.attempts, "Successfully sent mail.");
                let ev = self.event(
                    "email_sent",
                    json!({
                        "message": format!("Email to {} sent", mail.to_display.join(", ")),
                        "subject": mail.subject,
                        "from_email": mail.envelope_from,
                        "to_email": mail.to_display,
                        "message_id": mail.message_id,
                        "attempts": row.attempts,
                    }),
                );
                (OutboxOutcome::Sent, ev)
            }
            Err(Failure::Transient(error))
                if row.attempts < self.config.retry.max_attempts
                    && now - row.created_ms < self.config.retry.max_age_ms =>
            {
                let mut b = [0u8; 2];
                let _ = getrandom::fill(&mut b);
                let jitter = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
                let at_ms = now + self.config.retry.backoff_ms(row.attempts, jitter);
                tracing::warn!(target: "mail", message_id = %mail.message_id, attempts = row.attempts, %error, "delivery failed, will retry");
                (OutboxOutcome::Retry { at_ms, error }, None)
            }
            Err(Failure::Transient(error) | Failure::Permanent(error)) => {
                tracing::error!(target: "mail", message_id = %mail.message_id, attempts = row.attempts, %error, "delivery failed for good");
                let ev = self.event(
                    "email_failed",
                    json!({
                        "message": format!("Email to {} failed", mail.to_display.join(", ")),
                        "subject": mail.subject,
                        "to_email": mail.to_display,
                        "message_id": mail.message_id,
                        "attempts": row.attempts,
                        "error": error,
                    }),
                );
                (OutboxOutcome::Dead { error }, ev)
            }
        };
        if let Err(e) = self.store.outbox_finish(row.id, &outcome, event.as_ref()) {
            // The lease runs out and the message is tried again.
            tracing::error!(target: "mail", error = %e, "cannot record delivery outcome");
        }
    }

    fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            self.busy.fetch_add(1, Ordering::SeqCst);
            let claimed = self.store.outbox_claim(
                self.clock.now_ms(),
                self.config.lease_ms,
                self.config.batch,
            );
            let got = match claimed {
                Ok(rows) => {
                    let n = rows.len();
                    for row in rows {
                        self.handle(row);
                    }
                    n
                }
                Err(e) => {
                    tracing::error!(target: "mail", error = %e, "outbox claim failed");
                    0
                }
            };
            self.busy.fetch_sub(1, Ordering::SeqCst);
            if got == 0 {
                let (lock, cv) = &self.wake;
                let g = lock.lock().unwrap_or_else(|p| p.into_inner());
                let seen = *g;
                let _ = cv
                    .wait_timeout_while(g, self.config.poll, |n| {
                        *n == seen && !self.stop.load(Ordering::SeqCst)
                    })
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn notify(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_all();
    }
}

/// The host's mail queue: the durable outbox and its delivery workers.
pub struct MailQueue {
    shared: Arc<Shared>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl MailQueue {
    /// Starts the delivery workers over `store`'s outbox. Mail queued by an earlier
    /// run (or another host sharing the store) is delivered too.
    pub fn start(
        global: Delivery,
        store: Arc<dyn HostStore>,
        clock: Arc<dyn Clock>,
        config: OutboxConfig,
    ) -> Result<Self, MailError> {
        match &global {
            Delivery::Smtp(s) if s.use_tls && s.use_ssl => {
                return Err(MailError::Settings(
                    "use_tls and use_ssl are both set".into(),
                ))
            }
            Delivery::MailDir(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| MailError::Settings(format!("{}: {e}", dir.display())))?,
            Delivery::Smtp(_) => {}
        }
        let workers = config.workers.max(1);
        let shared = Arc::new(Shared {
            store,
            clock,
            global,
            config,
            transports: Mutex::new(HashMap::new()),
            wake: (Mutex::new(0), Condvar::new()),
            stop: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("mail-{i}"))
                .spawn(move || s.work())
                .map_err(|e| MailError::Settings(format!("cannot start mail worker: {e}")))?;
            handles.push(h);
        }
        Ok(Self {
            shared,
            workers: Mutex::new(handles),
        })
    }

    /// Writes a message to the outbox and wakes a worker; returns at once. A
    /// Message-ID already queued or delivered is not queued again.
    pub fn enqueue(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let added = self
            .shared
            .store
            .outbox_push(&mail, self.shared.clock.now_ms())
            .map_err(|e| MailError::Store(e.to_string()))?;
        if added {
            self.shared.notify();
        }
        Ok(())
    }

    /// Waits until no message is due or being delivered (retries scheduled later
    /// do not count), at most `timeout`. Whether that point was reached.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.shared.clock.now_ms();
            let idle = self.shared.busy.load(Ordering::SeqCst) == 0
                && self
                    .shared
                    .store
                    .outbox_counts()
                    .is_ok_and(|c| c.sending == 0)
                && self
                    .shared
                    .store
                    .outbox_next_due()
                    .is_ok_and(|d| d.is_none_or(|t| t > now));
            if idle {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.shared.notify();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the workers after the messages they hold; queued mail stays in the outbox.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.notify();
        for h in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = h.join();
        }
    }
}

impl Drop for MailQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_in_the_upper_half() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ms(1, 1.0), 1000);
        assert_eq!(p.backoff_ms(1, 0.0), 500);
        assert_eq!(p.backoff_ms(3, 1.0), 4000);
        assert_eq!(p.backoff_ms(30, 1.0), 300_000);
        assert_eq!(p.backoff_ms(30, 0.0), 150_000);
    }
}

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

/// Sends one message now, bypassing the outbox (authentik's `ak test_email`), with
/// the settings of email stage `stage` (whose configuration uses authentik's field
/// names) or the global ones. Returns a line describing where it went.
pub fn test_email(
    cfg: &crate::config::HostConfig,
    to: &str,
    stage: Option<&str>,
) -> Result<String, TestEmailError> {
    use lettre::message::{Mailbox, Message, MultiPart};
    let settings = |e: String| TestEmailError::Settings(e);
    let (route, from) = match stage {
        None => (MailRoute::Global, cfg.mail.from.clone()),
        Some(name) => {
            let def = cfg
                .stages
                .iter()
                .find(|s| s.name == name && s.kind == "email")
                .ok_or_else(|| TestEmailError::NoStage(name.to_string()))?;
            let c = &def.config;
            let text =
                |k: &str, d: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
            let flag = |k: &str| c.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            if flag("use_global_settings") {
                (MailRoute::Global, cfg.mail.from.clone())
            } else {
                let port = c.get("port").and_then(|v| v.as_u64()).unwrap_or(25);
                let s = SmtpSettings {
                    host: text("host", "localhost"),
                    port: u16::try_from(port).map_err(|_| settings(format!("port {port}")))?,
                    username: text("username", ""),
                    password: text("password", ""),
                    use_tls: flag("use_tls"),
                    use_ssl: flag("use_ssl"),
                    timeout_secs: c.get("timeout").and_then(|v| v.as_u64()).unwrap_or(10),
                };
                (
                    MailRoute::Smtp(s),
                    text("from_address", "system@authentik.local"),
                )
            }
        }
    };
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
    let mut roots = Vec::new();
    if let Some(f) = &cfg.mail.ca_file {
        roots.push(std::fs::read(f).map_err(|e| settings(format!("{}: {e}", f.display())))?);
    }
    let global = cfg.delivery().map_err(|e| settings(e.to_string()))?;
    let smtp_send = |s: &SmtpSettings| {
        let t = smtp_transport(s, &roots, 1).map_err(|e| settings(e.to_string()))?;
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
    match (&route, &global) {
        (MailRoute::Smtp(s), _) | (MailRoute::Global, Delivery::Smtp(s)) => smtp_send(s),
        (MailRoute::Global, Delivery::MailDir(dir)) => {
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
