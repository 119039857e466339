//! The results: one table on stdout, one JSON document.
use super::Plan;
use super::ovh_requests::{Minimum, Requests};
use super::tracker::ObjectWrites;
use super::workload::Workload;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One convergence from an empty OVH.
#[derive(Clone, Debug)]
pub struct Convergence {
    pub workload: Workload,
    pub rate: f64,
    /// From the operator's start to the last resource Ready.
    pub seconds: f64,
    pub bound_seconds: f64,
    pub minimum: Minimum,
    pub requests: Requests,
    /// By kind.
    pub writes: BTreeMap<String, ObjectWrites>,
    pub events: u64,
    pub peak_kib: u64,
    pub rss_kib: u64,
}

/// Resync intervals after convergence.
#[derive(Clone, Debug)]
pub struct AtRest {
    pub workload: Workload,
    pub resync_seconds: f64,
    pub intervals: u32,
    pub requests: Requests,
    pub k8s_writes: u64,
    pub events: u64,
    pub peak_kib: u64,
    pub rss_kib: u64,
}

/// The operator with nothing to do.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    pub peak_kib: u64,
    pub rss_kib: u64,
}

/// One more connector applied while L converges on a small budget.
#[derive(Clone, Copy, Debug)]
pub struct Fairness {
    pub rate: f64,
    pub delay_seconds: f64,
    /// From the probe's creation to its Ready (to the deadline when not `ready`).
    pub seconds: f64,
    pub ready: bool,
    /// L's resources Ready at that moment, of `others`.
    pub others_ready: usize,
    pub others: usize,
}

/// Everything one `make bench` measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub binary: String,
    pub cores: usize,
    pub resync_seconds: f64,
    pub convergence: Vec<Convergence>,
    pub at_rest: Vec<AtRest>,
    pub idle: Option<Idle>,
    pub fairness: Vec<Fairness>,
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The median of `values` (the lower middle one for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[(v.len() - 1) / 2]
    }
}

impl Convergence {
    fn resources(&self) -> u64 {
        (self.workload.connectors + self.workload.bindings) as u64
    }

    /// Kubernetes writes to the resources, summed over both kinds.
    pub fn k8s_writes(&self) -> ObjectWrites {
        let mut sum = ObjectWrites::default();
        for w in self.writes.values() {
            sum.objects += w.objects;
            sum.status += w.status;
            sum.finalizer += w.finalizer;
            sum.other += w.other;
        }
        sum
    }

    pub fn per_connector(&self) -> f64 {
        ratio(self.requests.on_connectors, self.workload.connectors as u64)
    }

    fn json(&self) -> Value {
        let k = self.k8s_writes();
        json!({
            "workload": self.workload.name,
            "rate": self.rate,
            "seconds": self.seconds,
            "boundSeconds": self.bound_seconds,
            "timeOverBound": self.seconds / self.bound_seconds,
            "ovh": requests_json(&self.requests),
            "minimum": {"writes": self.minimum.writes, "reads": self.minimum.reads, "total": self.minimum.total()},
            "requestsOverMinimum": ratio(self.requests.total(), self.minimum.total()),
            "requestsPerConnector": self.per_connector(),
            "k8sWrites": {
                "status": k.status, "finalizer": k.finalizer, "other": k.other,
                "perResource": ratio(k.total(), self.resources()),
                "byKind": self.writes.iter().map(|(kind, w)| (kind.clone(), json!({
                    "objects": w.objects, "status": w.status, "finalizer": w.finalizer, "other": w.other,
                    "statusSequences": w.sequences,
                }))).collect::<serde_json::Map<_, _>>(),
            },
            "events": self.events,
            "peakRssMiB": mib(self.peak_kib),
            "rssMiB": mib(self.rss_kib),
        })
    }
}

impl AtRest {
    /// OVH reads (every GET) per service per resync interval.
    pub fn reads_per_service_interval(&self) -> f64 {
        ratio(
            self.requests.all_reads(),
            self.workload.services as u64 * u64::from(self.intervals),
        )
    }
}

fn requests_json(r: &Requests) -> Value {
    json!({
        "writes": r.writes, "reads": r.reads, "taskPolls": r.task_polls, "taskLists": r.task_lists,
        "total": r.total(), "connectorRequests": r.on_connectors, "byRoute": r.by_route,
    })
}

impl Report {
    pub fn new(binary: &Path, plan: &Plan) -> Self {
        Self {
            binary: binary.display().to_string(),
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            resync_seconds: plan.resync.as_secs_f64(),
            convergence: Vec::new(),
            at_rest: Vec::new(),
            idle: None,
            fairness: Vec::new(),
        }
    }

    /// Convergence runs grouped by case, in the order they ran.
    fn cases(&self) -> Vec<Vec<&Convergence>> {
        let mut groups: Vec<Vec<&Convergence>> = Vec::new();
        for c in &self.convergence {
            match groups.iter_mut().find(|g| {
                g[0].workload.name == c.workload.name && g[0].rate.total_cmp(&c.rate).is_eq()
            }) {
                Some(group) => group.push(c),
                None => groups.push(vec![c]),
            }
        }
        groups
    }

