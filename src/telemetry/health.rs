//! Liveness and readiness, and the HTTP server for them and the metrics.
//!
//! - `/healthz` (liveness) fails when the operator can no longer see the cluster: a watch has
//!   failed without any success for longer than the limit, or the controllers stopped on their
//!   own. An OVH outage never fails it: restarting would not bring OVH back.
//! - `/readyz` (readiness) succeeds once both resource caches hold a first complete listing,
//!   whether or not this instance leads, so rolling updates and disruption budgets work with
//!   standby replicas.
//! - `/metrics`: OpenMetrics text.
use super::Telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long after its last error a failing watch counts as recovered even without an event:
/// the watcher retries at least every 30 s (its backoff cap) plus the request timeouts, so a
/// watch that still fails reports an error well within this.
const QUIET_RECOVERY: Duration = Duration::from_secs(330);

#[derive(Debug, Default, Clone, Copy)]
struct WatchState {
    /// The first error since the last success.
    failing_since: Option<Instant>,
    last_error: Option<Instant>,
}

/// What the probes report.
#[derive(Debug)]
pub struct Health {
    watch_failure_limit: Duration,
    watches: Mutex<HashMap<String, WatchState>>,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// Why the controllers stopped when nobody asked them to.
    dead: Mutex<Option<String>>,
}

impl Health {
    pub(super) fn new(watch_failure_limit: Duration) -> Self {
        Self {
            watch_failure_limit,
            watches: Mutex::default(),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            dead: Mutex::new(None),
        }
    }

    /// A watch (`name`: kind and namespace) delivered an event or finished a listing.
    pub fn watch_ok(&self, name: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = watches.get_mut(name) {
            state.failing_since = None;
        } else {
            watches.insert(name.to_owned(), WatchState::default());
        }
    }

    /// A watch failed (it retries with backoff).
    pub fn watch_failed(&self, name: &str) {
        let now = Instant::now();
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let state = watches.entry(name.to_owned()).or_default();
        let recovered_quietly = state
            .last_error
            .is_some_and(|at| now.duration_since(at) > QUIET_RECOVERY);
        if state.failing_since.is_none() || recovered_quietly {
            state.failing_since = Some(now);
        }
        state.last_error = Some(now);
    }

    /// Both resource caches are filled (or, with `false`, no longer served).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// A stop was asked for: readiness fails from now on, liveness does not.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The controllers stopped without being asked to.
    pub fn set_dead(&self, why: impl Into<String>) {
        *self.dead.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.into());
    }

    /// `Ok` when alive, otherwise why not.
    pub fn liveness(&self) -> Result<(), String> {
        if let Some(why) = self
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Err(format!("the controllers stopped: {why}"));
        }
        let now = Instant::now();
        let watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        let mut failing: Vec<String> = watches
            .iter()
            .filter_map(|(name, state)| {
                let since = state.failing_since?;
                let still = state
                    .last_error
                    .is_some_and(|at| now.duration_since(at) <= QUIET_RECOVERY);
                let failing_for = now.duration_since(since);
                (still && failing_for > self.watch_failure_limit)
                    .then(|| format!("the {name} watch has failed for {}s", failing_for.as_secs()))
            })
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        failing.sort();
        Err(failing.join("; "))
    }

    /// `Ok` when ready, otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err("stopping".into());
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err("the resource caches are not filled yet".into());
        }
        self.liveness()
    }
}

/// The routes: `/metrics`, `/healthz`, `/readyz`.
pub fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(telemetry)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then finishes the requests in
/// progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(telemetry): State<Telemetry>) -> Response {
    match telemetry.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

fn probe(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn healthz(State(telemetry): State<Telemetry>) -> Response {
    probe(telemetry.health().liveness())
}

async fn readyz(State(telemetry): State<Telemetry>) -> Response {
    probe(telemetry.health().readiness())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_failing_past_the_limit_fails_liveness_until_it_recovers() {
        let health = Health::new(Duration::ZERO);
        assert!(health.liveness().is_ok());
        health.watch_ok("SendConnector/mail");
        health.watch_failed("SendConnector/mail");
        std::thread::sleep(Duration::from_millis(5));
        let why = health.liveness().unwrap_err();
        assert!(why.contains("SendConnector/mail watch has failed"), "{why}");
        health.watch_ok("SendConnector/mail");
        assert!(health.liveness().is_ok());

        let patient = Health::new(Duration::from_secs(60));
        patient.watch_failed("Secret/mail");
        assert!(patient.liveness().is_ok(), "within the limit");
    }

    #[test]
    fn readiness_waits_for_the_caches_and_ends_on_stop() {
        let health = Health::new(Duration::from_secs(60));
        assert!(health.readiness().is_err());
        health.set_ready(true);
        assert!(health.readiness().is_ok());
        health.set_stopping();
        assert!(health.readiness().is_err());
        assert!(health.liveness().is_ok());
        health.set_dead("the watch streams ended");
        assert!(health.liveness().is_err());
    }
}
