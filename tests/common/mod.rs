//! The scenario harness: a Kubernetes API with both CRDs (the in-memory one, or a real
//! kube-apiserver: [`backend`]), the OVH simulator over HTTP, the credentials and password
//! Secrets, and the real controllers.
//!
//! Each harness has a namespace of its own (`h.ns`): `mail` on the in-memory API, a unique
//! name on a real API server, which the scenarios of several test processes share. There the
//! controller watches only the harness's namespaces and runs as a ServiceAccount with the
//! shipped RBAC ([`operator_identity`]); a request it sends that is refused with 403 fails the
//! test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod backend;
pub mod operator_identity;
pub mod testenv;

use backend::{Backend, Kind};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::core::ApiResource;
use memory_apiserver::ApiServer;
use ovh_simulator::{RunningSimulator, Seed, Simulator, SimulatorConfig};
use sendconnector_operator::controller::{self, ControllerConfig};
use sendconnector_operator::crd::{self, MailboxBinding, SendConnector};
use sendconnector_operator::ovh::retry::RetryPolicy;
use sendconnector_operator::ovh::{BudgetSettings, ClientOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const ORG: &str = "private-zz111111-1";
/// The harness's namespace on the in-memory API.
pub const NS: &str = "mail";

pub const SEED: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: as-secret
    consumerKey: ck-secret
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}, {method: PUT, path: "/*"}, {method: DELETE, path: "/*"}]
  - applicationKey: ak-ro
    applicationSecret: as-ro-secret
    consumerKey: ck-ro-secret
    accessRules: [{method: GET, path: "/*"}]
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

/// A change to the controller settings of one scenario.
pub type Tweak = Box<dyn Fn(&mut ControllerConfig) + Send + Sync>;

pub struct Harness {
    pub k8s: Backend,
    /// A client with every right (the admin's on a real API server), for the test's own acts.
    pub client: kube::Client,
    /// The harness's namespace: the resources', the Secrets', the Lease's.
    pub ns: String,
    /// Every namespace of the harness (`ns` first), the ones a controller watches on a real
    /// API server.
    pub namespaces: Vec<String>,
    pub sim: RunningSimulator,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
    pub resync: Duration,
    /// Changes to the test configuration, applied on every (re)start.
    pub tweak: Option<Tweak>,
    /// The shipped RBAC the operator runs with on a real API server
    /// (`SENDCONNECTOR_TEST_RBAC` unless a test says otherwise).
    pub rbac: backend::Rbac,
}

/// The controller settings of the scenarios: fast polls, short backoffs, no budget limit.
pub fn test_config(resync: Duration) -> ControllerConfig {
    ControllerConfig {
        resync_interval: resync,
        budget: BudgetSettings {
            rate: 100.0,
            burst: 100,
        },
        task_poll: Duration::from_millis(100),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ovh: ClientOptions {
            timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_retries: 2,
                base: Duration::from_millis(20),
                max_delay: Duration::from_secs(2),
            },
            ..ClientOptions::default()
        },
        ..ControllerConfig::default()
    }
}

impl Harness {
    pub async fn start(resync: Duration) -> Self {
        let mut h = Self::start_idle().await;
        h.start_controller(resync);
        h
    }

    /// The API server, the simulator and the Secrets, without a controller yet.
    pub async fn start_idle() -> Self {
        Self::start_idle_seeded(SEED).await
    }

    /// Like [`Harness::start_idle`], with another simulator seed (same credentials).
    pub async fn start_idle_seeded(seed: &str) -> Self {
        Self::start_idle_on(backend::selected(), seed).await
    }

    /// Like [`Harness::start_idle`], on an in-memory cluster whose CRDs carry no validation
    /// (as after a looser CRD was applied), so that objects the real CRDs refuse can be
    /// stored. A real server cannot be made to store them this way: such tests stay on the
    /// in-memory backend.
    pub async fn start_idle_unvalidated() -> Self {
        Self::start_idle_with(Kind::Memory, SEED, false).await
    }

    /// [`Harness::start_idle_seeded`] on a given backend.
    pub async fn start_idle_on(kind: Kind, seed: &str) -> Self {
        Self::start_idle_with(kind, seed, true).await
    }

