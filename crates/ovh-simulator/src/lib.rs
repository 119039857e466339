//! A local simulator of the OVHcloud Exchange API v1 (reference §1–§8, §10): signed and OAuth2
//! authentication, the `/email/exchange` send connector, account, domain and task routes with
//! their asynchronous tasks, batch and Iceberg reads, injected faults, and an admin API under
//! `/_simulator/` for out-of-band edits the way a person uses the OVHcloud control panel.
//!
//! Choices where the reference is silent (all switchable in [`Settings`] where they matter):
//! - a stale `X-Ovh-Timestamp` answers 400 `INVALID_SIGNATURE` (or 403 `INVALID_KEY`);
//! - signatures are accepted over `http://` or `https://` + the `Host` header + the path and
//!   query exactly as received;
//! - a missing application or consumer key answers 401 "You must login first";
//! - an unknown or expired bearer token answers 401 `Client::Unauthorized`;
//! - consumer keys made by `POST /auth/credential` are valid at once;
//! - a failed `addSendConnector` removes the connector, a failed `deleteSendConnector` puts it
//!   back to `ok`, a failed `set*` task restores the previous values.
mod admin;
mod api;
mod auth;
mod errors;
mod exchange;
mod faults;
mod listing;
mod routes;
mod schema;
mod secret;
pub mod seed;
mod server;
pub mod settings;
mod signing;
mod store;
mod tasks;

pub use secret::SecretString;
pub use seed::{Seed, SeedError};
pub use settings::{FaultKind, FaultRule, Faults, Settings, StaleTimestampError};
pub use signing::signature;

use auth::{Credentials, Token};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use store::{Store, Target};

/// How to start a simulator.
#[derive(Clone, Debug, Default)]
pub struct SimulatorConfig {
    pub seed: Seed,
    pub settings: Settings,
    /// Objects are loaded from this JSON file at start (when it exists) and written to it on
    /// every change.
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("simulator state file {path}: {source}")]
    StateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// The mutable world behind one lock: objects, switches, faults, clock, counters, tokens.
pub(crate) struct Core {
    pub store: Store,
    pub settings: Settings,
    pub faults: Faults,
    /// The fault dice, seeded from `faults.seed` whenever faults are set.
    pub dice: rand::rngs::StdRng,
    pub fail_next: Vec<Option<String>>,
    pub skew_seconds: i64,
    pub counters: BTreeMap<String, u64>,
    /// Faults injected, by kind (`status500`, `loseResponse`, …).
    pub fault_counts: BTreeMap<String, u64>,
    pub write_count: u64,
    pub credentials: Credentials,
    pub tokens: HashMap<String, Token>,
    pub state_file: Option<PathBuf>,
}

impl Core {
    /// Moves tasks along the clock (persisting when something changed).
    pub fn advance(&mut self) {
        if tasks::advance(
            &mut self.store,
            &self.settings,
            tasks::now_ms(),
            self.skew_seconds,
        ) {
            self.persist();
        }
    }

    pub fn persist(&self) {
        if let Some(path) = &self.state_file
            && let Err(error) = self.store.save(path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the simulator state");
        }
    }

    /// Server clock in Unix seconds (real clock + skew).
    pub fn server_now_s(&self) -> i64 {
        tasks::now_ms().div_euclid(1000) + self.skew_seconds
    }

    /// Server clock as an OVH datetime.
    pub fn now_string(&self) -> String {
        tasks::format_ms(tasks::now_ms() + self.skew_seconds * 1000)
    }

    pub fn new_task(
        &mut self,
        function: &str,
        target: Target,
        revert: Option<store::Object>,
    ) -> store::TaskRecord {
        tasks::new_task(
            &mut self.store,
            &self.settings,
            &mut self.fail_next,
            self.skew_seconds,
            function,
            target,
            revert,
        )
    }

    pub fn service_index(&self, org: &str, svc: &str) -> Option<usize> {
        self.store
            .services
            .iter()
            .position(|s| s.organization == org && s.service == svc)
    }
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    query_seq: AtomicU64,
    instance: String,
}

