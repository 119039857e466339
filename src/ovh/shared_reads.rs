//! Connector lists shared for a moment between the callers of one client: when many resources
//! of one Exchange service reconcile together (start-up, a resync, a credentials change), one
//! read serves them all. Concurrent readers wait for the read in flight instead of sending
//! their own; a write through the client makes the next reader read again.
use super::error::OvhError;
use super::model::SendConnector;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a list serves other readers, by default: short enough that what OVH changes by
/// itself (a task finishing) shows at the next poll.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Slot {
    /// Bumped by every write: a list read before it is not served after it.
    generation: AtomicU64,
    /// The last list, with when and at which generation it was read. The lock is held while
    /// reading, so concurrent readers share one request.
    value: tokio::sync::Mutex<Option<(Instant, u64, Vec<SendConnector>)>>,
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

    /// The connectors of `service`: a recent list if there is one, else `read`'s answer.
    pub async fn connectors<F, Fut>(
        &self,
        service: &str,
        read: F,
    ) -> Result<Vec<SendConnector>, OvhError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<SendConnector>, OvhError>>,
    {
        let slot = self.slot(service);
        let mut value = slot.value.lock().await;
        let generation = slot.generation.load(Ordering::SeqCst);
        if let Some((at, read_at, list)) = value.as_ref() {
            if *read_at == generation && at.elapsed() < self.ttl {
                return Ok(list.clone());
            }
        }
        let list = read().await?;
        *value = Some((Instant::now(), generation, list.clone()));
        Ok(list)
    }

    /// A write to `service` happened (or may have): the next reader reads again.
    pub fn invalidate(&self, service: &str) {
        self.slot(service).generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn one_read_serves_concurrent_and_recent_readers_until_a_write() {
        let shared = Arc::new(SharedReads::new(Duration::from_secs(2)));
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(Vec::new())
        };
        let (a, b) = tokio::join!(
            shared.connectors("s", || read(reads.clone())),
            shared.connectors("s", || read(reads.clone()))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "concurrent readers share the read"
        );
        shared
            .connectors("s", || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "a recent list serves");
        shared
            .connectors("other", || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "services are apart");
        shared.invalidate("s");
        shared
            .connectors("s", || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            3,
            "a write makes the next reader read"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        shared
            .connectors("s", || read(reads.clone()))
            .await
            .unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            4,
            "an old list does not serve"
        );
    }
}