    /// The table: medians over the runs of each case.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:>6} {:>4} | {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6} {:>5} | {:>7} {:>7} {:>6} | {:>7} | {:>12} {:>6} | {:>6}",
            "load",
            "req/s",
            "runs",
            "writes",
            "reads",
            "polls",
            "lists",
            "total",
            "min",
            "÷min",
            "time s",
            "bound s",
            "÷bound",
            "req/conn",
            "k8s w/res",
            "events",
            "peak MiB"
        );
        for group in self.cases() {
            let first = group[0];
            let med = |f: &dyn Fn(&Convergence) -> f64| median(group.iter().map(|c| f(c)));
            #[allow(clippy::cast_precision_loss)]
            let count = |f: &dyn Fn(&Requests) -> u64| med(&|c| f(&c.requests) as f64);
            let writes = |c: &Convergence| {
                let k = c.k8s_writes();
                (
                    ratio(k.status, c.resources()),
                    ratio(k.finalizer + k.other, c.resources()),
                )
            };
            let _ = writeln!(
                out,
                "{:<4} {:>6} {:>4} | {:>6.0} {:>6.0} {:>6.0} {:>6.0} {:>6.0} | {:>6} {:>5.2} | {:>7.1} {:>7.1} {:>6.2} | {:>7.2} | {:>5.2}+{:<4.2}  {:>6.0} | {:>6.1}",
                first.workload.name,
                first.rate,
                group.len(),
                count(&|r| r.writes),
                count(&|r| r.reads),
                count(&|r| r.task_polls),
                count(&|r| r.task_lists),
                count(&Requests::total),
                first.minimum.total(),
                med(&|c| ratio(c.requests.total(), c.minimum.total())),
                med(&|c| c.seconds),
                first.bound_seconds,
                med(&|c| c.seconds / c.bound_seconds),
                med(&Convergence::per_connector),
                med(&|c| writes(c).0),
                med(&|c| writes(c).1),
                med(&|c| ratio(c.events, 1)),
                med(&|c| mib(c.peak_kib)),
            );
        }
        if !self.at_rest.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "at rest, {} resync intervals of {} s: {:<4} {:>22} {:>8} {:>10} {:>7} {:>8}",
                self.at_rest[0].intervals,
                self.resync_seconds,
                "load",
                "OVH reads/service/int",
                "writes",
                "k8s writes",
                "events",
                "RSS MiB"
            );
            for r in &self.at_rest {
                let _ = writeln!(
                    out,
                    "{:>37} {:<4} {:>22.1} {:>8} {:>10} {:>7} {:>8.1}",
                    "",
                    r.workload.name,
                    r.reads_per_service_interval(),
                    r.requests.writes,
                    r.k8s_writes,
                    r.events,
                    mib(r.rss_kib)
                );
            }
        }
        if let Some(idle) = self.idle {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "idle operator (no resources): RSS {:.1} MiB, peak {:.1} MiB",
                mib(idle.rss_kib),
                mib(idle.peak_kib)
            );
        }
        if let Some(first) = self.fairness.first() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "fairness: L at {} req/s, one more SendConnector after {} s: Ready in {:.1} s (median of {}; runs: {})",
                first.rate,
                first.delay_seconds,
                median(self.fairness.iter().map(|f| f.seconds)),
                self.fairness.len(),
                self.fairness
                    .iter()
                    .map(|f| format!(
                        "{:.1} s, {}/{} of L Ready",
                        f.seconds, f.others_ready, f.others
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        out
    }

    /// Every run, with the medians of each case.
    pub fn json(&self) -> Value {
        let cases: Vec<Value> = self
            .cases()
            .iter()
            .map(|group| {
                let first = group[0];
                json!({
                    "workload": first.workload.name,
                    "rate": first.rate,
                    "medianSeconds": median(group.iter().map(|c| c.seconds)),
                    "medianTimeOverBound": median(group.iter().map(|c| c.seconds / c.bound_seconds)),
                    "medianRequestsOverMinimum": median(group.iter().map(|c| ratio(c.requests.total(), c.minimum.total()))),
                    "runs": group.iter().map(|c| c.json()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "binary": self.binary,
            "cores": self.cores,
            "resyncSeconds": self.resync_seconds,
            "simulator": {
                "latencyMs": super::rig::LATENCY_MS,
                "taskTodoSeconds": super::rig::TASK_TODO_SECONDS,
                "taskDoingSeconds": super::rig::TASK_DOING_SECONDS,
            },
            "convergence": cases,
            "atRest": self.at_rest.iter().map(|r| json!({
                "workload": r.workload.name,
                "services": r.workload.services,
                "resyncSeconds": r.resync_seconds,
                "intervals": r.intervals,
                "ovh": requests_json(&r.requests),
                "readsPerServicePerInterval": r.reads_per_service_interval(),
                "k8sWrites": r.k8s_writes,
                "events": r.events,
                "rssMiB": mib(r.rss_kib),
                "peakRssMiB": mib(r.peak_kib),
            })).collect::<Vec<_>>(),
            "idle": self.idle.map(|i| json!({"rssMiB": mib(i.rss_kib), "peakRssMiB": mib(i.peak_kib)})),
            "fairness": self.fairness.iter().map(|f| json!({
                "rate": f.rate, "delaySeconds": f.delay_seconds, "seconds": f.seconds, "ready": f.ready,
                "othersReady": f.others_ready, "others": f.others,
            })).collect::<Vec<_>>(),
        })
    }
}
