//! When to try a request again: exponential backoff with full jitter, `Retry-After` honoured.
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// The first backoff's upper bound; each retry doubles it.
    pub base: Duration,
    /// No single wait is longer; a `Retry-After` above it is left to the caller (the
    /// controller requeues) rather than holding a request open.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (0-based), or `None` to give up.
    /// `jitter` is a number in `[0, 1)`, passed in so the function stays deterministic.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        if let Some(after) = retry_after {
            return (after <= self.max_delay).then_some(after);
        }
        let cap = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        // Full jitter, but never less than a tenth of the cap so retries do not bunch at zero.
        Some(cap.mul_f64(0.1 + 0.9 * jitter.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_stops() {
        let p = RetryPolicy {
            max_retries: 3,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
        };
        assert_eq!(p.delay(0, None, 1.0), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(1, None, 1.0), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(2, None, 1.0), Some(Duration::from_secs(3)));
        assert_eq!(p.delay(3, None, 1.0), None);
        assert_eq!(p.delay(1, None, 0.0), Some(Duration::from_millis(200)));
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(2)), 0.5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600)), 0.5), None);
    }
}
