//! What every reconcile shares: the Kubernetes client, the stores of both kinds, one OVH
//! client per set of credentials (so they share a request budget), Events and backoff state.
use super::leader::LeaderElection;
use crate::crd::{BindingPhase, MailboxBinding, SendConnector, find_condition, reasons, types};
use crate::ovh::{
    BudgetRegistry, BudgetSettings, ClientOptions, Credentials, Endpoint, ExchangeClient,
};
use crate::telemetry::{Metrics, Telemetry};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The operator's settings (from `run`'s flags, or `local` mode).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The namespaces to watch; empty means all of them.
    pub namespaces: Vec<String>,
    /// How often a converged resource is compared with OVH again (drift), before jitter.
    pub resync_interval: Duration,
    pub budget: BudgetSettings,
    pub ovh: ClientOptions,
    /// The operator's default OVH credentials Secret (`namespace`, `name`).
    pub default_credentials_secret: Option<(String, String)>,
    /// Namespaces whose resources may use the default credentials (`*`: every namespace).
    pub default_credentials_namespaces: Vec<String>,
    /// Default OVH credentials from the `OVH_*` environment variables, used when no default
    /// Secret is configured.
    pub default_credentials_env: Option<Credentials>,
    /// The one OVH endpoint every request goes to, whatever endpoint a credentials Secret or
    /// the `OVH_*` variables name (`local` mode: the embedded simulator, or `--ovh-endpoint`).
    /// `None` (`run`): each set of credentials uses its own endpoint.
    pub endpoint_override: Option<Endpoint>,
    /// Requeue delay after a terminal (Stalled) error: a slow safety timer.
    pub stalled_retry: Duration,
    /// Per-object backoff after retryable errors: first delay and cap.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The first poll of a running OVH task comes this long after it started; later polls
    /// wait as long as the task has run so far (so a task is polled about log2(its length)
    /// times), up to [`ControllerConfig::task_poll_max`].
    pub task_poll: Duration,
    /// The longest wait between two polls of a running task.
    pub task_poll_max: Duration,
    /// How long a new resource's first reconcile may take before its status says it waits
    /// for OVH (most finish sooner and need no such write).
    pub announce_after: Duration,
    /// Plan only: read OVH, report the calls that would be made in `status.plan` and Events,
    /// write nothing to OVH.
    pub dry_run: bool,
    /// Metrics and health state; `run` reports into it and the HTTP server reads it.
    pub telemetry: Telemetry,
    /// Reconcile only while holding this Lease; `None`: always (a single replica).
    pub leader_election: Option<LeaderElection>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            resync_interval: Duration::from_secs(600),
            budget: BudgetSettings::default(),
            ovh: ClientOptions::default(),
            default_credentials_secret: None,
            default_credentials_namespaces: Vec::new(),
            default_credentials_env: None,
            endpoint_override: None,
            stalled_retry: Duration::from_secs(3600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            task_poll: Duration::from_secs(1),
            task_poll_max: Duration::from_secs(30),
            announce_after: Duration::from_secs(1),
            dry_run: false,
            telemetry: Telemetry::default(),
            leader_election: None,
        }
    }
}

impl ControllerConfig {
    /// When to look again at a task that has been running for `elapsed`: after as long
    /// again, between [`Self::task_poll`] and [`Self::task_poll_max`]. OVH tasks take from a
    /// second to many minutes; polling in proportion to their age finds a short one fast and
    /// spends few requests on a long one.
    pub fn task_poll_after(&self, elapsed: Duration) -> Duration {
        elapsed.clamp(self.task_poll, self.task_poll_max.max(self.task_poll))
    }

    /// Whether resources of `namespace` may use the operator's default credentials.
    pub fn may_use_default_credentials(&self, namespace: &str) -> bool {
        self.default_credentials_namespaces
            .iter()
            .any(|n| n == namespace || n == "*")
    }

    /// Whether any default credentials (Secret or environment) are configured.
    pub fn has_default_credentials(&self) -> bool {
        self.default_credentials_secret.is_some() || self.default_credentials_env.is_some()
    }
}

