//! Lists of one Exchange service shared for a moment between the callers of one client: its
//! connectors, and (where the server expands lists) its accounts and domains. When many
//! resources of one service reconcile together (start-up, a resync, tasks ending), one read of
//! each list serves them all. Concurrent readers wait for the read in flight instead of
//! sending their own. A reader that wrote says from when on it needs a list (`not_before`,
//! after its write), so its own writes always show to it, and other readers' writes never cost
//! it a read.
use super::error::OvhError;
use super::model::{Account, Domain, SendConnector};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a list serves other readers, by default: short enough that what OVH changes by
/// itself (a task finishing, an edit in the control panel) shows at the next poll.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// The resync tick the current reconcile answers (see [`in_resync_wave`]).
    static WAVE: Instant;
}

/// Runs `work` (the reconcile of a resource at rest, woken by the resync tick at `tick`) so
/// that a list read since that tick serves it even once older than the usual TTL: a thousand
/// resources take longer than the TTL to reconcile, and each kind of list would be read
/// again for the late ones. Drift is still found within one interval (ticks are at least 0.9
/// intervals apart); a writer's own `not_before` still holds.
pub async fn in_resync_wave<F: Future>(tick: Option<Instant>, work: F) -> F::Output {
    match tick {
        Some(tick) => WAVE.scope(tick, work).await,
        None => work.await,
    }
}

/// A list of the service's connectors, and when the read that produced it went out to OVH
/// (its first request got its token): anything OVH had applied by then shows in it.
#[derive(Clone, Debug)]
pub struct Listing {
    /// Shared by every reader of the list, never copied for one.
    pub connectors: Arc<Vec<SendConnector>>,
    pub read_at: Instant,
}

/// A shared list of one kind (accounts, domains: large, so never copied), and when its read
/// went out.
#[derive(Debug)]
pub struct Snapshot<T> {
    pub items: Arc<Vec<T>>,
    pub read_at: Instant,
}

impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Self {
            items: self.items.clone(),
            read_at: self.read_at,
        }
    }
}

/// The last list of one service. The lock is held while reading, so concurrent readers share
/// one request; the read goes with the urgency of the most urgent reader waiting for it (see
/// [`super::budget`]), so a recent change is not served after a bulk one's readers.
#[derive(Debug)]
struct Slot<T> {
    value: tokio::sync::Mutex<Option<Snapshot<T>>>,
    /// The urgencies of the readers in `get`, with their counts.
    readers: Arc<Mutex<std::collections::BTreeMap<Instant, usize>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: tokio::sync::Mutex::default(),
            readers: Arc::default(),
        }
    }
}

/// A reader's urgency, counted in its slot while it waits or reads.
struct Reader<'a> {
    readers: &'a Mutex<std::collections::BTreeMap<Instant, usize>>,
    urgency: Instant,
}

impl<'a> Reader<'a> {
    fn enter(readers: &'a Mutex<std::collections::BTreeMap<Instant, usize>>) -> Self {
        let urgency = super::budget::current_urgency().unwrap_or_else(Instant::now);
        *lock(readers).entry(urgency).or_default() += 1;
        Self { readers, urgency }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut readers = lock(self.readers);
        if let Some(n) = readers.get_mut(&self.urgency) {
            *n -= 1;
            if *n == 0 {
                readers.remove(&self.urgency);
            }
        }
    }
}

fn lock<V>(m: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lists of one kind, by service.
#[derive(Debug)]
struct Lists<T> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

impl<T> Default for Lists<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
        }
    }
}

impl<T> Lists<T> {
    fn slot(&self, service: &str) -> Arc<Slot<T>> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(service.to_owned()).or_default().clone()
    }

    /// A recent list read from `not_before` on if there is one, else `read`'s answer (`None`:
    /// the server cannot list this kind whole; nothing is kept).
    async fn get<F, Fut>(
        &self,
        ttl: Duration,
        service: &str,
        not_before: Option<Instant>,
        read: F,
    ) -> Result<Option<Snapshot<T>>, OvhError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<T>>, OvhError>>,
    {
        let slot = self.slot(service);
        let _reader = Reader::enter(&slot.readers);
        let mut value = slot.value.lock().await;
        let wave = WAVE.try_with(|tick| *tick).ok();
        if let Some(listing) = value.as_ref()
            && (listing.read_at.elapsed() < ttl || wave.is_some_and(|t| listing.read_at >= t))
            && not_before.is_none_or(|t| listing.read_at >= t)
        {
            return Ok(Some(listing.clone()));
        }
        let began = Instant::now();
        // The read waits for its token with the urgency of whoever waits for it, as it stands;
        // readers who wrote while it waited are served by it.
        let (items, sent) = super::budget::noting_first_token(super::budget::with_readers_urgency(
            slot.readers.clone(),
            read(),
        ))
        .await;
        let read_at = sent.unwrap_or(began);
        let Some(items) = items? else {
            *value = None;
            return Ok(None);
        };
        let listing = Snapshot {
            items: Arc::new(items),
            read_at,
        };
        *value = Some(listing.clone());
        Ok(Some(listing))
    }

    async fn invalidate(&self, service: &str) {
        *self.slot(service).value.lock().await = None;
    }
}

#[derive(Debug)]
pub struct SharedReads {
    ttl: Duration,
    connectors: Lists<SendConnector>,
    accounts: Lists<Account>,
    domains: Lists<Domain>,
}

