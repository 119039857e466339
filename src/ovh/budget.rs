//! The request budget: a token bucket per set of credentials, shared by every caller that uses
//! them, so that many resources together stay under OVH's fair use (about 60 requests a minute
//! per consumer key).
//!
//! When callers wait, the bucket does not serve them in arrival order alone: each request
//! carries the instant its resource's current change began ([`with_urgency`]), and tokens go
//! in turn to the most recent change and to the longest-waiting request. So a resource applied
//! while a bulk change drains the budget gets every other token and is done in moments,
//! while the bulk change keeps at least half of the budget and no request waits forever.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How urgent a request is: the instant its resource's change began (newer is more urgent),
/// fixed, or that of the most urgent of the readers a shared read is made for (it changes as
/// readers come and go while the read waits for its token).
#[derive(Clone, Debug)]
pub enum Urgency {
    Since(Instant),
    MostUrgentOf(Arc<Mutex<BTreeMap<Instant, usize>>>),
}

impl Urgency {
    fn now(&self) -> Option<Instant> {
        match self {
            Self::Since(t) => Some(*t),
            Self::MostUrgentOf(readers) => lock(readers).keys().next_back().copied(),
        }
    }
}

tokio::task_local! {
    /// The urgency of the current task's requests.
    static URGENCY: Urgency;
}

tokio::task_local! {
    /// When the current task's first request under [`noting_first_token`] got its token.
    static FIRST_TOKEN: std::cell::Cell<Option<Instant>>;
}

/// Runs `work` and says when its first request got its token (went out to OVH), if it made
/// one: what a list read shows is OVH's state from then on, not from when it began to wait.
pub async fn noting_first_token<F: Future>(work: F) -> (F::Output, Option<Instant>) {
    FIRST_TOKEN
        .scope(std::cell::Cell::new(None), async {
            let out = work.await;
            (out, FIRST_TOKEN.with(std::cell::Cell::get))
        })
        .await
}

fn note_token() {
    let _ = FIRST_TOKEN.try_with(|first| {
        if first.get().is_none() {
            first.set(Some(Instant::now()));
        }
    });
}

/// The instant the current task's change began, if it runs under [`with_urgency`].
pub fn current_urgency() -> Option<Instant> {
    URGENCY.try_with(Urgency::now).ok().flatten()
}

/// Runs `work` with its OVH requests marked as part of a change that began at `since`.
pub async fn with_urgency<F: Future>(since: Instant, work: F) -> F::Output {
    URGENCY.scope(Urgency::Since(since), work).await
}

/// Runs `work` (a read shared by several readers) with the urgency of the most urgent of
/// `readers`, as it stands whenever a token is handed out.
pub async fn with_readers_urgency<F: Future>(
    readers: Arc<Mutex<BTreeMap<Instant, usize>>>,
    work: F,
) -> F::Output {
    URGENCY.scope(Urgency::MostUrgentOf(readers), work).await
}

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
    tokens: f64,
    last: Instant,
    /// Requests waiting for a token.
    waiting: Vec<Waiter>,
    /// Whose turn the next token is: the most recent change's (`true`) or the longest
    /// waiter's.
    recent_turn: bool,
    /// Whether a dispatcher task hands out tokens to the waiters.
    dispatching: bool,
    next_seq: u64,
}

#[derive(Debug)]
struct Waiter {
    urgency: Urgency,
    /// When it started waiting: the urgency of a waiter whose readers are all gone.
    since: Instant,
    /// Arrival order.
    seq: u64,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl Bucket {
    fn refill(&mut self, settings: BudgetSettings) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * settings.rate).min(f64::from(settings.burst));
        self.last = now;
    }

    /// Hands the available tokens out, in turns; a waiter that gave up takes none.
    fn serve(&mut self) {
        while self.tokens >= 1.0 && !self.waiting.is_empty() {
            let pick = if self.recent_turn {
                self.waiting.iter().enumerate().max_by_key(|(_, w)| {
                    (w.urgency.now().unwrap_or(w.since), std::cmp::Reverse(w.seq))
                })
            } else {
                self.waiting.iter().enumerate().min_by_key(|(_, w)| w.seq)
            }
            .map_or(0, |(i, _)| i);
            let waiter = self.waiting.swap_remove(pick);
            if waiter.wake.send(()).is_ok() {
                self.tokens -= 1.0;
                self.recent_turn = !self.recent_turn;
            }
        }
    }
}

/// A token bucket. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Budget {
    settings: BudgetSettings,
    bucket: Arc<Mutex<Bucket>>,
}

impl Budget {
    pub fn new(settings: BudgetSettings) -> Self {
        let settings = BudgetSettings {
            rate: settings.rate.max(0.001),
            burst: settings.burst.max(1),
        };
        Self {
            settings,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(settings.burst),
                last: Instant::now(),
                waiting: Vec::new(),
                recent_turn: true,
                dispatching: false,
                next_seq: 0,
            })),
        }
    }

    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Takes one request's token, waiting as long as needed; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        let urgency = URGENCY
            .try_with(Urgency::clone)
            .unwrap_or(Urgency::Since(started));
        let woken = {
            let mut b = lock(&self.bucket);
            b.refill(self.settings);
            if b.waiting.is_empty() && b.tokens >= 1.0 {
                b.tokens -= 1.0;
                note_token();
                return Duration::ZERO;
            }
            let (wake, woken) = tokio::sync::oneshot::channel();
            let seq = b.next_seq;
            b.next_seq += 1;
            b.waiting.push(Waiter {
                urgency,
                since: started,
                seq,
                wake,
            });
            if !b.dispatching {
                b.dispatching = true;
                tokio::spawn(dispatch(self.bucket.clone(), self.settings));
            }
            woken
        };
        // The dispatcher never drops a waiter without waking it, but it may stop with the
        // runtime: then there is nothing left to wait for.
        let _ = woken.await;
        note_token();
        started.elapsed()
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Hands tokens to the waiters as the bucket refills, until none waits.
async fn dispatch(bucket: Arc<Mutex<Bucket>>, settings: BudgetSettings) {
    loop {
        let wait = {
            let mut b = lock(&bucket);
            b.refill(settings);
            b.serve();
            if b.waiting.is_empty() {
                b.dispatching = false;
                return;
            }
            Duration::from_secs_f64((1.0 - b.tokens).max(0.0) / settings.rate)
        };
        tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
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

    /// A change applied while a bulk one waits gets every other token; the bulk change keeps
    /// the others, longest-waiting first.
    #[tokio::test(start_paused = true)]
    async fn a_recent_change_goes_between_the_requests_of_a_bulk_one() {
        let budget = Arc::new(Budget::new(BudgetSettings {
            rate: 1.0,
            burst: 1,
        }));
        let bulk_began = Instant::now();
        budget.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(with_urgency(bulk_began, async move {
                budget.acquire().await;
                order.lock().unwrap().push(format!("bulk{i}"));
            })));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let new_began = Instant::now();
        for i in 0..2 {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(with_urgency(new_began, async move {
                budget.acquire().await;
                order.lock().unwrap().push(format!("new{i}"));
            })));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            [
                "new0", "bulk0", "new1", "bulk1", "bulk2", "bulk3", "bulk4", "bulk5"
            ],
            "{order:?}"
        );
    }

    #[test]
    fn registry_shares_one_budget_per_identity() {
        let r = BudgetRegistry::new(BudgetSettings::default());
        assert!(Arc::ptr_eq(&r.budget_for("a"), &r.budget_for("a")));
        assert!(!Arc::ptr_eq(&r.budget_for("a"), &r.budget_for("b")));
    }
}
