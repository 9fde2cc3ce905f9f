//! Events the store could not take when they happened (a database outage), kept in
//! memory, in order and bounded, and written as soon as the store answers again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::storage::{Event, Store};

/// Most events kept while the store is down; older ones give way (each is also
/// logged when it happens).
const MAX_SPOOLED: usize = 10_000;

/// The spool.
#[derive(Default)]
pub struct EventSpool {
    queue: Mutex<VecDeque<Event>>,
    pending: AtomicBool,
}

impl EventSpool {
    /// Writes `event` (after anything spooled before it), or keeps it for later.
    pub fn record(&self, store: &dyn Store, event: Event) {
        self.flush(store);
        if !self.pending.load(Ordering::SeqCst) {
            match store.add_event(&event) {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(target: "events", error = %e, action = %event.action, "cannot record the event; kept until the store answers");
                }
            }
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_SPOOLED {
            q.pop_front();
        }
        q.push_back(event);
        self.pending.store(true, Ordering::SeqCst);
    }

    /// Writes spooled events, oldest first, until the store fails again. Cheap when
    /// nothing is spooled.
    pub fn flush(&self, store: &dyn Store) {
        if !self.pending.load(Ordering::SeqCst) {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(e) = q.front() {
            if store.add_event(e).is_err() {
                return;
            }
            q.pop_front();
        }
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Events waiting for the store.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
