//! The convergence benchmark: `run` as its own process against the in-memory Kubernetes API
//! served over HTTP and the OVH simulator, for workloads S, L and XL at several request
//! budgets, at rest, and a fairness probe. It counts OVH requests by kind, Kubernetes writes
//! per resource and Events, times convergence and reads the process's memory.
pub mod ovh_requests;
pub mod report;
pub mod rig;
pub mod tracker;
pub mod workload;

use anyhow::{Context, Result, bail};
use kube::core::ApiResource;
use ovh_requests::{Minimum, Requests};
use report::{AtRest, Convergence, Fairness, Idle, Report};
use rig::{OperatorSettings, Rig};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracker::{ObjectWrites, Tracker};
use workload::Workload;

/// One workload at one request budget.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub workload: Workload,
    /// `--ovh-rate`, requests per second; `--ovh-burst` is one second of it.
    pub rate: f64,
    /// After the first run, stay at rest for the plan's resync intervals.
    pub at_rest: bool,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    pub cases: Vec<Case>,
    /// Runs of each case; times are reported as medians.
    pub runs: usize,
    /// `--resync-interval` of every run.
    pub resync: Duration,
    /// Resync intervals spent at rest.
    pub rest_intervals: u32,
    /// L at 5 requests/s, and one more connector applied after 10 s.
    pub fairness: bool,
    /// The operator with nothing to do.
    pub idle: bool,
    /// Longest wait for one convergence.
    pub timeout: Duration,
    /// Where the JSON report goes.
    pub json: PathBuf,
}

impl Plan {
    /// Everything: S and L at 20 and 1,000 requests/s, XL at 1,000, each at rest after its
    /// 1,000 requests/s run, the fairness probe and the idle operator.
    pub fn full(json: PathBuf) -> Self {
        let case = |workload, rate, at_rest| Case {
            workload,
            rate,
            at_rest,
        };
        Self {
            cases: vec![
                case(workload::S, 20.0, false),
                case(workload::S, 1000.0, true),
                case(workload::L, 20.0, false),
                case(workload::L, 1000.0, true),
                case(workload::XL, 1000.0, true),
            ],
            runs: 3,
            resync: Duration::from_secs(20),
            rest_intervals: 3,
            fairness: true,
            idle: true,
            timeout: Duration::from_secs(30 * 60),
            json,
        }
    }

    /// The short form: S once at 1,000 requests/s, one short resync interval at rest.
    pub fn short(json: PathBuf) -> Self {
        Self {
            cases: vec![Case {
                workload: workload::S,
                rate: 1000.0,
                at_rest: true,
            }],
            runs: 1,
            resync: Duration::from_secs(3),
            rest_intervals: 1,
            fairness: false,
            idle: false,
            timeout: Duration::from_secs(180),
            json,
        }
    }

