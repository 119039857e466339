//! Logging (plain text for people, JSON for log pipelines; the level from `--log-level` or
//! `RUST_LOG`), Prometheus metrics ([`metrics`]) and the health endpoints ([`health`]).
pub mod health;
pub mod metrics;

pub use health::Health;
pub use metrics::Metrics;

use crate::ovh::client::RequestObserver;
use clap::ValueEnum;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// How long a watch may fail without any success before liveness fails, by default.
pub const DEFAULT_WATCH_FAILURE_LIMIT: Duration = Duration::from_secs(180);

/// The metrics registry and the health state of one operator instance. Cheap to clone:
/// clones share everything.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    metrics: Metrics,
    resources: metrics::ResourceCollector,
    health: Health,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("health", &self.inner.health)
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_FAILURE_LIMIT)
    }
}

impl Telemetry {
    /// A fresh registry; liveness fails once a watch has failed for `watch_failure_limit`
    /// without a success.
    pub fn new(watch_failure_limit: Duration) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let resources = metrics::ResourceCollector::default();
        registry.register_collector(Box::new(resources.clone()));
        Self {
            inner: Arc::new(Inner {
                registry,
                metrics,
                resources,
                health: Health::new(watch_failure_limit),
            }),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The observer that feeds the OVH request metrics and the write audit log.
    pub fn request_observer(&self) -> Arc<dyn RequestObserver> {
        Arc::new(self.inner.metrics.clone())
    }

    /// Sets how `sendconnector_resources` is computed at each scrape.
    pub fn count_resources_with(
        &self,
        count: impl Fn() -> metrics::ResourceCounts + Send + Sync + 'static,
    ) {
        self.inner.resources.set(Box::new(count));
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive such as `info` or
/// `sendconnector_operator=debug`; `RUST_LOG`, when set, wins.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a person at a terminal (and never with NO_COLOR), not in files or
    // log pipelines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
