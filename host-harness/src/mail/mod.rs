//! Mail delivery from the durable outbox. Imports `storage` and `system`.
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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lettre::{FileTransport, SmtpTransport, Transport};
use plugin_api::SmtpSettings;
use serde_json::json;

use crate::storage::{
    Claim, Event, Finish, HostStore, OutboxOutcome, OutboxRow, StoreError, StoredToken,
};
use crate::system::clock::Clock;
use crate::system::metrics::metrics;

pub mod maildir;
mod route;
mod smtp;
mod test_email;

pub use route::{MailRoutes, QueuedMail, RouteRef};
use smtp::{classify, envelope, settings_key};
pub use smtp::{smtp_transport, Failure};
pub use test_email::{test_email, TestEmailError};

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
    /// The outbox could not be written; the store's error says why.
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
}

/// What a request needs of mail: queue a plugin's message, sent by a stage
/// binding, for delivery outside the request. [`MailQueue`] is the host's; another
/// host (or a test) may put its own behind the same seam.
pub trait Mailer: Send + Sync {
    /// Queues `mail` from `stage`; returns at once. A stage's own SMTP settings are
    /// kept in memory and the stored row names the stage (no credential is
    /// written). `token`, the flow token the mail's link carries, is stored in the
    /// same transaction when given.
    fn queue(
        &self,
        stage: &str,
        mail: &plugin_api::OutgoingMail,
        token: Option<&StoredToken>,
    ) -> Result<(), MailError>;
}

impl Mailer for MailQueue {
    fn queue(
        &self,
        stage: &str,
        mail: &plugin_api::OutgoingMail,
        token: Option<&StoredToken>,
    ) -> Result<(), MailError> {
        self.enqueue_with(token, &self.routes().queued(stage, mail))
    }
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
    /// A new mail becomes due at a random moment within this long after it is
    /// queued (anti-enumeration: see [`MailQueue::enqueue`]).
    pub wake_jitter: Duration,
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
            wake_jitter: Duration::from_millis(200),
            retry: RetryPolicy::default(),
            extra_roots_pem: Vec::new(),
        }
    }
}

struct Shared {
    store: Arc<dyn HostStore>,
    clock: Arc<dyn Clock>,
    global: Delivery,
    routes: Arc<MailRoutes>,
    config: OutboxConfig,
    /// Worker iterations that panicked and were resumed.
    restarts: AtomicU64,
    /// Claim rounds run, by all workers.
    rounds: AtomicU64,
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