    async fn start_idle_with(kind: Kind, seed: &str, validated: bool) -> Self {
        let resync = Duration::from_secs(3600);
        let (k8s, client, ns) = match kind {
            Kind::Memory => {
                let k8s = ApiServer::new();
                for c in crd::crds() {
                    if validated {
                        k8s.register_crd(&c);
                    } else {
                        k8s.register_crd_unvalidated(&c);
                    }
                }
                let client = k8s.client();
                (Backend::Memory(k8s), client, NS.to_owned())
            }
            Kind::Real => {
                let k8s = Backend::real();
                let Backend::Real(real) = &k8s else {
                    unreachable!()
                };
                let client =
                    kube::Client::try_from(backend::real_config(&real.kubeconfig, None).await)
                        .unwrap();
                (k8s, client, unique_namespace())
            }
        };
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
        let sim = Simulator::start(
            SimulatorConfig {
                seed: Seed::from_yaml(seed).unwrap(),
                ..SimulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for (name, data) in [
            (
                "ovh-api",
                json!({"endpoint": sim.base_url(), "applicationKey": "ak", "applicationSecret": "as-secret", "consumerKey": "ck-secret"}),
            ),
            ("relay-password", json!({"password": "relay-password-1"})),
            (
                "ovh-read-only",
                json!({"endpoint": sim.base_url(), "applicationKey": "ak-ro", "applicationSecret": "as-ro-secret", "consumerKey": "ck-ro-secret"}),
            ),
        ] {
            let secret: Secret =
                serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                    .unwrap();
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
        Self {
            k8s,
            client,
            namespaces: vec![ns.clone()],
            ns,
            sim,
            stop: None,
            task: None,
            resync,
            tweak: None,
            rbac: backend::rbac_mode(),
        }
    }

    /// A namespace of the harness's own besides `ns`, created: `name` on the in-memory API,
    /// `NS-name` on a real one. Create them before the controller starts: on a real API
    /// server it watches the namespaces known at its start.
    pub async fn namespace(&mut self, name: &str) -> String {
        let full = self.unwatched_namespace(name).await;
        if !self.namespaces.contains(&full) {
            self.namespaces.push(full.clone());
        }
        full
    }

    /// Like [`Harness::namespace`], for a namespace the controller does not watch unless a
    /// test says so (one holding the default credentials, say).
    pub async fn unwatched_namespace(&mut self, name: &str) -> String {
        let full = match self.k8s.kind() {
            Kind::Memory => name.to_owned(),
            Kind::Real => format!("{}-{name}", self.ns),
        };
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let created = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": full}})).unwrap(),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {full}: {e}"),
        }
        full
    }

    /// Like [`Harness::start`], with the controller settings changed by `tweak`.
    pub async fn start_with(
        resync: Duration,
        tweak: impl Fn(&mut ControllerConfig) + Send + Sync + 'static,
    ) -> Self {
        let mut h = Self::start_idle().await;
        h.tweak = Some(Box::new(tweak));
        h.start_controller(resync);
        h
    }

    pub fn start_controller(&mut self, resync: Duration) {
        self.resync = resync;
        let mut config = test_config(resync);
        if let Some(t) = self.tweak.as_ref() {
            t(&mut config);
        }
        let client = self.controller_client(&mut config);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            controller::run(client.await, config, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
    }

    /// The client a controller with `config` runs with: the harness's own on the in-memory
    /// API; on a real one, the operator's ServiceAccount with the shipped RBAC for what
    /// `config` needs, and `config` limited to the harness's namespaces when it names none.
    pub fn controller_client(
        &self,
        config: &mut ControllerConfig,
    ) -> impl std::future::Future<Output = kube::Client> + Send + 'static {
        let admin = self.client.clone();
        let real = match &self.k8s {
            Backend::Memory(_) => None,
            Backend::Real(real) => {
                if config.namespaces.is_empty() {
                    config.namespaces.clone_from(&self.namespaces);
                }
                Some(real.clone())
            }
        };
        let home = config
            .leader_election
            .as_ref()
            .map_or_else(|| format!("{}-system", self.ns), |l| l.namespace.clone());
        let watched = config.namespaces.clone();
        let default_secret = config.default_credentials_secret.clone();
        let leader_election = config.leader_election.is_some();
        let rbac = self.rbac;
        async move {
            let Some(real) = real else {
                return admin;
            };
            let needs = operator_identity::Needs {
                home: &home,
                watched: &watched,
                default_secret,
                leader_election,
            };
            operator_identity::operator_client(&admin, &real, rbac, &needs).await
        }
    }

    pub fn connectors(&self) -> Api<SendConnector> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn bindings(&self) -> Api<MailboxBinding> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn object<K: kube::Resource<DynamicType = ()>>(&self, name: &str) -> Value {
        self.object_in::<K>(&self.ns, name)
    }

    /// Every Event in the harness's namespaces (on the in-memory API: every Event).
    pub fn events(&self) -> Vec<Value> {
        match &self.k8s {
            Backend::Memory(server) => server.events(),
            Backend::Real(_) => {
                let resource = ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&());
                self.namespaces
                    .iter()
                    .flat_map(|ns| self.k8s.list_objects(&resource, Some(ns)))
                    .collect()
            }
        }
    }

