//! The request budget: a token bucket per set of credentials, shared by every caller that uses
//! them, so that many resources together stay under OVH's fair use (about 60 requests a minute
//! per consumer key).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Rate and burst of a budget. The default (0.8/s, burst 10) allows at most
/// `10 + 0.8 * 60 = 58` requests in any minute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSettings {
    /// Sustained requests per second.
    pub rate: f64,
    /// Requests that may go at once after an idle period.
    pub burst: u32,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            rate: 0.8,
            burst: 10,
        }
    }
}

impl BudgetSettings {
    /// The most requests this budget can let through in any window of `window`.
    pub fn max_in(&self, window: Duration) -> f64 {
        f64::from(self.burst) + self.rate * window.as_secs_f64()
    }
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: each waiting caller reserves its token, so waiters are served in order.
    tokens: f64,
    last: Instant,
}

/// A token bucket. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Budget {
    settings: BudgetSettings,
    bucket: Mutex<Bucket>,
}

impl Budget {
    pub fn new(settings: BudgetSettings) -> Self {
        let settings = BudgetSettings {
            rate: settings.rate.max(0.001),
            burst: settings.burst.max(1),
        };
        Self {
            settings,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(settings.burst),
                last: Instant::now(),
            }),
        }
    }

    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Takes one request's token, waiting as long as needed; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Reserves a token and says how long until it may be used.
    fn reserve(&self) -> Duration {
        let mut b = match self.bucket.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.settings.rate).min(f64::from(self.settings.burst));
        b.last = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.settings.rate)
        }
    }
}

/// One budget per credentials identity (see [`crate::ovh::Credentials::identity`]).
#[derive(Debug, Default)]
pub struct BudgetRegistry {
    settings: BudgetSettings,
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
}

impl BudgetRegistry {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            settings,
            budgets: Mutex::default(),
        }
    }

    /// The budget for these credentials, created on first use.
    pub fn budget_for(&self, identity: &str) -> Arc<Budget> {
        let mut map = match self.budgets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(identity.to_owned())
            .or_insert_with(|| Arc::new(Budget::new(self.settings)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With time paused, take tokens as fast as allowed for five minutes and check that no
    /// 60-second window ever holds more than the advertised maximum (58 with the defaults).
    #[tokio::test(start_paused = true)]
    async fn default_budget_stays_under_sixty_a_minute() {
        let budget = Arc::new(Budget::new(BudgetSettings::default()));
        let start = Instant::now();
        let mut times = Vec::new();
        while start.elapsed() < Duration::from_secs(300) {
            budget.acquire().await;
            times.push(start.elapsed());
        }
        let window = Duration::from_secs(60);
        let worst = times
            .iter()
            .enumerate()
            .map(|(i, t)| times[i..].iter().take_while(|u| **u < *t + window).count())
            .max()
            .unwrap();
        assert!(worst < 60, "{worst} requests in one minute");
        assert!(
            worst >= 57,
            "the budget should allow close to its rate, got {worst}"
        );
        assert!(
            f64::from(u32::try_from(worst).unwrap()) <= BudgetSettings::default().max_in(window)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn burst_goes_at_once_then_waits() {
        let budget = Budget::new(BudgetSettings {
            rate: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(budget.acquire().await, Duration::ZERO);
        }
        let waited = budget.acquire().await;
        assert!((waited.as_secs_f64() - 0.5).abs() < 0.01, "{waited:?}");
    }

    #[test]
    fn registry_shares_one_budget_per_identity() {
        let r = BudgetRegistry::new(BudgetSettings::default());
        assert!(Arc::ptr_eq(&r.budget_for("a"), &r.budget_for("a")));
        assert!(!Arc::ptr_eq(&r.budget_for("a"), &r.budget_for("b")));
    }
}
