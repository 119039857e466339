//! The operator's Prometheus metrics. Labels are kinds, routes, methods, statuses and error
//! categories: never a resource name, namespace, id or address, so the series count stays
//! small whatever the number of resources.
use crate::crd::conditions::{Condition, find_condition, is_ready_for_generation, types};
use crate::ovh::client::{Attempt, RequestObserver};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The conditions `sendconnector_resources` counts resources by, in this order of precedence.
pub const RESOURCE_CONDITIONS: [&str; 5] = ["paused", "stalled", "ready", "reconciling", "unknown"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    function: String,
    result: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_buckets() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

fn reconcile_buckets() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

fn task_buckets() -> Histogram {
    Histogram::new([1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0])
}

/// Every metric the operator updates as it works. Cheap to clone: clones share the values.
#[derive(Clone, Debug)]
pub struct Metrics {
    ovh_requests: Family<RequestLabels, Counter>,
    ovh_request_duration: HistogramFamily<RouteLabels>,
    ovh_throttled: Counter,
    ovh_budget_wait: Histogram,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<KindLabels>,
    drift_corrections: Family<KindLabels, Counter>,
    task_duration: HistogramFamily<TaskLabels>,
    leader: Gauge,
}

impl Metrics {
    /// New metrics, registered in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            ovh_requests: Family::default(),
            ovh_request_duration: Family::new_with_constructor(request_buckets),
            ovh_throttled: Counter::default(),
            ovh_budget_wait: Histogram::new([
                0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_buckets),
            drift_corrections: Family::default(),
            task_duration: Family::new_with_constructor(task_buckets),
            leader: Gauge::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "sendconnector_ovh_requests",
            "OVH API requests (each attempt), by method, route template and HTTP status (`transport` when no answer came)",
            metrics.ovh_requests.clone(),
        );
        registry.register(
            "sendconnector_ovh_request_duration_seconds",
            "Time from sending an OVH API request to its full answer, by method and route template",
            metrics.ovh_request_duration.clone(),
        );
        registry.register(
            "sendconnector_ovh_throttled",
            "OVH API requests answered 429 Too Many Requests",
            metrics.ovh_throttled.clone(),
        );
        registry.register(
            "sendconnector_ovh_budget_wait_seconds",
            "Time OVH API requests waited for the request budget before being sent",
            metrics.ovh_budget_wait.clone(),
        );
        registry.register(
            "sendconnector_reconciles",
            "Reconciles run, by kind",
            metrics.reconciles.clone(),
        );
        registry.register(
            "sendconnector_reconcile_errors",
            "Reconciles that ended with an error, by kind and error category",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "sendconnector_reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "sendconnector_drift_corrections",
            "Changes made outside the operator (OVH control panel) that it put back, by kind",
            metrics.drift_corrections.clone(),
        );
        registry.register(
            "sendconnector_ovh_task_duration_seconds",
            "Time OVH tasks took from first sight to their end, by task function and result (done, error, cancelled)",
            metrics.task_duration.clone(),
        );
        registry.register(
            "sendconnector_leader",
            "1 when this instance leads (reconciles), 0 while it stands by",
            metrics.leader.clone(),
        );
        metrics
    }

    /// One reconcile of `kind` ended after `duration`, with an error of `error_category` or
    /// none.
    pub fn reconciled(&self, kind: &str, duration: Duration, error_category: Option<&str>) {
        let kind_labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&kind_labels).inc();
        self.reconcile_duration
            .get_or_create(&kind_labels)
            .observe(duration.as_secs_f64());
        if let Some(category) = error_category {
            self.reconcile_failed(kind, category);
        }
    }

    /// A reconcile of `kind` met an error of `category` ([`crate::controller::Error::category`])
    /// that it reported in the resource's status instead of returning it. (Errors that a
    /// reconcile returns are counted by [`Self::reconciled`].)
    pub fn reconcile_failed(&self, kind: &str, category: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_owned(),
                category: category.to_owned(),
            })
            .inc();
    }

    /// A drift (a change made outside the operator) was put back on a resource of `kind`.
    pub fn drift_corrected(&self, kind: &str) {
        self.drift_corrections
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// An OVH task of `function` (e.g. `addSendConnector`) ended with `result` (`done`,
    /// `error`, `cancelled`) after `duration`.
    pub fn task_finished(&self, function: &str, result: &str, duration: Duration) {
        self.task_duration
            .get_or_create(&TaskLabels {
                function: function.to_owned(),
                result: result.to_owned(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }
}

/// The metrics of each OVH request attempt, and an audit line for each write.
impl RequestObserver for Metrics {
    fn attempt(&self, attempt: &Attempt<'_>) {
        let method = attempt.method.as_str();
        let status = match (attempt.status, attempt.error) {
            (Some(code), _) => code.to_string(),
            (None, Some("timeout" | "transport")) => "transport".to_owned(),
            (None, Some(other)) => other.to_owned(),
            (None, None) => "unknown".to_owned(),
        };
        self.ovh_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: attempt.route.to_owned(),
                status: status.clone(),
            })
            .inc();
        self.ovh_request_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: attempt.route.to_owned(),
            })
            .observe(attempt.elapsed.as_secs_f64());
        self.ovh_budget_wait
            .observe(attempt.budget_wait.as_secs_f64());
        if attempt.status == Some(429) {
            self.ovh_throttled.inc();
        }
        if attempt.method != http::Method::GET {
            // The audit trail of OVH writes. It is logged inside the reconcile's span, which
            // names the resource; a reconciler may add a span with a `why` field.
            tracing::info!(
                method,
                route = attempt.route,
                status,
                result = attempt.error.unwrap_or("ok"),
                query_id = attempt.query_id.unwrap_or(""),
                retries = attempt.retries,
                "OVH write"
            );
        }
    }
}

