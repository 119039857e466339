//! Faults injected into API requests: latency, error statuses, and connections closed without
//! an answer. A response carrying [`DropConnection`] is never written: the accept loop makes
//! hyper close the connection instead.
use super::Core;
use super::settings::FaultKind;

/// Marker extension: close the connection instead of sending this response.
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

/// The fault for a request, if any: consumes one use of the first matching rule that wins
/// its probability roll. Returns the latency to add too.
pub fn pick(core: &mut Core, method: &str, path: &str) -> (u64, Option<FaultKind>) {
    let latency = core.faults.latency_ms;
    let Core {
        faults,
        dice,
        fault_counts,
        ..
    } = core;
    for rule in &mut faults.rules {
        if rule.remaining == Some(0) {
            continue;
        }
        if rule
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(method))
        {
            continue;
        }
        if rule
            .path_contains
            .as_deref()
            .is_some_and(|p| !path.contains(p))
        {
            continue;
        }
        if let Some(p) = rule.probability
            && rand::Rng::random::<f64>(dice) >= p
        {
            continue;
        }
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
        }
        let kind = rule.kind.clone();
        *fault_counts.entry(kind.name().to_owned()).or_default() += 1;
        return (latency, Some(kind));
    }
    (latency, None)
}