    /// A value that changes whenever Kubernetes stores a change: on the in-memory API its
    /// count of persisted writes; on a real one the resourceVersions of every object the
    /// operator writes (both kinds and Events) in the harness's namespaces. A write that
    /// changes nothing changes neither.
    pub fn k8s_revision(&self) -> String {
        match &self.k8s {
            Backend::Memory(server) => server.write_count().to_string(),
            Backend::Real(_) => {
                let mut versions = Vec::new();
                for resource in [
                    ApiResource::erase::<SendConnector>(&()),
                    ApiResource::erase::<MailboxBinding>(&()),
                    ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&()),
                ] {
                    for ns in &self.namespaces {
                        for o in self.k8s.list_objects(&resource, Some(ns)) {
                            versions.push(format!(
                                "{}/{ns}/{}@{}",
                                resource.plural,
                                o["metadata"]["name"].as_str().unwrap_or_default(),
                                o["metadata"]["resourceVersion"]
                                    .as_str()
                                    .unwrap_or_default()
                            ));
                        }
                    }
                }
                versions.sort();
                versions.join(" ")
            }
        }
    }

    /// Requests the simulator received on one route of the service, e.g. `("PUT", "/sendConnector/{id}")`.
    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.counter(&format!("{method} {P}{route}"))
    }

    pub fn counter(&self, key: &str) -> u64 {
        self.sim.sim().counters().get(key).copied().unwrap_or(0)
    }
}

pub fn ready(obj: &Value) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].as_str().unwrap_or("").to_owned())
}

