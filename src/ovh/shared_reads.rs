//! Connector lists shared for a moment between the callers of one client: when many resources
//! of one Exchange service reconcile together (start-up, a resync, tasks ending), one read
//! serves them all. Concurrent readers wait for the read in flight instead of sending their
//! own. A reader that wrote says from when on it needs a list (`not_before`, after its write),
//! so its own writes always show to it, and other readers' writes never cost it a read.
use super::error::OvhError;
use super::model::SendConnector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a list serves other readers, by default: short enough that what OVH changes by
/// itself (a task finishing, an edit in the control panel) shows at the next poll.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

/// A list of the service's connectors, and when the read that produced it started: anything
/// OVH had applied by then shows in it.
#[derive(Clone, Debug)]
pub struct Listing {
    pub connectors: Vec<SendConnector>,
    pub read_at: Instant,
}

#[derive(Debug, Default)]
struct Slot {
    /// The last list. The lock is held while reading, so concurrent readers share one
    /// request.
    value: tokio::sync::Mutex<Option<Listing>>,
}

#[derive(Debug)]
pub struct SharedReads {
    ttl: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
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
            slots: Mutex::default(),
        }
    }

    fn slot(&self, service: &str) -> Arc<Slot> {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(service.to_owned()).or_default().clone()
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
        let slot = self.slot(service);
        let mut value = slot.value.lock().await;
        if let Some(listing) = value.as_ref() {
            if listing.read_at.elapsed() < self.ttl
                && not_before.is_none_or(|t| listing.read_at >= t)
            {
                return Ok(listing.clone());
            }
        }
        let read_at = Instant::now();
        let connectors = read().await?;
        let listing = Listing {
            connectors,
            read_at,
        };
        *value = Some(listing.clone());
        Ok(listing)
    }

    /// Forgets the list of `service`: the next reader reads OVH.
    pub async fn invalidate(&self, service: &str) {
        *self.slot(service).value.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
}
