//! The reference decision of [`crate::Host::rate_limit`], for in-memory limiters
//! (the host's in-process cache and [`crate::testing::FakeHost`]). Remote caches do
//! the same in one atomic round trip.

use crate::types::RateLimit;

/// The sliding-window decision: drops attempts at or
/// before `now - window`, then either answers `Limited` (when `max` remain; nothing
/// recorded) or records `now`.
pub fn sliding_window(attempts: &mut Vec<i64>, window_ms: u64, max: u32, now_ms: i64) -> RateLimit {
    let window = window_ms.min(i64::MAX as u64) as i64;
    attempts.retain(|t| *t > now_ms.saturating_sub(window));
    if attempts.len() >= max as usize {
        let oldest = attempts.iter().copied().min().unwrap_or(now_ms);
        let retry = oldest.saturating_add(window).saturating_sub(now_ms).max(0) as u64;
        return RateLimit::Limited {
            retry_after_ms: retry,
        };
    }
    attempts.push(now_ms);
    RateLimit::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rules() {
        let mut a = Vec::new();
        assert_eq!(sliding_window(&mut a, 1000, 2, 0), RateLimit::Allowed);
        assert_eq!(sliding_window(&mut a, 1000, 2, 10), RateLimit::Allowed);
        assert_eq!(
            sliding_window(&mut a, 1000, 2, 20),
            RateLimit::Limited {
                retry_after_ms: 980
            }
        );
        assert_eq!(a, vec![0, 10], "a limited attempt is not recorded");
        assert_eq!(
            sliding_window(&mut a, 1000, 2, 1000),
            RateLimit::Allowed,
            "t > now - W strictly"
        );
    }
}