/// A simulator: a cheap handle over shared state.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Result<Self, SimulatorError> {
        let SimulatorConfig {
            seed,
            mut settings,
            state_file,
        } = config;
        if let Some(t) = &seed.tasks {
            if let Some(todo) = t.todo_seconds {
                settings.task_todo_seconds = todo;
            }
            if let Some(doing) = t.doing_seconds {
                settings.task_doing_seconds = doing;
            }
        }
        let now = tasks::format_ms(tasks::now_ms());
        let loaded = match &state_file {
            Some(path) => Store::load(path).map_err(|source| SimulatorError::StateFile {
                path: path.clone(),
                source,
            })?,
            None => None,
        };
        let store = match loaded {
            // Services the seed gained since the state was saved are added.
            Some(mut store) => {
                store.add_missing_services(&seed.services, &now);
                store
            }
            None => Store::from_seed(&seed.services, &now),
        };
        let core = Core {
            store,
            settings,
            faults: Faults::default(),
            dice: rand::SeedableRng::from_os_rng(),
            fail_next: Vec::new(),
            skew_seconds: 0,
            counters: BTreeMap::new(),
            fault_counts: BTreeMap::new(),
            write_count: 0,
            credentials: Credentials::from_seed(&seed.credentials),
            tokens: HashMap::new(),
            state_file,
        };
        core.persist();
        Ok(Self {
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                query_seq: AtomicU64::new(1),
                instance: auth::random_hex(4),
            }),
        })
    }

    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        self.shared
            .core
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The core with tasks moved along the clock first.
    pub(crate) fn core_now(&self) -> MutexGuard<'_, Core> {
        let mut core = self.core();
        core.advance();
        core
    }

    /// A new `X-Ovh-QueryID`, e.g. `EU.ext-1.5f3a9c1d.42.0f1e…`.
    pub(crate) fn next_query_id(&self) -> String {
        let n = self.shared.query_seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "EU.ext-1.{}.{n}.{}",
            self.shared.instance,
            auth::random_hex(16)
        )
    }

    /// The API (under `/1.0/` and `/v1/`), the OAuth2 token endpoint and the admin API.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Serves connections from `listener` until the future is dropped; faults that close a
    /// connection without an answer need this accept loop.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        server::serve(self.clone(), listener).await
    }

    /// Binds `addr` (port 0 for any) and serves in a background task.
    pub async fn start(
        config: SimulatorConfig,
        addr: SocketAddr,
    ) -> Result<RunningSimulator, SimulatorError> {
        let sim = Self::new(config)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimulatorError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind { addr, source })?;
        let server = sim.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = server.serve(listener).await {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok(RunningSimulator {
            sim,
            addr: local,
            task,
        })
    }

    /// The whole state as JSON (relay passwords redacted).
    pub fn state(&self) -> Value {
        let core = self.core_now();
        let mut state = core.store.redacted();
        if let Value::Object(map) = &mut state {
            map.insert(
                "settings".to_owned(),
                serde_json::to_value(&core.settings).unwrap_or(Value::Null),
            );
            map.insert("skewSeconds".to_owned(), core.skew_seconds.into());
        }
        state
    }

    /// Requests per `"METHOD /route/template"` (every API request that matched a route,
    /// including those a fault or authentication turned away).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.core().counters.clone()
    }

    /// Faults injected since the start (or the last reset), by kind.
    pub fn fault_counts(&self) -> BTreeMap<String, u64> {
        self.core().fault_counts.clone()
    }

    pub fn reset_counters(&self) {
        let mut core = self.core();
        core.counters.clear();
        core.fault_counts.clear();
        core.write_count = 0;
    }

    /// POST/PUT/DELETE API requests that passed authentication and reached their handler.
    pub fn write_count(&self) -> u64 {
        self.core().write_count
    }

    pub fn settings(&self) -> Settings {
        self.core().settings.clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.core().settings);
    }

    pub fn faults(&self) -> Faults {
        self.core().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut core = self.core();
        core.dice = match faults.seed {
            Some(seed) => rand::SeedableRng::seed_from_u64(seed),
            None => rand::SeedableRng::from_os_rng(),
        };
        core.faults = faults;
    }

    /// Server clock = real clock + `seconds` (what `/auth/time` returns and dates show).
    pub fn set_clock_skew(&self, seconds: i64) {
        self.core().skew_seconds = seconds;
    }

    /// The next task (of `function`, or of any function) ends in `error`.
    pub fn fail_next_task(&self, function: Option<&str>) {
        self.core().fail_next.push(function.map(str::to_owned));
    }

    pub fn connectors(&self, org: &str, svc: &str) -> Vec<Value> {
        let core = self.core_now();
        core.store
            .service(org, svc)
            .map(|s| s.connectors.values().map(store::Connector::view).collect())
            .unwrap_or_default()
    }

    pub fn connector(&self, org: &str, svc: &str, id: i64) -> Option<Value> {
        let core = self.core_now();
        core.store
            .service(org, svc)
            .and_then(|s| s.connectors.get(&id))
            .map(store::Connector::view)
    }

    pub fn account(&self, org: &str, svc: &str, email: &str) -> Option<Value> {
        let core = self.core_now();
        core.store
            .service(org, svc)
            .and_then(|s| s.accounts.get(email))
            .map(|a| Value::Object(a.clone()))
    }

    pub fn domain(&self, org: &str, svc: &str, name: &str) -> Option<Value> {
        let core = self.core_now();
        core.store
            .service(org, svc)
            .and_then(|s| s.domains.get(name))
            .map(|d| Value::Object(d.clone()))
    }

    /// A task of the service, as `GET P/task/{id}` shows it.
    pub fn task(&self, org: &str, svc: &str, id: i64) -> Option<Value> {
        let core = self.core_now();
        core.store
            .service(org, svc)
            .and_then(|s| s.tasks.get(&id))
            .map(store::TaskRecord::view)
    }

    /// Merges `patch` into a connector, out of band (no task, no validation).
    pub fn edit_connector(
        &self,
        org: &str,
        svc: &str,
        id: i64,
        patch: Value,
    ) -> Result<(), SimulatorError> {
        admin::edit_connector(&mut self.core_now(), org, svc, id, patch)
    }

    /// Merges `patch` into a mailbox, out of band (no task, no validation).
    pub fn edit_account(
        &self,
        org: &str,
        svc: &str,
        email: &str,
        patch: Value,
    ) -> Result<(), SimulatorError> {
        admin::edit_account(&mut self.core_now(), org, svc, email, patch)
    }

    /// Creates a mailbox; it inherits its domain's `sendConnectorIdDefault`.
    pub fn create_account(&self, org: &str, svc: &str, email: &str) -> Result<(), SimulatorError> {
        admin::create_account(&mut self.core_now(), org, svc, email)
    }

    /// Removes a connector out of band (references fall back to 0).
    pub fn delete_connector(&self, org: &str, svc: &str, id: i64) -> Result<(), SimulatorError> {
        admin::delete_connector(&mut self.core_now(), org, svc, id)
    }

    /// For tests: the relay password `POST`/`changeAuthentication` stored.
    pub fn connector_password(&self, org: &str, svc: &str, id: i64) -> Option<String> {
        let core = self.core();
        core.store
            .service(org, svc)
            .and_then(|s| s.connectors.get(&id))
            .and_then(|c| c.password.clone())
    }

    /// For tests: the relay user stored.
    pub fn connector_user(&self, org: &str, svc: &str, id: i64) -> Option<String> {
        let core = self.core();
        core.store
            .service(org, svc)
            .and_then(|s| s.connectors.get(&id))
            .and_then(|c| c.user.clone())
    }
}

/// A simulator serving in a background task; dropping it stops the server.
pub struct RunningSimulator {
    sim: Simulator,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/1.0`.
    pub fn base_url(&self) -> String {
        format!("http://{}/1.0", self.addr)
    }

    pub fn sim(&self) -> &Simulator {
        &self.sim
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
