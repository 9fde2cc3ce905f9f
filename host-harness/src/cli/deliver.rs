//! `deliver`: the mail delivery workers alone, over a configuration's outbox.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use host_harness::config;
use host_harness::mail::MailQueue;

/// Delivers until stopped, or with `until_idle` until nothing is due.
pub fn run(path: &Path, until_idle: bool) -> anyhow::Result<()> {
    let cfg = config::HostConfig::load(path)?;
    super::warn_if_not_durable(&cfg);
    // The stages' SMTP settings come from the stages themselves.
    let plugins = config::load_plugins(&cfg)?;
    let routes = config::mail_routes(&config::validate(&cfg, &plugins)?);
    let b = config::Backends::from_config(&cfg)?;
    let store = b.store.clone();
    let queue = MailQueue::start(
        cfg.delivery()?,
        Arc::new(routes),
        b.store,
        b.clock,
        b.outbox,
    )?;
    loop {
        if until_idle && queue.wait_idle(Duration::from_secs(1)) {
            let c = store.outbox_counts()?;
            println!(
                "outbox idle: {} sent, {} pending, {} dead",
                c.sent, c.pending, c.dead
            );
            return Ok(());
        }
        if !until_idle {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