pub struct Context {
    pub client: Client,
    pub config: ControllerConfig,
    pub connectors: Store<SendConnector>,
    pub bindings: Store<MailboxBinding>,
    pub budgets: BudgetRegistry,
    /// OVH clients by [`Credentials::cache_key`] (every field, secrets included), with when
    /// each was last handed out.
    pub(super) ovh_clients: Mutex<HashMap<String, (ExchangeClient, tokio::time::Instant)>>,
    /// The status this process last wrote, per object uid. The watch cache may still hold an
    /// older copy when the next reconcile starts; only the operator writes status, so its own
    /// last write is the truth. Kept as compact JSON: a binding's status lists its mailboxes,
    /// and a thousand of them as `serde_json::Value` trees took 7.5 MiB.
    pub(super) statuses: Mutex<HashMap<String, Json>>,
    /// Consecutive retryable failures per object (`namespace/kind/name`), for backoff.
    pub(super) failures: Mutex<HashMap<String, u32>>,
    /// Resources waiting out a backoff or a stall, by key: until when, and what they depended
    /// on then (spec generation, annotations, Secret versions). While both hold, a reconcile
    /// triggered by the resource's own status write costs no OVH request.
    pub(super) holds: Holds,
    /// Per object, Event type, reason and action: the Event last published and its note
    /// (see [`super::events::publish`]).
    pub(super) event_series: Mutex<HashMap<String, super::events::Series>>,
    /// Resources waiting for OVH tasks that carry no start time of their own (a binding's
    /// account and domain writes), by key: since when.
    pub(super) waiting_since: Mutex<HashMap<String, tokio::time::Instant>>,
    /// Per resource uid: the shared lists (connectors; accounts and domains for a binding) it
    /// may plan on start from this instant on (its last write was answered, or its task seen
    /// ended, by then). A list read earlier may not show its own change; other resources'
    /// lists serve it otherwise.
    pub(super) lists_after: Mutex<HashMap<String, tokio::time::Instant>>,
    /// Per binding uid whose last look ended waiting for OVH tasks: when the newest shared
    /// list that look planned on was read (see [`Context::lists_for_look`]).
    pub(super) polled_on: Mutex<HashMap<String, tokio::time::Instant>>,
    /// When each resource's current change began: the urgency of its OVH requests.
    pub(super) changes: Mutex<super::changes::Changes>,
    /// The origin of the resync ticks (the controller's start), and the seed of their jitter.
    pub(super) epoch: tokio::time::Instant,
    pub(super) jitter_seed: u64,
    /// Per object uid: a status computed but not written yet (a task just started, which
    /// may well be over at the next poll), and whether the current reconcile's report is to
    /// be kept as such a draft.
    pub(super) drafts: Mutex<HashMap<String, (Json, bool)>>,
    /// Resources waiting for the next poll of their OVH tasks, by key: until when, and what
    /// they depended on then (as for `holds`). A reconcile triggered before, by the
    /// resource's own status write, neither reads OVH nor writes status.
    pub polls: Holds,
}

