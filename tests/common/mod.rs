//! The scenario harness: the in-memory Kubernetes API with both CRDs, the OVH simulator over
//! HTTP, the credentials and password Secrets, and the real controllers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

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
    pub k8s: ApiServer,
    pub client: kube::Client,
    pub sim: RunningSimulator,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
    pub resync: Duration,
    /// Changes to the test configuration, applied on every (re)start.
    pub tweak: Option<Tweak>,
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
        Self::start_idle_with(seed, true).await
    }

    /// Like [`Harness::start_idle`], on a cluster whose CRDs carry no validation (as after a
    /// looser CRD was applied), so that objects the real CRDs refuse can be stored.
    pub async fn start_idle_unvalidated() -> Self {
        Self::start_idle_with(SEED, false).await
    }

    async fn start_idle_with(seed: &str, validated: bool) -> Self {
        let resync = Duration::from_secs(3600);
        let k8s = ApiServer::new();
        for c in crd::crds() {
            if validated {
                k8s.register_crd(&c);
            } else {
                k8s.register_crd_unvalidated(&c);
            }
        }
        let client = k8s.client();
        let sim = Simulator::start(
            SimulatorConfig {
                seed: Seed::from_yaml(seed).unwrap(),
                ..SimulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
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
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
            )
            .await
            .unwrap();
        Self {
            k8s,
            client,
            sim,
            stop: None,
            task: None,
            resync,
            tweak: None,
        }
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
        let config = self.tweak.as_ref().map_or_else(
            || test_config(resync),
            |t| {
                let mut c = test_config(resync);
                t(&mut c);
                c
            },
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let client = self.client.clone();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            controller::run(client, config, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
    }

    pub fn connectors(&self) -> Api<SendConnector> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn bindings(&self) -> Api<MailboxBinding> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn object<K: kube::Resource<DynamicType = ()>>(&self, name: &str) -> Value {
        self.k8s
            .get_object(&ApiResource::erase::<K>(&()), Some(NS), name)
            .unwrap_or(Value::Null)
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
        "metadata": {"name": name, "namespace": NS},
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
        "metadata": {"name": name, "namespace": NS},
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
        self.k8s
            .events()
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
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NS);
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
        self.wait_condition_in::<K>(NS, name, status, reason).await
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
