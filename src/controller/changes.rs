//! When each resource's current change began, which is the urgency of its OVH requests (see
//! [`crate::ovh::budget`]): a recent change goes ahead of a bulk one.
//!
//! Changes first seen close together are one *wave* and share its urgency: a `kubectl apply`
//! of many objects, or the objects an operator finds at its start. The budget then serves
//! their requests in turn, oldest waiter first, so the resources of a wave progress together
//! and end together, and one read of a shared list confirms many of them. Ordered by the
//! microseconds between their first sights instead, they would finish one by one, each
//! costing a list read of its own. A change seen alone later is a wave of its own, more urgent.
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A change first seen within this long of the previous one joins its wave.
pub const WAVE_GAP: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct Changes {
    /// Per resource uid: the generation being worked on and its wave's urgency.
    by_uid: HashMap<String, (i64, Instant)>,
    /// The current wave: its urgency, and when its last change was first seen.
    wave: Option<(Instant, Instant)>,
}

impl Changes {
    /// The urgency of `uid`'s change to `generation`, first seen `now` if not seen before.
    pub fn began(&mut self, uid: &str, generation: i64, now: Instant) -> Instant {
        if let Some((g, at)) = self.by_uid.get(uid)
            && *g == generation
        {
            return *at;
        }
        let at = match self.wave {
            Some((start, last)) if now.saturating_duration_since(last) < WAVE_GAP => start,
            _ => now,
        };
        self.wave = Some((at, now));
        self.by_uid.insert(uid.to_owned(), (generation, at));
        at
    }

    pub fn forget(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn changes_seen_close_together_share_the_first_ones_urgency() {
        let mut c = Changes::default();
        let t0 = Instant::now();
        assert_eq!(c.began("a", 1, t0), t0);
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(c.began("b", 1, t1), t0, "joins the wave");
        // Chained: within the gap of the last one seen, not of the first.
        assert_eq!(c.began("c", 1, t1 + Duration::from_millis(450)), t0);
        assert_eq!(
            c.began("a", 1, t0 + Duration::from_secs(30)),
            t0,
            "same change"
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(c.began("d", 1, later), later, "a wave of its own");
        assert_eq!(c.began("a", 2, later + Duration::from_millis(10)), later);
        c.forget("a");
        let again = later + Duration::from_secs(5);
        assert_eq!(c.began("a", 2, again), again, "forgotten: seen anew");
    }
}
