//! Tenancy: a controller limited to some namespaces never touches the others, and the
//! operator's default credentials serve only the namespaces allowed to use them, without a
//! single OVH request for the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::core::ApiResource;
use memory_apiserver::ApiServer;
use ovh_simulator::{RunningSimulator, Seed, Simulator, SimulatorConfig};
use sendconnector_operator::controller::{self, ControllerConfig};
use sendconnector_operator::crd::{self, SendConnector};
use sendconnector_operator::ovh::{BudgetSettings, Credentials};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ORG: &str = "private-zz111111-1";

const SEED: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: as-secret
    consumerKey: ck-secret
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}, {method: PUT, path: "/*"}, {method: DELETE, path: "/*"}]
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

struct Setup {
    k8s: ApiServer,
    client: kube::Client,
    sim: RunningSimulator,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Setup {
    async fn start() -> Self {
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
        Self {
            k8s,
            client,
            sim,
            stop: None,
            task: None,
        }
    }

    fn sim_credentials(&self) -> BTreeMap<String, String> {
        [
            ("endpoint", self.sim.base_url()),
            ("applicationKey", "ak".to_owned()),
            ("applicationSecret", "as-secret".to_owned()),
            ("consumerKey", "ck-secret".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn credentials_secret(&self, namespace: &str, name: &str) {
        let secret: Secret = serde_json::from_value(
            json!({"metadata": {"name": name}, "stringData": self.sim_credentials()}),
        )
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    fn run(&mut self, tweak: impl FnOnce(&mut ControllerConfig)) {
        let mut config = ControllerConfig {
            resync_interval: Duration::from_secs(3600),
            budget: BudgetSettings {
                rate: 100.0,
                burst: 100,
            },
            task_poll: Duration::from_millis(100),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            ..ControllerConfig::default()
        };
        tweak(&mut config);
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

    async fn create(&self, namespace: &str, name: &str, credentials: Option<&str>) {
        let mut spec = json!({"organization": ORG, "smartHost": "smtp-relay.example.com"});
        if let Some(secret) = credentials {
            spec["credentialsSecretRef"] = json!({"name": secret});
        }
        let sc: SendConnector = serde_json::from_value(json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }))
        .unwrap();
        Api::<SendConnector>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &sc)
            .await
            .unwrap();
    }

    fn object(&self, namespace: &str, name: &str) -> Value {
        self.k8s
            .get_object(
                &ApiResource::erase::<SendConnector>(&()),
                Some(namespace),
                name,
            )
            .unwrap_or(Value::Null)
    }

    fn requests(&self) -> u64 {
        self.sim.sim().counters().values().sum()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("controller stops")
                .unwrap();
        }
    }
}

fn condition(obj: &Value, kind: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is(obj: &Value, kind: &str, status: &str, reason: Option<&str>) -> bool {
    condition(obj, kind).is_some_and(|(s, r)| s == status && reason.is_none_or(|want| r == want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_limited_controller_never_touches_other_namespaces() {
    let mut s = Setup::start().await;
    for ns in ["a", "b", "c"] {
        s.credentials_secret(ns, "ovh-api").await;
    }
    s.run(|c| c.namespaces = vec!["a".into(), "c".into()]);
    s.create("a", "relay-a", Some("ovh-api")).await;
    s.create("b", "relay-b", Some("ovh-api")).await;

    wait_for("relay-a Ready", Duration::from_secs(20), || {
        is(&s.object("a", "relay-a"), "Ready", "True", None)
    })
    .await;
    // A resource created later in another watched namespace is picked up as well.
    s.create("c", "relay-c", Some("ovh-api")).await;
    wait_for("relay-c Ready", Duration::from_secs(20), || {
        is(&s.object("c", "relay-c"), "Ready", "True", None)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let b = s.object("b", "relay-b");
    assert_eq!(b["status"], Value::Null, "{b:#}");
    assert_eq!(b["metadata"]["finalizers"], Value::Null, "{b:#}");
    assert!(
        !s.k8s
            .events()
            .iter()
            .any(|e| e["regarding"]["namespace"] == "b" || e["involvedObject"]["namespace"] == "b"),
        "no Event about namespace b"
    );
    let names: Vec<Value> = s
        .sim
        .sim()
        .connectors(ORG, ORG)
        .iter()
        .map(|c| c["displayName"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&json!("relay-a")) && names.contains(&json!("relay-c")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_credentials_serve_only_the_allowed_namespaces() {
    let mut s = Setup::start().await;
    s.credentials_secret("operators", "ovh-default").await;
    s.run(|c| {
        c.default_credentials_secret = Some(("operators".into(), "ovh-default".into()));
        c.default_credentials_namespaces = vec!["a".into()];
    });

    s.create("b", "relay-b", None).await;
    wait_for("relay-b Stalled", Duration::from_secs(20), || {
        is(
            &s.object("b", "relay-b"),
            "Stalled",
            "True",
            Some("NoCredentials"),
        )
    })
    .await;
    let b = s.object("b", "relay-b");
    assert!(is(&b, "Ready", "False", Some("NoCredentials")), "{b:#}");
    assert_eq!(
        s.requests(),
        0,
        "no OVH request for a namespace without credentials: {:?}",
        s.sim.sim().counters()
    );

    s.create("a", "relay-a", None).await;
    wait_for("relay-a Ready", Duration::from_secs(20), || {
        is(&s.object("a", "relay-a"), "Ready", "True", None)
    })
    .await;
    let on_ovh = s.sim.sim().connectors(ORG, ORG);
    assert_eq!(on_ovh.len(), 1);
    assert_eq!(on_ovh[0]["displayName"], "relay-a");
    assert!(is(
        &s.object("b", "relay-b"),
        "Stalled",
        "True",
        Some("NoCredentials")
    ));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_credentials_are_the_default_when_no_secret_is_named() {
    let mut s = Setup::start().await;
    let env = Credentials::from_map(&s.sim_credentials()).unwrap();
    s.run(move |c| {
        c.default_credentials_env = Some(env);
        c.default_credentials_namespaces = vec!["*".into()];
    });
    s.create("anywhere", "relay", None).await;
    wait_for("relay Ready", Duration::from_secs(20), || {
        is(&s.object("anywhere", "relay"), "Ready", "True", None)
    })
    .await;
    assert_eq!(s.sim.sim().connectors(ORG, ORG).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_default_credentials_at_all_is_no_credentials() {
    let mut s = Setup::start().await;
    s.run(|c| c.default_credentials_namespaces = vec!["*".into()]);
    s.create("a", "relay", None).await;
    wait_for("relay Stalled", Duration::from_secs(20), || {
        is(
            &s.object("a", "relay"),
            "Stalled",
            "True",
            Some("NoCredentials"),
        )
    })
    .await;
    assert_eq!(s.requests(), 0);
    s.stop().await;
}