    fn deliver(&self, mail: &QueuedMail) -> Result<(), Failure> {
        let env = envelope(mail)?;
        let smtp = |s: &SmtpSettings| -> Result<(), Failure> {
            self.transport(s)?
                .send_raw(&env, &mail.raw)
                .map(drop)
                .map_err(|e| classify(&e))
        };
        let stage_settings;
        let settings = match (&mail.route, &self.global) {
            (RouteRef::Stage { stage }, _) => {
                stage_settings = self.routes.get(stage).ok_or_else(|| {
                    Failure::Transient(format!(
                        "no SMTP settings for stage '{stage}' in this configuration"
                    ))
                })?;
                &stage_settings
            }
            (RouteRef::Smtp(s), _) | (RouteRef::Global, Delivery::Smtp(s)) => s,
            (RouteRef::Global, Delivery::MailDir(dir)) => {
                return FileTransport::new(dir)
                    .send_raw(&env, &mail.raw)
                    .map(drop)
                    .map_err(|e| Failure::Transient(e.to_string()))
            }
        };
        smtp(settings)
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
        let started = Instant::now();
        let delivered = self.deliver(mail);
        let m = metrics();
        m.delivery_seconds.observe(started.elapsed().as_secs_f64());
        let (outcome, event) = match delivered {
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
                        "locale": mail.locale,
                    }),
                );
                m.delivery("sent");
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
                m.delivery("retry");
                (OutboxOutcome::Retry { at_ms, error }, None)
            }
            Err(failure) => {
                let (class, error) = match failure {
                    Failure::Transient(e) => ("dead_transient", e),
                    Failure::Permanent(e) => ("dead_permanent", e),
                };
                m.delivery(class);
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
        if let Err(e) = self.store.outbox_finish(Finish {
            id: row.id,
            outcome: &outcome,
            event: event.as_ref(),
        }) {
            // The lease runs out and the message is tried again.
            tracing::error!(target: "mail", error = %e, "cannot record delivery outcome");
        }
    }

    /// Claims and handles one batch; how many messages it held.
    fn round(&self) -> usize {
        let claimed = self.store.outbox_claim(Claim {
            now_ms: self.clock.now_ms(),
            lease_ms: self.config.lease_ms,
            limit: self.config.batch,
        });
        match claimed {
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
        }
    }

    /// A worker: rounds until stopped. A panic in a round is caught, logged and
    /// recorded as a `system_exception` event, and the worker goes on; a message it
    /// held comes back when its lease runs out.
    fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            self.busy.fetch_add(1, Ordering::SeqCst);
            self.rounds.fetch_add(1, Ordering::Relaxed);
            let got = match catch_unwind(AssertUnwindSafe(|| self.round())) {
                Ok(n) => n,
                Err(panic) => {
                    self.restarts.fetch_add(1, Ordering::SeqCst);
                    crate::system::metrics::metrics().worker_restarts.inc();
                    let detail = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    tracing::error!(target: "mail", error = %detail, "delivery worker panicked; resuming");
                    let event = Event {
                        action: "system_exception".into(),
                        context: json!({
                            "message": "A delivery worker failed and was restarted.",
                            "stage": "mail",
                            "error": detail,
                        }),
                        at_ms: self.clock.now_ms(),
                    };
                    let _ = catch_unwind(AssertUnwindSafe(|| self.store.add_event(&event)));
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

    /// When a mail queued now becomes due: a random moment within `wake_jitter`, so
    /// delivery work starts at a time unrelated to the request that queued it and a
    /// client cannot time it with its next request (a known address would otherwise
    /// slow the request right after its send, an unknown one's decoy would not).
    fn due(&self, now_ms: i64) -> i64 {
        let max = self.config.wake_jitter.as_millis() as u64;
        if max == 0 {
            return now_ms;
        }
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        now_ms.saturating_add((u64::from_le_bytes(b) % (max + 1)) as i64)
    }

    fn notify_one(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_one();
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
        routes: Arc<MailRoutes>,
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
            routes,
            config,
            restarts: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
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

    /// Writes a message to the outbox and wakes the workers; returns at once. A
    /// Message-ID already queued or delivered is not queued again. A decoy is
    /// written the same way (and wakes the workers the same way) but never sent.
    /// The message becomes due within [`OutboxConfig::wake_jitter`], at random: the
    /// delivery work a real mail causes then lands at a moment unrelated to the
    /// requests of whoever asked for it.
    pub fn enqueue(&self, mail: &QueuedMail) -> Result<(), MailError> {
        self.enqueue_with(None, mail)
    }

    /// [`MailQueue::enqueue`], storing `token` (the link the mail carries) in the
    /// same transaction when given: one durable commit for both.
    pub fn enqueue_with(
        &self,
        token: Option<&StoredToken>,
        mail: &QueuedMail,
    ) -> Result<(), MailError> {
        let now = self.shared.clock.now_ms();
        let due = self.shared.due(now);
        let store = &self.shared.store;
        let added = match token {
            Some(t) => store.outbox_push_with_token(t, mail, now, due),
            None => store.outbox_push(mail, now, due),
        }
        .map_err(MailError::Store)?;
        // A mail due later is found by a worker's next poll. Waking them all now
        // made every worker claim at once, on the request's time and on the store
        // the request uses (BENCHMARKS.md, "Where a send's time went").
        if added && due <= now {
            self.shared.notify_one();
        }
        Ok(())
    }

    /// The SMTP settings of the stages, by binding name.
    pub fn routes(&self) -> &MailRoutes {
        &self.shared.routes
    }

    /// Delivery workers still running, and how many were started (fewer after
    /// [`MailQueue::shutdown`], or if a worker thread ended for any other reason).
    pub fn workers_alive(&self) -> (usize, usize) {
        let w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let alive = w.iter().filter(|h| !h.is_finished()).count();
        (alive, self.shared.config.workers.max(1))
    }

    /// How many times the workers looked for due mail (one outbox claim each).
    pub fn claim_rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::Relaxed)
    }

    /// How many times a delivery worker panicked and was resumed.
    pub fn worker_restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::SeqCst)
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
                && self.shared.store.outbox_next_due().is_ok_and(|d| {
                    let soon = now + self.shared.config.wake_jitter.as_millis() as i64;
                    d.is_none_or(|t| t > soon)
                });
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
    use super::*;
    use crate::storage::MemoryStore;
    use crate::system::clock::ManualClock;

    fn queue(jitter_ms: u64, dir: &std::path::Path) -> MailQueue {
        let config = OutboxConfig {
            poll: Duration::from_secs(600),
            wake_jitter: Duration::from_millis(jitter_ms),
            ..Default::default()
        };
        MailQueue::start(
            Delivery::MailDir(dir.to_path_buf()),
            Arc::new(MailRoutes::default()),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(1_000)),
            config,
        )
        .unwrap()
    }

    fn mail(id: &str) -> QueuedMail {
        QueuedMail {
            message_id: format!("<{id}@x>"),
            envelope_from: "a@b.c".into(),
            envelope_to: vec!["d@e.f".into()],
            to_display: vec!["d@e.f".into()],
            subject: "s".into(),
            raw: b"Subject: s\r\n\r\nbody".to_vec(),
            route: RouteRef::Global,
            decoy: false,
            locale: String::new(),
        }
    }

    /// Settled: every worker ran its first round and sleeps.
    fn settled(q: &MailQueue) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while q.claim_rounds() < 4 || q.shared.busy.load(Ordering::SeqCst) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "workers did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        q.claim_rounds()
    }

    #[test]
    fn a_mail_due_later_wakes_no_worker_and_one_due_now_wakes_one() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(60_000, dir.path());
        let before = settled(&q);
        for i in 0..20 {
            q.enqueue(&mail(&format!("later{i}"))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(q.claim_rounds(), before, "enqueueing put no worker to work");
        let dir = tempfile::tempdir().unwrap();
        let q = queue(0, dir.path());
        let before = settled(&q);
        q.enqueue(&mail("now")).unwrap();
        // Not wait_idle: it pokes the workers itself.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while crate::mail::maildir::read_all(dir.path()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "not delivered before the poll"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let woke = q.claim_rounds() - before;
        assert!(
            (1..=2).contains(&woke),
            "one worker woke (a round to deliver, one to find nothing): {woke}"
        );
    }

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
