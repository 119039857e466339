//! An in-memory Kubernetes API server for tests.
//!
//! It is faithful where kube-rs' runtime (controllers, watchers, the `finalizer()` helper,
//! server-side apply, event recorders, leader election) and kubectl notice the difference:
//! resourceVersions and resumable watches with 410 Gone, no-op writes that change nothing,
//! status subresources, generation, finalizers and namespace termination, `Status` errors.
//! It can be used in-process through [`ApiServer::client`] or over TCP with
//! [`ApiServer::serve`].

mod apply;
mod cel_rules;
mod defaulting;
mod deletion;
mod discovery;
mod events;
mod field_error;
mod handlers;
mod object;
mod openapi;
mod patch;
mod protobuf;
mod repr;
mod resources;
mod schema;
mod schema_validation;
mod selectors;
mod status;
mod store;
pub mod table;
mod validation;
mod watch;
mod writes;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::ApiResource;
use serde_json::Value;

pub use resources::ResourceKind;
pub use status::ApiError;

use resources::{Registry, ResourceKey};
use store::Store;

/// Tunables; the defaults suit tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// Changes kept for watch resumption; older resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// How often open watches receive a bookmark (when they allow bookmarks).
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// Registry and store, behind one lock so every request sees a consistent pair.
#[derive(Debug)]
struct State {
    registry: Registry,
    store: Store,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Carries the newest resourceVersion; watches wake on it.
    changes: tokio::sync::watch::Sender<u64>,
    config: Config,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in a way that
        // matters to tests, so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to one fake API server; clones share the same state.
#[derive(Debug, Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// An empty server with the built-in kinds and default [`Config`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// An empty server with the given tunables.
    pub fn with_config(config: Config) -> Self {
        let store = Store::new(config.history_limit);
        let (changes, _) = tokio::sync::watch::channel(store.resource_version());
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    registry: Registry::default(),
                    store,
                }),
                changes,
                config,
            }),
        }
    }

    /// The HTTP API as an axum router.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handlers::dispatch)
            .with_state(self.clone())
    }

    /// A kube client talking to this server in-process (no sockets), default namespace
    /// `default`. Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// Serves the API over `listener` until the future is dropped.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Starts serving the kinds of `crd` (and stores the CRD object, as `kubectl get crd`
    /// would show it). Writes of its kinds are defaulted and validated against the CRD's
    /// schema and CEL rules, as a real API server does.
    pub fn register_crd(&self, crd: &CustomResourceDefinition) {
        self.install_crd(crd, true);
    }

    /// Like [`ApiServer::register_crd`], but its kinds are only pruned of unknown fields,
    /// never defaulted or validated: what a cluster holds after a looser version of the CRD
    /// was applied, so that objects the real CRD refuses can be stored.
    pub fn register_crd_unvalidated(&self, crd: &CustomResourceDefinition) {
        self.install_crd(crd, false);
    }

    fn install_crd(&self, crd: &CustomResourceDefinition, validates: bool) {
        let Ok(body) = serde_json::to_value(crd) else {
            return;
        };
        let name = crd.metadata.name.clone().unwrap_or_default();
        self.write(|state| {
            let Some(kind) = state
                .registry
                .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .cloned()
            else {
                return;
            };
            let options = writes::WriteOptions::default();
            let target = writes::Target {
                kind: &kind,
                namespace: "",
                name: &name,
                subresource: writes::Subresource::Main,
            };
            let result = if state.store.get(&kind.key(), "", &name).is_some() {
                writes::update(state, target, body, &options)
            } else {
                writes::create(state, &kind, "", body, &options)
            };
            if let Err(error) = result {
                tracing::warn!(%error, crd = %name, "storing the CRD object failed");
            }
            // After storing it: storing a CRD registers its kinds with validation.
            state.registry.register_crd(crd, validates);
        });
    }

    /// One stored object, as the API would return it. `namespace` is ignored for
    /// cluster-scoped kinds.
    pub fn get_object(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = self.shared.lock();
        let (key, namespace) = Self::locate(&state, resource, namespace);
        state.store.get(&key, &namespace, name).cloned()
    }

    /// Stored objects of one kind, in one namespace or (`None`) all of them.
    pub fn list_objects(&self, resource: &ApiResource, namespace: Option<&str>) -> Vec<Value> {
        let state = self.shared.lock();
        let (key, _) = Self::locate(&state, resource, namespace);
        state
            .store
            .list(&key, namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Number of persisted changes so far; writes that changed nothing do not count.
    pub fn write_count(&self) -> u64 {
        self.shared.lock().store.writes()
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.resource_version()
    }

    /// Every stored Event, from both `v1` and `events.k8s.io/v1`.
    pub fn events(&self) -> Vec<Value> {
        let state = self.shared.lock();
        ["", "events.k8s.io"]
            .into_iter()
            .flat_map(|group| {
                let key = ResourceKey {
                    group: group.to_owned(),
                    plural: "events".to_owned(),
                };
                state
                    .store
                    .list(&key, None)
                    .map(|(_, object)| object.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every stored object, to be loaded later with [`ApiServer::restore`].
    pub fn snapshot(&self) -> Value {
        self.shared.lock().store.export()
    }

    /// Loads a [`ApiServer::snapshot`] (after the CRDs are registered), keeping uids and
    /// resourceVersions. Returns the number of objects loaded.
    pub fn restore(&self, saved: &Value) -> Result<usize, String> {
        self.write(|state| state.store.import(saved))
    }

    /// Forgets the watch history: every watch resuming from an earlier resourceVersion gets
    /// 410 Gone and must relist.
    pub fn compact_history(&self) {
        self.shared.lock().store.compact();
    }

    fn locate(
        state: &State,
        resource: &ApiResource,
        namespace: Option<&str>,
    ) -> (ResourceKey, String) {
        let key = ResourceKey {
            group: resource.group.clone(),
            plural: resource.plural.clone(),
        };
        let namespaced = state
            .registry
            .lookup_key(&key)
            .is_none_or(|kind| kind.namespaced);
        let namespace = if namespaced {
            namespace.unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        (key, namespace)
    }

    /// Runs `f` under the lock, then wakes watches if it changed anything.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (result, before, after) = {
            let mut state = self.shared.lock();
            let before = state.store.resource_version();
            let result = f(&mut state);
            (result, before, state.store.resource_version())
        };
        if after != before {
            self.shared.changes.send_replace(after);
        }
        result
    }
}