    /// Keeps only the parts named in `only` (`S`, `L`, `XL`, `fairness`, `idle`, `rest`;
    /// comma-separated, any case).
    pub fn only(mut self, only: &str) -> Result<Self> {
        let names: Vec<String> = only
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        for name in &names {
            let known = Workload::named(name).is_some()
                || ["fairness", "idle", "rest"].contains(&name.as_str());
            if !known {
                bail!("BENCH_ONLY: unknown part {name:?} (S, L, XL, fairness, idle, rest)");
            }
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        self.cases
            .retain(|c| has(&c.workload.name.to_ascii_lowercase()));
        if !has("rest") {
            for case in &mut self.cases {
                case.at_rest = false;
            }
        }
        self.fairness = has("fairness");
        self.idle = has("idle");
        Ok(self)
    }
}

/// Runs the plan against `binary`, printing progress on stderr.
pub async fn run(binary: &Path, plan: &Plan) -> Result<Report> {
    let mut report = Report::new(binary, plan);
    if plan.idle {
        eprintln!("bench: idle operator");
        report.idle = Some(idle(binary, plan).await?);
    }
    for case in &plan.cases {
        for run in 0..plan.runs {
            eprintln!(
                "bench: {} at {} requests/s, run {}/{}",
                case.workload.name,
                case.rate,
                run + 1,
                plan.runs
            );
            let (mut rig, tracker, result) = converge(binary, case, plan).await?;
            eprintln!(
                "bench:   converged in {:.1} s, {} OVH requests",
                result.seconds,
                result.requests.total()
            );
            report.convergence.push(result);
            if case.at_rest && run == 0 {
                eprintln!(
                    "bench: {} at rest for {} × {:?}",
                    case.workload.name, plan.rest_intervals, plan.resync
                );
                report
                    .at_rest
                    .push(at_rest(&mut rig, &tracker, case, plan).await?);
            }
            rig.stop_operator().await?;
        }
    }
    if plan.fairness {
        for run in 0..plan.runs {
            eprintln!("bench: fairness probe, run {}/{}", run + 1, plan.runs);
            report.fairness.push(fairness(binary, plan).await?);
        }
    }
    Ok(report)
}

fn settings(rate: f64, plan: &Plan) -> OperatorSettings {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let burst = rate.max(1.0).round() as u32;
    OperatorSettings {
        rate,
        burst,
        resync: plan.resync,
    }
}

/// A rig with the workload's objects created and seen by the tracker, the operator not
/// started yet.
async fn prepare(w: &Workload) -> Result<(Rig, Tracker)> {
    let rig = Rig::start(w).await?;
    let tracker = Tracker::start(&rig.client);
    let connectors = ApiResource::erase::<SendConnector>(&());
    let bindings = ApiResource::erase::<MailboxBinding>(&());
    for i in 0..w.connectors {
        rig.create(&connectors, w.connector(i)).await?;
    }
    for i in 0..w.bindings {
        rig.create(&bindings, w.binding(i)).await?;
    }
    let expected = w.connectors + w.bindings;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tracker.counts().0 < expected {
        if Instant::now() > deadline {
            bail!("the watch saw {} of {expected} objects", tracker.counts().0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((rig, tracker))
}

/// Waits until `expected` objects are Ready, checking that the operator still runs.
async fn wait_converged(
    rig: &mut Rig,
    tracker: &Tracker,
    expected: usize,
    deadline: Instant,
) -> Result<Instant> {
    loop {
        rig.check_operator()?;
        let step = (Instant::now() + Duration::from_secs(1)).min(deadline);
        if let Some(at) = tracker.wait_all_ready(expected, step).await {
            return Ok(at);
        }
        if Instant::now() >= deadline {
            let (seen, ready) = tracker.counts();
            bail!(
                "{ready} of {seen} Ready at the deadline (not Ready: {:?}):\n{}",
                tracker.not_ready(5),
                rig.operator()?.log_tail()
            );
        }
    }
}

/// One convergence from an empty OVH.
async fn converge(binary: &Path, case: &Case, plan: &Plan) -> Result<(Rig, Tracker, Convergence)> {
    let w = case.workload;
    let (mut rig, tracker) = prepare(&w).await?;
    rig.sim.sim().reset_counters();
    rig.start_operator(binary, &settings(case.rate, plan))
        .await?;
    let started = rig.operator()?.started;
    let expected = w.connectors + w.bindings;
    let ready_at = wait_converged(&mut rig, &tracker, expected, started + plan.timeout).await?;
    let (peak_kib, rss_kib) = rig.operator()?.memory_kib()?;
    let requests = Requests::classify(&rig.sim.sim().counters());
    let minimum = Minimum::of(&w);
    let result = Convergence {
        workload: w,
        rate: case.rate,
        seconds: ready_at.saturating_duration_since(started).as_secs_f64(),
        bound_seconds: bound_seconds(&minimum, case.rate),
        minimum,
        requests,
        writes: tracker.writes(),
        events: rig.k8s.events().len() as u64,
        peak_kib,
        rss_kib,
    };
    Ok((rig, tracker, result))
}

/// The task critical path: a connector's creation task, then its mailboxes' tasks.
pub fn critical_path_seconds() -> f64 {
    2.0 * (rig::TASK_TODO_SECONDS + rig::TASK_DOING_SECONDS)
}

/// The shortest possible convergence: the minimum requests at the budget's rate, or the task
/// critical path when the budget makes that longer.
pub fn bound_seconds(minimum: &Minimum, rate: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let at_rate = minimum.total() as f64 / rate;
    at_rate.max(critical_path_seconds())
}

/// After convergence: waits for OVH to go quiet, then counts requests and Kubernetes writes
/// over the plan's resync intervals.
async fn at_rest(rig: &mut Rig, tracker: &Tracker, case: &Case, plan: &Plan) -> Result<AtRest> {
    // The last reconciles of the convergence may still be reading; wait for two quiet
    // seconds (at most one resync interval) so they are not counted as resync reads.
    let quiet_deadline = Instant::now() + plan.resync;
    let mut last = rig.sim.sim().counters().values().sum::<u64>();
    let mut quiet_since = Instant::now();
    while Instant::now() < quiet_deadline && quiet_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rig.sim.sim().counters().values().sum::<u64>();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    rig.sim.sim().reset_counters();
    let writes_before: u64 = tracker.writes().values().map(ObjectWrites::total).sum();
    let events_before = rig.k8s.events().len();
    let span = plan.resync * plan.rest_intervals;
    let end = Instant::now() + span;
    while Instant::now() < end {
        rig.check_operator()?;
        tokio::time::sleep(Duration::from_millis(200).min(end - Instant::now())).await;
    }
    let requests = Requests::classify(&rig.sim.sim().counters());
    let (peak_kib, rss_kib) = rig.operator()?.memory_kib()?;
    let writes_after: u64 = tracker.writes().values().map(ObjectWrites::total).sum();
    let (seen, ready) = tracker.counts();
    if seen != ready {
        bail!(
            "{} of {seen} objects fell out of Ready at rest",
            seen - ready
        );
    }
    Ok(AtRest {
        workload: case.workload,
        resync_seconds: plan.resync.as_secs_f64(),
        intervals: plan.rest_intervals,
        requests,
        k8s_writes: writes_after - writes_before,
        events: (rig.k8s.events().len() - events_before) as u64,
        peak_kib,
        rss_kib,
    })
}

/// The operator with no resources: memory once it is ready and has settled.
async fn idle(binary: &Path, plan: &Plan) -> Result<Idle> {
    let mut rig = Rig::start(&workload::S).await?;
    rig.start_operator(binary, &settings(20.0, plan)).await?;
    rig.operator()?.wait_ready(Duration::from_secs(60)).await?;
    // Give the allocator a moment after the first listings.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.check_operator()?;
    let (peak_kib, rss_kib) = rig.operator()?.memory_kib()?;
    rig.stop_operator().await?;
    Ok(Idle { peak_kib, rss_kib })
}

/// The delay before the probe connector is applied, and the budget of the probe.
pub const FAIRNESS_DELAY: Duration = Duration::from_secs(10);
pub const FAIRNESS_RATE: f64 = 5.0;
/// How long the probe may take before it is reported as not Ready.
pub const FAIRNESS_TIMEOUT: Duration = Duration::from_secs(300);

/// L converging at 5 requests/s; one more connector applied after 10 s: its time to Ready.
async fn fairness(binary: &Path, plan: &Plan) -> Result<Fairness> {
    let w = workload::L;
    let (mut rig, tracker) = prepare(&w).await?;
    rig.start_operator(binary, &settings(FAIRNESS_RATE, plan))
        .await?;
    let started = rig.operator()?.started;
    tokio::time::sleep_until((started + FAIRNESS_DELAY).into()).await;
    rig.check_operator()?;
    let probe = w.connectors;
    let key = format!("SendConnector/{}", Workload::connector_name(probe));
    let applied = Instant::now();
    rig.create(
        &ApiResource::erase::<SendConnector>(&()),
        w.connector(probe),
    )
    .await?;
    // A probe still waiting at the deadline is reported as such rather than failing the
    // whole benchmark: waiting behind all of L is the unfairness this probe looks for.
    let deadline = applied + FAIRNESS_TIMEOUT;
    let ready_at = loop {
        rig.check_operator()?;
        let step = (Instant::now() + Duration::from_secs(1)).min(deadline);
        if let Some(at) = tracker.wait_ready(&key, step).await {
            break Some(at);
        }
        if Instant::now() >= deadline {
            break None;
        }
    };
    // The rest of L, without the probe: how far it had got when the probe was Ready.
    let (seen, ready) = tracker.counts();
    rig.stop_operator().await?;
    Ok(Fairness {
        rate: FAIRNESS_RATE,
        delay_seconds: FAIRNESS_DELAY.as_secs_f64(),
        seconds: ready_at
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(applied)
            .as_secs_f64(),
        ready: ready_at.is_some(),
        others_ready: ready.saturating_sub(1),
        others: seen.saturating_sub(1),
    })
}

/// Writes the JSON report, creating its directory.
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