/// The message of an object's Ready condition ("" when none).
pub fn ready_message(obj: &Value) -> String {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// A SendConnector `relay` and a MailboxBinding `newsletter` of it, both Ready and every OVH
/// task done; the connector's id.
pub async fn bound_pair(h: &Harness) -> i64 {
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    h.wait_ready::<MailboxBinding>("newsletter").await;
    h.wait_ovh_settled().await;
    sc["status"]["connectorId"].as_i64().unwrap()
}

pub async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn connector_manifest(name: &str) -> SendConnector {
    serde_json::from_value(json!({
        "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
        "metadata": {"name": name},
        "spec": {
            "organization": ORG, "smartHost": "smtp-relay.example.com", "port": 587, "requireTLS": true, "maxSendSize": 100,
            "authentication": {"mechanism": "basicAuthRequireTLS", "user": "relay-user", "passwordSecretRef": {"name": "relay-password", "key": "password"}},
            "credentialsSecretRef": {"name": "ovh-api"}, "deletionPolicy": "Delete"
        }
    }))
    .unwrap()
}

pub fn binding_manifest(name: &str, connector: &str) -> MailboxBinding {
    serde_json::from_value(json!({
        "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
        "metadata": {"name": name},
        "spec": {"connectorRef": {"name": connector}, "mailboxes": ["newsletter@mydomain.ovh", "contact@mydomain.ovh"], "defaultForDomains": ["mydomain.ovh"], "deletionPolicy": "Delete"}
    }))
    .unwrap()
}

/// Route template prefix of the simulator's counters.
pub const P: &str = "/email/exchange/{organizationName}/service/{exchangeService}";

impl Harness {
    /// Stops the controllers and waits until they are gone.
    pub async fn stop_controller(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("controller stops")
                .unwrap();
        }
    }

    /// Kills the controllers the way SIGKILL would: no graceful stop, requests in flight cut
    /// off, everything in memory gone.
    pub async fn kill_controller(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Only now: dropping the sender would ask for a graceful stop.
        self.stop.take();
    }

    /// A new controller process: nothing kept in memory, only what Kubernetes holds.
    pub async fn restart_controller(&mut self) {
        self.stop_controller().await;
        let resync = self.resync;
        self.start_controller(resync);
    }

    /// `(reason, note)` of the Events about one object.
    pub fn events_for(&self, name: &str) -> Vec<(String, String)> {
        self.events()
            .iter()
            .filter(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name)
            .map(|e| {
                let note = e["note"]
                    .as_str()
                    .or_else(|| e["message"].as_str())
                    .unwrap_or_default();
                (
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                    note.to_owned(),
                )
            })
            .collect()
    }

    /// The simulator switches under which OVH is least forgiving: a new connector is listed
    /// only once its task is done, a busy object refuses writes, task lists show running
    /// tasks only.
    pub fn use_strict_switches(&self) {
        self.sim.sim().update_settings(|s| {
            s.list_connector_when_created = true;
            s.reject_mutation_while_pending = true;
            s.task_list_includes_finished = false;
        });
    }

    pub fn ovh_writes(&self) -> u64 {
        self.sim.sim().write_count()
    }

    pub async fn patch_connector(&self, name: &str, patch: Value) {
        self.connectors()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    pub async fn patch_binding(&self, name: &str, patch: Value) {
        self.bindings()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    /// Replaces a Secret's data (`stringData` values).
    pub async fn set_secret(&self, name: &str, data: Value) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let patch = json!({"stringData": data});
        secrets
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    /// Creates a Secret in any namespace with these `stringData` values.
    pub async fn create_secret(&self, namespace: &str, name: &str, data: Value) {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    /// Replaces a Secret's data (`stringData` values) in any namespace.
    pub async fn set_secret_in(&self, namespace: &str, name: &str, data: Value) {
        let patch = json!({"stringData": data});
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    /// The OVH credentials of the seed's read-write key, as Secret data.
    pub fn credentials_data(&self) -> Value {
        json!({"endpoint": self.sim.base_url(), "applicationKey": "ak", "applicationSecret": "as-secret", "consumerKey": "ck-secret"})
    }

    pub fn object_in<K: kube::Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Value {
        self.k8s
            .get_object(&ApiResource::erase::<K>(&()), Some(namespace), name)
            .unwrap_or(Value::Null)
    }

    /// Waits until the resource's Ready condition has `status` and `reason`.
    pub async fn wait_condition<K: kube::Resource<DynamicType = ()>>(
        &self,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        self.wait_condition_in::<K>(&self.ns, name, status, reason)
            .await
    }

    /// [`Harness::wait_condition`] in any namespace.
    pub async fn wait_condition_in<K: kube::Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let obj = self.object_in::<K>(namespace, name);
            let cond = obj["status"]["conditions"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["type"] == "Ready").cloned());
            if cond.as_ref().is_some_and(|c| {
                c["status"] == status
                    && c["reason"] == reason
                    && c["observedGeneration"] == obj["metadata"]["generation"]
            }) {
                return obj;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached Ready={status} ({reason}): {:#}",
                obj["status"]
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_ready<K: kube::Resource<DynamicType = ()>>(&self, name: &str) -> Value {
        self.wait_condition::<K>(name, "True", "Ready").await
    }

    /// Waits until no OVH object has a task running (PUTs and auth changes run tasks too).
    pub async fn wait_ovh_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.sim.sim().state().to_string();
            let busy = serde_json::from_str::<Value>(&state)
                .unwrap()
                .pointer("/services")
                .and_then(Value::as_array)
                .is_some_and(|svcs| {
                    svcs.iter().any(|svc| {
                        ["connectors", "accounts", "domains"]
                            .iter()
                            .any(|k| match &svc[*k] {
                                Value::Object(m) => m.values().any(|o| {
                                    let fields = if o["fields"].is_object() {
                                        &o["fields"]
                                    } else {
                                        o
                                    };
                                    fields["taskPendingId"].as_i64().unwrap_or(0) != 0
                                }),
                                Value::Array(a) => a
                                    .iter()
                                    .any(|o| o["taskPendingId"].as_i64().unwrap_or(0) != 0),
                                _ => false,
                            })
                    })
                });
            if !busy {
                return;
            }
            assert!(Instant::now() < deadline, "OVH tasks never finished");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A namespace name no other harness on the same API server has.
pub fn unique_namespace() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "mail-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl Drop for Harness {
    /// On a real API server, a request of the operator refused with 403 is a missing rule in
    /// the shipped RBAC: the test fails (unless it is failing already).
    fn drop(&mut self) {
        if let Backend::Real(real) = &self.k8s {
            let denied = real.denied.lock().unwrap().clone();
            assert!(
                denied.is_empty() || std::thread::panicking(),
                "the operator was refused {} request(s) by RBAC: {denied:#?}",
                denied.len()
            );
        }
    }
}
