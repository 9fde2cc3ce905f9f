//! Fault policy of a plugin stage (Envoy's fail-open / fail-closed, per stage): what
//! a failing hook does to the flow, when a slow hook is reported, and quarantine
//! after repeated panics. Pure logic over times the caller passes in; the executor
//! does the I/O (events, metrics, logs).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What the flow does when a plugin hook panics or returns an error.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnPluginFailure {
    /// Fail closed: the flow answers its error (access denied after a panic, the
    /// flow error page after an error). The default, for every stage: an identity
    /// server does not wave a user past a check that could not run.
    #[default]
    Deny,
    /// Fail open: the stage is skipped and the flow goes on to its next stage. The
    /// failure is still recorded (`system_exception` event, log, metrics).
    Skip,
}

/// A stage's fault settings, as configured on its `[[stages]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPolicy {
    /// What a failing hook does.
    pub on_failure: OnPluginFailure,
    /// A hook that takes longer is reported (event, metric, log); 0 = never. A hook
    /// cannot be stopped once called: this reports, it does not cut.
    pub hook_timeout_ms: u64,
    /// Panics within `window_ms` that quarantine the stage; 0 = never.
    pub quarantine_after: u32,
    /// The window the panics are counted in.
    pub window_ms: u64,
    /// How long a quarantine lasts unless released earlier.
    pub cooldown_ms: u64,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        Self {
            on_failure: OnPluginFailure::Deny,
            hook_timeout_ms: 1_000,
            quarantine_after: 5,
            window_ms: 600_000,
            cooldown_ms: 300_000,
        }
    }
}

/// A quarantine in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantined {
    /// When it began, ms since the epoch.
    pub since_ms: i64,
    /// When it ends by itself.
    pub until_ms: i64,
    /// Operator releases of this stage already in the store when it began: one more
    /// ends it.
    pub releases_seen: usize,
}

/// Whether a stage is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not quarantined: the plugin is called.
    Open,
    /// Quarantined: the plugin is not called.
    InForce(Quarantined),
    /// The cool-down of this quarantine just ended (said once); the plugin is called.
    Ended(Quarantined),
}

/// How often, at most, a quarantined stage asks the store whether an operator
/// released it (`host-harness plugins release`).
pub const RELEASE_CHECK_MS: i64 = 1_000;

#[derive(Debug, Default)]
struct State {
    /// Times of the panics within the window, oldest first.
    panics: VecDeque<i64>,
    quarantine: Option<Quarantined>,
    last_release_check_ms: i64,
}

/// The panic history and quarantine of one stage binding, in this process.
#[derive(Debug, Default)]
pub struct Breaker(Mutex<State>);

impl Breaker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a panic at `now_ms`; the quarantine it starts, if this one reaches the
    /// policy's count within its window (`None` when already quarantined).
    pub fn panicked(&self, policy: &FaultPolicy, now_ms: i64) -> Option<Quarantined> {
        if policy.quarantine_after == 0 {
            return None;
        }
        let mut s = self.state();
        if s.quarantine.is_some() {
            return None;
        }
        let from = now_ms.saturating_sub(policy.window_ms as i64);
        while s.panics.front().is_some_and(|&t| t <= from) {
            s.panics.pop_front();
        }
        s.panics.push_back(now_ms);
        if s.panics.len() < policy.quarantine_after as usize {
            return None;
        }
        s.panics.clear();
        let q = Quarantined {
            since_ms: now_ms,
            until_ms: now_ms.saturating_add(policy.cooldown_ms as i64),
            releases_seen: 0,
        };
        s.quarantine = Some(q);
        s.last_release_check_ms = now_ms;
        Some(q)
    }

    /// Records how many operator releases the store held when the quarantine began.
    pub fn note_releases(&self, n: usize) {
        if let Some(q) = self.state().quarantine.as_mut() {
            q.releases_seen = n;
        }
    }

    /// The quarantine status at `now_ms`; one whose cool-down is over ends here.
    pub fn status(&self, now_ms: i64) -> Status {
        let mut s = self.state();
        match s.quarantine {
            Some(q) if now_ms >= q.until_ms => {
                s.quarantine = None;
                Status::Ended(q)
            }
            Some(q) => Status::InForce(q),
            None => Status::Open,
        }
    }

    /// Whether a quarantined stage should ask the store for a release now (at most
    /// once per [`RELEASE_CHECK_MS`]); marks the check as done.
    pub fn release_check_due(&self, now_ms: i64) -> bool {
        let mut s = self.state();
        if s.quarantine.is_none() || now_ms - s.last_release_check_ms < RELEASE_CHECK_MS {
            return false;
        }
        s.last_release_check_ms = now_ms;
        true
    }

    /// Ends the quarantine at once (an operator's release); whether one was in force.
    pub fn release(&self) -> bool {
        let mut s = self.state();
        s.panics.clear();
        s.quarantine.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(after: u32) -> FaultPolicy {
        FaultPolicy {
            quarantine_after: after,
            window_ms: 60_000,
            cooldown_ms: 10_000,
            ..Default::default()
        }
    }

    #[test]
    fn the_nth_panic_within_the_window_quarantines_until_the_cooldown_ends() {
        let b = Breaker::default();
        let p = policy(3);
        assert_eq!(b.panicked(&p, 1_000), None);
        assert_eq!(b.panicked(&p, 2_000), None);
        let q = b.panicked(&p, 3_000).expect("third panic quarantines");
        assert_eq!((q.since_ms, q.until_ms), (3_000, 13_000));
        b.note_releases(2);
        let q = Quarantined {
            releases_seen: 2,
            ..q
        };
        assert_eq!(b.status(12_999), Status::InForce(q));
        assert_eq!(b.panicked(&p, 4_000), None, "already quarantined");
        assert_eq!(b.status(13_000), Status::Ended(q), "cool-down over");
        assert_eq!(b.status(13_001), Status::Open);
        assert_eq!(b.panicked(&p, 14_000), None, "the count starts again");
    }

    #[test]
    fn panics_older_than_the_window_do_not_count() {
        let b = Breaker::default();
        let p = policy(2);
        assert_eq!(b.panicked(&p, 0), None);
        assert_eq!(b.panicked(&p, 60_000), None, "the first fell out");
        assert!(b.panicked(&p, 60_001).is_some());
    }

    #[test]
    fn zero_never_quarantines_and_release_ends_a_quarantine() {
        let b = Breaker::default();
        for t in 0..100 {
            assert_eq!(b.panicked(&policy(0), t), None);
        }
        assert!(b.panicked(&policy(1), 5).is_some());
        assert!(!b.release_check_due(5 + RELEASE_CHECK_MS - 1));
        assert!(b.release_check_due(5 + RELEASE_CHECK_MS));
        assert!(
            !b.release_check_due(5 + RELEASE_CHECK_MS),
            "once per period"
        );
        assert!(b.release());
        assert_eq!(b.status(6), Status::Open);
        assert!(!b.release());
    }
}