/// Counts of resources per kind and condition, computed when scraped.
pub type ResourceCounts = Vec<(&'static str, &'static str, i64)>;

type CountFn = Box<dyn Fn() -> ResourceCounts + Send + Sync>;

/// `sendconnector_resources`, from a function that reads the reflector stores at scrape time
/// (no state per object is kept for it).
#[derive(Clone, Default)]
pub(super) struct ResourceCollector {
    count: Arc<Mutex<Option<CountFn>>>,
}

impl fmt::Debug for ResourceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceCollector").finish_non_exhaustive()
    }
}

impl ResourceCollector {
    pub(super) fn set(&self, count: CountFn) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) = Some(count);
    }
}

impl Collector for ResourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counts = {
            let count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
            match count.as_ref() {
                Some(count) => count(),
                None => return Ok(()),
            }
        };
        let mut metric = encoder.encode_descriptor(
            "sendconnector_resources",
            "Resources by kind and condition (ready, reconciling, stalled, paused, unknown), from the operator's caches",
            None,
            MetricType::Gauge,
        )?;
        for (kind, condition, n) in counts {
            let labels = [("kind", kind), ("condition", condition)];
            let family = metric.encode_family(&labels)?;
            ConstGauge::new(n).encode(family)?;
        }
        Ok(())
    }
}

/// Which of [`RESOURCE_CONDITIONS`] a resource is in: `paused` (annotation), `stalled`
/// (Stalled=True), `ready` (Ready=True for its current generation), `unknown` (no Ready
/// condition yet), otherwise `reconciling`.
pub fn resource_condition(
    paused: bool,
    conditions: &[Condition],
    generation: Option<i64>,
) -> &'static str {
    if paused {
        "paused"
    } else if find_condition(conditions, types::STALLED).is_some_and(Condition::is_true) {
        "stalled"
    } else if is_ready_for_generation(conditions, generation) {
        "ready"
    } else if find_condition(conditions, types::READY).is_none() {
        "unknown"
    } else {
        "reconciling"
    }
}

/// Counts per condition of one kind, every condition present (zeros included) so alerts
/// and dashboards see a series from the start.
pub fn count_conditions(
    kind: &'static str,
    conditions: impl IntoIterator<Item = &'static str>,
) -> ResourceCounts {
    let mut counts: ResourceCounts = RESOURCE_CONDITIONS.iter().map(|c| (kind, *c, 0)).collect();
    for condition in conditions {
        if let Some(entry) = counts.iter_mut().find(|(_, c, _)| *c == condition) {
            entry.2 += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::conditions::ConditionStatus;

    fn cond(type_: &str, status: ConditionStatus, generation: i64) -> Condition {
        Condition::new(type_, status, "Reason", "").with_generation(Some(generation))
    }

    #[test]
    fn conditions_by_precedence() {
        let ready = [cond(types::READY, ConditionStatus::True, 2)];
        assert_eq!(resource_condition(false, &ready, Some(2)), "ready");
        assert_eq!(resource_condition(false, &ready, Some(3)), "reconciling");
        assert_eq!(resource_condition(true, &ready, Some(2)), "paused");
        assert_eq!(resource_condition(false, &[], Some(1)), "unknown");
        let stalled = [
            cond(types::READY, ConditionStatus::False, 1),
            cond(types::STALLED, ConditionStatus::True, 1),
        ];
        assert_eq!(resource_condition(false, &stalled, Some(1)), "stalled");
        let counts = count_conditions("SendConnector", ["ready", "ready", "stalled"]);
        assert!(counts.contains(&("SendConnector", "ready", 2)));
        assert!(counts.contains(&("SendConnector", "unknown", 0)));
        assert_eq!(counts.len(), 5);
    }
}