impl Default for SharedReads {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl SharedReads {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            connectors: Lists::default(),
            accounts: Lists::default(),
            domains: Lists::default(),
        }
    }

    /// The connectors of `service`: a recent list read from `not_before` on if there is one,
    /// else `read`'s answer.
    pub async fn connectors<F, Fut>(
        &self,
        service: &str,
        not_before: Option<Instant>,
        read: F,
    ) -> Result<Listing, OvhError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<SendConnector>, OvhError>>,
    {
        let listing = self
            .connectors
            .get(self.ttl, service, not_before, || async {
                read().await.map(Some)
            })
            .await?;
        // (A connector read always answers a list.)
        Ok(listing.map_or_else(
            || Listing {
                connectors: Arc::default(),
                read_at: Instant::now(),
            },
            |l| Listing {
                connectors: l.items,
                read_at: l.read_at,
            },
        ))
    }

    /// Every account of `service`, as [`SharedReads::connectors`]; `None` when the server
    /// does not list them whole.
    pub async fn accounts<F, Fut>(
        &self,
        service: &str,
        not_before: Option<Instant>,
        read: F,
    ) -> Result<Option<Snapshot<Account>>, OvhError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<Account>>, OvhError>>,
    {
        self.accounts.get(self.ttl, service, not_before, read).await
    }

    /// Every domain of `service`, as [`SharedReads::accounts`].
    pub async fn domains<F, Fut>(
        &self,
        service: &str,
        not_before: Option<Instant>,
        read: F,
    ) -> Result<Option<Snapshot<Domain>>, OvhError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<Domain>>, OvhError>>,
    {
        self.domains.get(self.ttl, service, not_before, read).await
    }

    /// Forgets every list of `service`: the next readers read OVH.
    pub async fn invalidate(&self, service: &str) {
        self.connectors.invalidate(service).await;
        self.accounts.invalidate(service).await;
        self.domains.invalidate(service).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A read that waits for its token serves a reader whose write came while it waited: what
    /// it shows is OVH's state from when it went out.
    #[tokio::test(start_paused = true)]
    async fn a_read_waiting_for_its_token_serves_writes_made_meanwhile() {
        let shared = Arc::new(SharedReads::new(Duration::from_secs(2)));
        let budget = Arc::new(super::super::budget::Budget::new(
            super::super::budget::BudgetSettings {
                rate: 1.0,
                burst: 1,
            },
        ));
        budget.acquire().await;
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>, budget: Arc<super::super::budget::Budget>| async move {
            budget.acquire().await;
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        let first = {
            let (shared, reads, budget) = (shared.clone(), reads.clone(), budget.clone());
            tokio::spawn(async move { shared.connectors("s", None, || read(reads, budget)).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let wrote = Instant::now();
        let second = shared
            .connectors("s", Some(wrote), || read(reads.clone(), budget.clone()))
            .await
            .unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read serves both");
        assert!(second.read_at >= wrote && first.read_at == second.read_at);
    }

    #[tokio::test(start_paused = true)]
    async fn one_read_serves_concurrent_and_recent_readers_who_need_nothing_newer() {
        let shared = Arc::new(SharedReads::new(Duration::from_secs(2)));
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Vec::new())
        };
        let count = || reads.load(Ordering::SeqCst);
        let (a, b) = tokio::join!(
            shared.connectors("s", None, || read(reads.clone())),
            shared.connectors("s", None, || read(reads.clone()))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(count(), 1, "concurrent readers share the read");
        let first = shared
            .connectors("s", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 1, "a recent list serves");
        shared
            .connectors("s", Some(first.read_at), || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 1, "a list read from the instant asked for serves");
        shared
            .connectors("other", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 2, "services are apart");
        // A reader that wrote after the list was read needs a newer one; others do not.
        let wrote = Instant::now();
        let after = shared
            .connectors("s", Some(wrote), || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(
            count(),
            3,
            "a list older than the reader's write does not serve it"
        );
        assert!(after.read_at >= wrote);
        shared
            .connectors("s", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 3, "the newer list serves the others");
        shared.invalidate("s").await;
        shared
            .connectors("s", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 4, "a forgotten list does not serve");
        tokio::time::advance(Duration::from_secs(3)).await;
        shared
            .connectors("s", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 5, "an old list does not serve");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resync_wave_is_served_the_list_read_since_its_tick_however_long_it_lasts() {
        let shared = Arc::new(SharedReads::new(Duration::from_secs(2)));
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        let count = || reads.load(Ordering::SeqCst);
        // A reader of the wave of `tick` that needs a list read from `not_before` on.
        let in_wave = |tick: Instant, not_before: Option<Instant>| {
            let (shared, reads) = (shared.clone(), reads.clone());
            async move {
                in_resync_wave(
                    Some(tick),
                    shared.connectors("s", not_before, || read(reads)),
                )
                .await
                .unwrap();
            }
        };
        let tick = Instant::now();
        in_wave(tick, None).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        in_wave(tick, None).await;
        assert_eq!(
            count(),
            1,
            "the wave's list serves it past the usual two seconds"
        );
        shared
            .connectors("s", None, || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(count(), 2, "outside a wave, the list is too old");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let next_tick = Instant::now();
        in_wave(next_tick, None).await;
        assert_eq!(
            count(),
            3,
            "a list read before the wave's tick does not serve it"
        );
        let wrote = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        in_wave(next_tick, Some(wrote)).await;
        assert_eq!(
            count(),
            4,
            "a writer still needs a list read after its write"
        );
    }
}