/// Resources kept waiting, by key: until when, and what they depended on then (spec
/// generation, annotations, Secret versions). A reconcile that finds the wait not over and
/// its inputs unchanged returns at once.
#[derive(Default)]
pub struct Holds(Mutex<HashMap<String, (String, tokio::time::Instant)>>);

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, tokio::time::Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `key` waits `wait` from now; what it depends on is recorded by [`Holds::depends_on`].
    pub fn set(&self, key: &str, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        self.lock().insert(key.to_owned(), (String::new(), until));
    }

    /// Records what the wait of `key` set during this reconcile depends on.
    pub fn depends_on(&self, key: &str, inputs: String) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.0 = inputs;
        }
    }

    /// Whether a wait of `key` was set during this reconcile (its inputs not recorded yet).
    pub fn is_new(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|(inputs, _)| inputs.is_empty())
    }

    /// How long `key` still waits, if what it depends on is as it was (`inputs`); `None`
    /// (and the wait forgotten) when it is over or its inputs changed.
    pub fn remaining(&self, key: &str, inputs: &str) -> Option<Duration> {
        let mut all = self.lock();
        let (held_inputs, until) = all.get(key)?;
        let now = tokio::time::Instant::now();
        if held_inputs == inputs && now < *until {
            Some(*until - now)
        } else {
            all.remove(key);
            None
        }
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// A status kept as compact JSON text.
type Json = Box<[u8]>;

/// kube's Event recorder, reporting as the operator (for objects that do not decode; the
/// reconcilers publish through [`super::events`]).
pub(super) fn recorder(client: &Client) -> Recorder {
    let reporter = Reporter {
        controller: crate::crd::FIELD_MANAGER.to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(client.clone(), reporter)
}

impl Context {
    pub fn new(
        client: Client,
        config: ControllerConfig,
        connectors: Store<SendConnector>,
        bindings: Store<MailboxBinding>,
    ) -> Self {
        Self {
            budgets: BudgetRegistry::new(config.budget),
            client,
            config,
            connectors,
            bindings,
            ovh_clients: Mutex::default(),
            statuses: Mutex::default(),
            failures: Mutex::default(),
            holds: Holds::default(),
            event_series: Mutex::default(),
            waiting_since: Mutex::default(),
            lists_after: Mutex::default(),
            polled_on: Mutex::default(),
            changes: Mutex::default(),
            epoch: tokio::time::Instant::now(),
            jitter_seed: rand::random(),
            drafts: Mutex::default(),
            polls: Holds::default(),
        }
    }

    /// The operator's metrics: reconcilers report drift corrections and finished OVH tasks
    /// here ([`Metrics::drift_corrected`], [`Metrics::task_finished`]).
    pub fn metrics(&self) -> &Metrics {
        self.config.telemetry.metrics()
    }

    /// SendConnectors of `namespace` whose password or credentials Secret is `name`.
    pub fn connectors_using_secret(&self, namespace: &str, name: &str) -> Vec<Arc<SendConnector>> {
        let default_secret = self
            .config
            .default_credentials_secret
            .as_ref()
            .is_some_and(|(ns, n)| ns == namespace && n == name);
        self.connectors
            .state()
            .into_iter()
            .filter(|c| {
                let same_ns = c.namespace().as_deref() == Some(namespace);
                let password = c.spec.password_secret_ref().is_some_and(|r| r.name == name);
                let creds = c
                    .spec
                    .credentials_secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name);
                (same_ns && (password || creds))
                    || (default_secret && c.spec.credentials_secret_ref.is_none())
            })
            .collect()
    }

    /// MailboxBindings whose connector uses the Secret as OVH credentials.
    pub fn bindings_using_secret(&self, namespace: &str, name: &str) -> Vec<Arc<MailboxBinding>> {
        let connectors: Vec<String> = self
            .connectors_using_secret(namespace, name)
            .iter()
            .map(|c| c.name_any())
            .collect();
        self.bindings
            .state()
            .into_iter()
            .filter(|b| {
                b.namespace().as_deref() == Some(namespace)
                    && connectors.contains(&b.spec.connector_ref.name)
            })
            .collect()
    }

    /// MailboxBindings of `namespace` that reference the SendConnector `name`.
    pub fn bindings_of(&self, namespace: &str, name: &str) -> Vec<Arc<MailboxBinding>> {
        self.bindings
            .state()
            .into_iter()
            .filter(|b| {
                b.namespace().as_deref() == Some(namespace) && b.spec.connector_ref.name == name
            })
            .collect()
    }

    /// Other MailboxBindings with a mailbox or domain in `Conflict` because `winner` claimed
    /// it: when `winner` changes or goes, they may proceed.
    pub fn bindings_in_conflict_with(&self, winner: &MailboxBinding) -> Vec<Arc<MailboxBinding>> {
        let owner = format!(
            "MailboxBinding {}/{}",
            winner.namespace().unwrap_or_default(),
            winner.name_any()
        );
        let names_winner = |phase: BindingPhase, message: Option<&String>| {
            phase == BindingPhase::Conflict && message.is_some_and(|m| m.ends_with(&owner))
        };
        self.bindings
            .state()
            .into_iter()
            .filter(|b| b.uid() != winner.uid())
            .filter(|b| {
                b.status.as_ref().is_some_and(|s| {
                    s.mailboxes
                        .iter()
                        .any(|m| names_winner(m.phase, m.message.as_ref()))
                        || s.domains
                            .iter()
                            .any(|d| names_winner(d.phase, d.message.as_ref()))
                })
            })
            .collect()
    }

    /// Other SendConnectors in `Conflict` over the connector `winner` claims (same
    /// organization, service and displayName): when `winner` changes or goes, they may proceed.
    pub fn connectors_in_conflict_with(&self, winner: &SendConnector) -> Vec<Arc<SendConnector>> {
        let key = winner.ovh_key();
        self.connectors
            .state()
            .into_iter()
            .filter(|c| c.uid() != winner.uid() && c.ovh_key() == key)
            .filter(|c| {
                c.status.as_ref().is_some_and(|s| {
                    find_condition(&s.conditions, types::READY)
                        .is_some_and(|r| r.reason == reasons::CONFLICT)
                })
            })
            .collect()
    }

    pub fn connector(&self, namespace: &str, name: &str) -> Option<Arc<SendConnector>> {
        self.connectors
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }

    /// Records a retryable failure and returns the backoff before the next attempt.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)));
        let capped = exp.min(self.config.backoff_max);
        // Jitter of up to a fifth, so resources that failed together do not retry together.
        let wait = capped.mul_f64(1.0 + rand::random::<f64>() * 0.2);
        drop(failures);
        self.hold(key, wait);
        wait
    }

    /// How long a held resource still waits, if what it depends on is as it was (`inputs`).
    pub fn held_for(&self, key: &str, inputs: &str) -> Option<Duration> {
        self.holds.remaining(key, inputs)
    }

    /// Holds the resource for `wait` (a terminal error: the slow safety timer).
    pub fn hold(&self, key: &str, wait: Duration) {
        self.holds.set(key, wait);
    }

    /// Records what the current hold of `key` (set by [`Self::hold`] or [`Self::next_backoff`]
    /// during this reconcile) depends on.
    pub fn hold_inputs(&self, key: &str, inputs: String) {
        self.holds.depends_on(key, inputs);
    }

    /// When `key`, waiting for OVH tasks, looks again ([`ControllerConfig::task_poll_after`]
    /// the time it has waited). `started`: its tasks started just now.
    pub fn task_wait(&self, key: &str, started: bool) -> Duration {
        if started {
            self.waiting_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(key);
        }
        self.config.task_poll_after(self.waited(key))
    }

    /// The instant the connector lists `uid` plans on must be read from, if any.
    pub fn lists_after(&self, uid: &str) -> Option<tokio::time::Instant> {
        self.lists_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .copied()
    }

    /// Whether `uid`'s last write of its own (see [`Self::needs_lists_after`]) is less than
    /// `span` old: the tasks it started may still be running just because they are young.
    pub fn wrote_within(&self, uid: &str, span: Duration) -> bool {
        self.lists_after(uid).is_some_and(|t| t.elapsed() < span)
    }

    /// The instant the shared lists `uid`'s look plans on must be read from: after its own
    /// last writes ([`Self::lists_after`]); when its last look ended waiting for tasks
    /// ([`Self::waits_on`]), also half a task poll interval after those writes and after the
    /// lists that look saw. A poll served a list read just after its writes (another resource's,
    /// kept for seconds), or one it has seen, learns nothing: the tasks would show pending
    /// until the list expired.
    pub fn lists_for_look(&self, uid: &str) -> Option<tokio::time::Instant> {
        let seen = self
            .polled_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
        let wrote = self.lists_after(uid);
        let Some(seen) = seen else {
            return wrote;
        };
        let settling = wrote.map(|t| t + self.config.task_poll / 2);
        settling
            .into_iter()
            .chain([seen + Duration::from_nanos(1)])
            .max()
    }

    /// `uid`'s look ends waiting for tasks, on shared lists read at `read_at` at the latest.
    pub fn waits_on(&self, uid: &str, read_at: tokio::time::Instant) {
        self.polled_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.to_owned(), read_at);
    }

    /// The urgency of the change `obj` is at (its generation): when this controller first
    /// saw it, or the wave it came in ([`super::changes`]).
    pub fn change_began<K: kube::Resource>(&self, obj: &K) -> tokio::time::Instant {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let generation = obj.meta().generation.unwrap_or_default();
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .began(&uid, generation, tokio::time::Instant::now())
    }

    /// `uid` needs connector lists read from `at` on (`now` after a write of its own).
    pub fn needs_lists_after(&self, uid: &str, at: tokio::time::Instant) {
        let mut after = self
            .lists_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = after.entry(uid.to_owned()).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// How long `key` has waited for something, counted from the first call.
    pub fn waited(&self, key: &str) -> Duration {
        let now = tokio::time::Instant::now();
        let mut waiting = self
            .waiting_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        now - *waiting.entry(key.to_owned()).or_insert(now)
    }

    /// `key` no longer waits for OVH tasks, nor for anything else.
    pub fn tasks_over(&self, key: &str) {
        let mut waiting = self
            .waiting_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.remove(key);
        waiting.remove(&format!("{key}#connector"));
    }

    pub fn reset_backoff(&self, key: &str) {
        self.holds.clear(key);
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// The status last written for `uid`, if this process wrote one.
    pub fn remembered_status<S: serde::de::DeserializeOwned>(&self, uid: &str) -> Option<S> {
        let statuses = self
            .statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        statuses
            .get(uid)
            .and_then(|v| serde_json::from_slice(v).ok())
    }

    pub fn remember_status<S: serde::Serialize>(&self, uid: &str, status: &S) {
        if let Ok(v) = serde_json::to_vec(status) {
            self.statuses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(uid.to_owned(), v.into_boxed_slice());
        }
    }

    /// The status `uid` computed last without writing it, if any: newer than what was
    /// written.
    pub fn draft_status<S: serde::de::DeserializeOwned>(&self, uid: &str) -> Option<S> {
        let drafts = self
            .drafts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drafts
            .get(uid)
            .and_then(|(v, _)| serde_json::from_slice(v).ok())
    }

    /// This reconcile of `uid` started a task: its report is kept as a draft, written by the
    /// next poll if the task still runs then (and replaced by the outcome if it does not).
    pub fn defer_report(&self, uid: &str) {
        self.drafts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(uid.to_owned())
            .or_insert((Box::from(&b"null"[..]), false))
            .1 = true;
    }

    /// Whether this reconcile's report of `uid` is deferred; keeps `status` as the draft if
    /// so, and forgets any draft if not (the report writes it).
    pub fn keep_draft<S: serde::Serialize>(&self, uid: &str, status: &S) -> bool {
        let mut drafts = self
            .drafts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if drafts.get(uid).is_some_and(|(_, deferred)| *deferred) {
            if let Ok(v) = serde_json::to_vec(status) {
                drafts.insert(uid.to_owned(), (v.into_boxed_slice(), false));
                return true;
            }
        }
        drafts.remove(uid);
        false
    }

    pub fn forget_status(&self, uid: &str) {
        self.drafts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
        self.lists_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
        self.polled_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .forget(uid);
    }

    /// The resync tick a reconcile starting now answers, if the resource is at rest
    /// (`at_rest`: its last report is Ready for its generation) and the last tick is less
    /// than a quarter interval (at most 10 s) old: the lists read since that tick serve it
    /// (see [`crate::ovh::shared_reads::in_resync_wave`]).
    pub fn resync_wave(&self, at_rest: bool) -> Option<tokio::time::Instant> {
        if !at_rest {
            return None;
        }
        let interval = self.config.resync_interval;
        let elapsed = self.epoch.elapsed();
        let tick = last_tick(elapsed, interval, self.jitter_seed);
        let window = (interval / 4).min(Duration::from_secs(10));
        (elapsed.saturating_sub(tick) < window).then(|| self.epoch + tick)
    }

    /// The delay until the next resync tick. Every resource resyncs at the same instants, so
    /// that at rest one read of each shared list of a service (connectors, accounts, domains)
    /// serves all its resources: the cost of finding drift is per service, not per resource.
    /// Tick `k` falls at `k` intervals from the controller's start, moved earlier by up to
    /// 10 % of an interval (a jitter drawn per tick and per process, so that operators do not
    /// all read OVH at one instant); ticks are 0.9 to 1.1 intervals apart.
    pub fn resync(&self) -> Duration {
        until_next_tick(
            self.epoch.elapsed(),
            self.config.resync_interval,
            self.jitter_seed,
        )
    }
}

/// Resync tick `k` (since the ticks' origin): at `k` intervals, moved earlier by
/// `0.1 × interval × unit_fraction(seed ^ k)`.
fn tick_at(k: u64, interval: Duration, seed: u64) -> Duration {
    let jitter = interval.mul_f64(0.1 * unit_fraction(seed ^ k));
    (interval * u32::try_from(k).unwrap_or(u32::MAX)).saturating_sub(jitter)
}

/// The delay from `elapsed` (since the ticks' origin) to the next resync tick.
fn until_next_tick(elapsed: Duration, interval: Duration, seed: u64) -> Duration {
    let interval = interval.max(Duration::from_millis(1));
    let first = u64::try_from(elapsed.as_nanos() / interval.as_nanos()).unwrap_or(u64::MAX);
    (first..first.saturating_add(3))
        .map(|k| tick_at(k, interval, seed))
        .find(|t| *t > elapsed)
        .unwrap_or(elapsed + interval)
        .saturating_sub(elapsed)
}

/// The last resync tick at or before `elapsed` (tick 0 is the origin itself).
fn last_tick(elapsed: Duration, interval: Duration, seed: u64) -> Duration {
    let interval = interval.max(Duration::from_millis(1));
    let first = u64::try_from(elapsed.as_nanos() / interval.as_nanos()).unwrap_or(u64::MAX);
    // Tick `first + 1` may be up to a tenth of an interval early; tick `first` is never late.
    [first.saturating_add(1), first]
        .into_iter()
        .map(|k| tick_at(k, interval, seed))
        .find(|t| *t <= elapsed)
        .unwrap_or_default()
}

/// A fraction in `[0, 1)` drawn from `seed` (splitmix64): the same seed, the same fraction.
fn unit_fraction(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits, exactly representable.
    #[allow(clippy::cast_precision_loss)]
    let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_resync_on_shared_ticks_at_most_a_tenth_early_or_late() {
        let interval = Duration::from_secs(600);
        let seed = 42;
        let mut ticks = Vec::new();
        // Resources that converge at any moment land on the same ticks.
        for at in (0..36_000).step_by(7) {
            let elapsed = Duration::from_secs(at);
            let delay = until_next_tick(elapsed, interval, seed);
            assert!(
                delay > Duration::ZERO && delay <= interval.mul_f64(1.1),
                "{delay:?}"
            );
            let tick = elapsed + delay;
            if ticks.last() != Some(&tick) {
                ticks.push(tick);
            }
        }
        assert!(ticks.len() >= 59 && ticks.len() <= 61, "{}", ticks.len());
        for pair in ticks.windows(2) {
            let gap = pair[1].saturating_sub(pair[0]);
            assert!(
                gap >= interval.mul_f64(0.9) && gap <= interval.mul_f64(1.1),
                "{gap:?}"
            );
        }
        // Another process draws other ticks.
        let other = until_next_tick(Duration::from_secs(1000), interval, 7);
        let ours = until_next_tick(Duration::from_secs(1000), interval, seed);
        assert_ne!(other, ours);
    }

    fn context() -> Context {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (connectors, _) = kube::runtime::reflector::store();
        let (bindings, _) = kube::runtime::reflector::store();
        Context::new(client, ControllerConfig::default(), connectors, bindings)
    }

    #[tokio::test]
    async fn a_poll_plans_on_lists_newer_than_its_writes_and_than_what_it_waited_on() {
        let ctx = context();
        let half_a_poll = ctx.config.task_poll / 2;
        let wrote = tokio::time::Instant::now();
        ctx.needs_lists_after("uid", wrote);
        // Not waiting for tasks: anything read after its writes.
        assert_eq!(ctx.lists_for_look("uid"), Some(wrote));
        // Its writing look planned on a list from before the writes: its poll needs one read
        // once the tasks had time to move.
        ctx.waits_on("uid", wrote - Duration::from_secs(1));
        assert_eq!(ctx.lists_for_look("uid"), Some(wrote + half_a_poll));
        // A look consumes the wait; the next one that waits says what it saw.
        assert_eq!(ctx.lists_for_look("uid"), Some(wrote));
        let seen = wrote + Duration::from_secs(3);
        ctx.waits_on("uid", seen);
        let after = ctx.lists_for_look("uid").unwrap();
        assert!(after > seen, "a poll is never served the list it saw");
        // Forgotten with the resource.
        ctx.waits_on("gone", seen);
        ctx.forget_status("gone");
        assert_eq!(ctx.lists_for_look("gone"), None);
    }

    #[test]
    fn the_last_tick_is_the_one_the_next_tick_follows() {
        let interval = Duration::from_secs(20);
        for seed in [0, 7, 12_345] {
            for ms in (0..200_000).step_by(997) {
                let elapsed = Duration::from_millis(ms);
                let last = last_tick(elapsed, interval, seed);
                let next = elapsed + until_next_tick(elapsed, interval, seed);
                assert!(last <= elapsed && next > elapsed, "{ms} ms, seed {seed}");
                // No tick between the two: the one after `last` is `next`.
                let after_last = last + until_next_tick(last, interval, seed);
                assert_eq!(after_last, next, "{ms} ms, seed {seed}");
            }
        }
    }
}
