//! The scenario harness: the in-memory Kubernetes API with both CRDs, the OVH simulator over
//! HTTP, the credentials and password Secrets, and the real controllers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::core::ApiResource;
use sendconnector_operator::apiserver::ApiServer;
use sendconnector_operator::controller::{self, ControllerConfig};
use sendconnector_operator::crd::{self, MailboxBinding, SendConnector};
use sendconnector_operator::ovh::BudgetSettings;
use sendconnector_operator::simulator::{RunningSimulator, Seed, Simulator, SimulatorConfig};
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
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

pub struct Harness {
    pub k8s: ApiServer,
    pub client: kube::Client,
    pub sim: RunningSimulator,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(resync: Duration) -> Self {
        let k8s = ApiServer::new();
        for c in crd::crds() {
            k8s.register_crd(&c);
        }
        let client = k8s.client();
        let sim = Simulator::start(
            SimulatorConfig {
                seed: Seed::from_yaml(SEED).unwrap(),
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
        ] {
            let secret: Secret =
                serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                    .unwrap();
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
        let mut h = Self {
            k8s,
            client,
            sim,
            stop: None,
            task: None,
        };
        h.start_controller(resync);
        h
    }

    pub fn start_controller(&mut self, resync: Duration) {
        let config = ControllerConfig {
            resync_interval: resync,
            budget: BudgetSettings {
                rate: 100.0,
                burst: 100,
            },
            task_poll: Duration::from_millis(100),
            backoff_base: Duration::from_millis(200),
            ..ControllerConfig::default()
        };
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
