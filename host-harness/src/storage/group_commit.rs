//! Group commit: writes that concurrent callers submit while a transaction is being
//! committed wait for it, then go out together in the next one. Each caller still
//! returns only after the transaction holding its write committed, so durability is
//! what one transaction per write gives, at the cost of one commit per batch.
//!
//! Leader and followers, no thread of its own: the first caller to find no batch in
//! flight takes everything queued and commits it; the others wait on a condition
//! variable for their result, and one of them leads the next batch.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::StoreError;

/// Batches writes of type `W` (see the module documentation).
pub(crate) struct GroupCommit<W> {
    state: Mutex<State<W>>,
    done: Condvar,
}

struct State<W> {
    queue: Vec<(u64, W)>,
    results: HashMap<u64, Result<bool, StoreError>>,
    next_id: u64,
    leading: bool,
}

impl<W> Default for GroupCommit<W> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                results: HashMap::new(),
                next_id: 0,
                leading: false,
            }),
            done: Condvar::new(),
        }
    }
}

impl<W> GroupCommit<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write` and returns its result once the batch holding it is done.
    /// `commit` writes one batch, in submission order, in one transaction, and returns
    /// one result per write; a panic in it fails the whole batch.
    pub fn submit(
        &self,
        write: W,
        commit: impl Fn(Vec<W>) -> Vec<Result<bool, StoreError>>,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push((id, write));
        loop {
            if let Some(r) = st.results.remove(&id) {
                return r;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.leading = true;
            let (ids, writes): (Vec<u64>, Vec<W>) =
                std::mem::take(&mut st.queue).into_iter().unzip();
            drop(st);
            let n = ids.len();
            let results = catch_unwind(AssertUnwindSafe(|| commit(writes)))
                .ok()
                .filter(|r| r.len() == n)
                .unwrap_or_else(|| {
                    (0..n)
                        .map(|_| Err(StoreError::backend_text("group commit failed")))
                        .collect()
                });
            st = self.lock();
            st.results.extend(ids.into_iter().zip(results));
            st.leading = false;
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn concurrent_writes_share_commits_and_each_gets_its_own_result() {
        let g = Arc::new(GroupCommit::<u32>::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8u32)
            .map(|t| {
                let (g, commits) = (g.clone(), commits.clone());
                std::thread::spawn(move || {
                    (0..50u32)
                        .map(|i| {
                            let w = t * 1000 + i;
                            let r = g.submit(w, |batch| {
                                commits.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                batch
                                    .iter()
                                    .map(|w| match w % 7 {
                                        0 => Err(StoreError::Conflict(w.to_string())),
                                        _ => Ok(w % 2 == 0),
                                    })
                                    .collect()
                            });
                            (w, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (w, r) in h.join().unwrap() {
                match r {
                    Err(StoreError::Conflict(s)) => assert_eq!((w % 7, s), (0, w.to_string())),
                    Ok(even) => assert_eq!((w % 7 != 0, even), (true, w % 2 == 0)),
                    Err(e) => panic!("{w}: {e}"),
                }
            }
        }
        let commits = commits.load(Ordering::SeqCst);
        assert!(
            commits < 400,
            "{commits} commits for 400 writes: nothing was grouped"
        );
    }

    #[test]
    fn a_panicking_commit_fails_its_batch_and_the_next_write_goes_through() {
        let g = GroupCommit::<u32>::default();
        let r = g.submit(1, |_| panic!("deliberate"));
        assert!(matches!(r, Err(StoreError::Backend { .. })), "{r:?}");
        assert!(g
            .submit(2, |b| b.iter().map(|_| Ok(true)).collect())
            .unwrap());
    }
}
