//! The commands of `host-harness`, one file each. Only these, with `main.rs`,
//! import [`host_harness::config`]: the commands assemble the host, the library's
//! modules never do.

pub mod check;
pub mod check_plugin;
pub mod deliver;
pub mod demo;
pub mod import;
pub mod inspect;
pub mod new_plugin;
pub mod outbox;
pub mod plugins;
pub mod preview;
pub mod serve;
pub mod test_email;
pub mod users;

/// `memory://` keeps nothing across a restart: say so where an operator looks.
pub fn warn_if_not_durable(cfg: &host_harness::config::HostConfig) {
    if cfg.database == "memory://" {
        tracing::warn!(target: "config", "database = \"memory://\": users, tokens, sessions and queued mail are lost when the process stops");
        eprintln!("warning: database = \"memory://\" is not durable: users, tokens, sessions and queued mail are lost when the process stops");
    }
}
