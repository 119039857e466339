//! Scenario tests: the real kube-runtime controllers against the in-memory Kubernetes API and
//! the OVH simulator over HTTP, asserting both the resources' status and the simulator's state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

const ORG: &str = "private-zz111111-1";
const NS: &str = "mail";

const SEED: &str = r#"
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

struct Harness {
    k8s: ApiServer,
    client: kube::Client,
    sim: RunningSimulator,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start(resync: Duration) -> Self {
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

    fn start_controller(&mut self, resync: Duration) {
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

    fn connectors(&self) -> Api<SendConnector> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn bindings(&self) -> Api<MailboxBinding> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn object<K: kube::Resource<DynamicType = ()>>(&self, name: &str) -> Value {
        self.k8s
            .get_object(&ApiResource::erase::<K>(&()), Some(NS), name)
            .unwrap_or(Value::Null)
    }

    fn counter(&self, key: &str) -> u64 {
        self.sim.sim().counters().get(key).copied().unwrap_or(0)
    }
}

fn ready(obj: &Value) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].as_str().unwrap_or("").to_owned())
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn connector_manifest(name: &str) -> SendConnector {
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

fn binding_manifest(name: &str, connector: &str) -> MailboxBinding {
    serde_json::from_value(json!({
        "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"connectorRef": {"name": connector}, "mailboxes": ["newsletter@mydomain.ovh", "contact@mydomain.ovh"], "defaultForDomains": ["mydomain.ovh"], "deletionPolicy": "Delete"}
    }))
    .unwrap()
}

const P: &str = "/email/exchange/{organizationName}/service/{exchangeService}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connector_and_binding_converge_once_and_then_stay_quiet() {
    let h = Harness::start(Duration::from_millis(500)).await;
    h.connectors()
        .create(
            &PostParams::default(),
            &connector_manifest("newsletter-relay"),
        )
        .await
        .unwrap();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "newsletter-relay"),
        )
        .await
        .unwrap();

    wait_for("the connector to be Ready", Duration::from_secs(20), || {
        ready(&h.object::<SendConnector>("newsletter-relay")).as_deref() == Some("True")
    })
    .await;
    let sc = h.object::<SendConnector>("newsletter-relay");
    let id = sc["status"]["connectorId"]
        .as_i64()
        .expect("connectorId in status");
    assert_eq!(
        sc["status"]["lastTask"]["function"],
        "addSendConnector",
        "{:#?} {:#?}",
        h.sim.sim().counters(),
        h.k8s
            .events()
            .iter()
            .map(|e| e["note"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(sc["status"]["lastTask"]["status"], "done");
    assert_eq!(sc["status"]["applied_authentication"], Value::Null);
    assert_eq!(
        sc["status"]["appliedAuthentication"]["passwordSecret"]["name"],
        "relay-password"
    );
    assert!(
        sc["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "sendconnector.io/cleanup")
    );
    let on_ovh = h.sim.sim().connectors(ORG, ORG);
    assert_eq!(on_ovh.len(), 1, "created exactly once");
    assert_eq!(on_ovh[0]["displayName"], "newsletter-relay");
    assert_eq!(on_ovh[0]["port"], 587);
    assert_eq!(
        h.sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("relay-password-1")
    );
    assert_eq!(h.counter(&format!("POST {P}/sendConnector")), 1);

    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&h.object::<MailboxBinding>("newsletter")).as_deref() != Some("True") {
        assert!(
            Instant::now() < deadline,
            "binding never Ready: {:#} {:#?}",
            h.object::<MailboxBinding>("newsletter")["status"],
            h.sim.sim().counters()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mb = h.object::<MailboxBinding>("newsletter");
    assert_eq!(mb["status"]["bound"], "3/3");
    assert_eq!(mb["status"]["connectorId"], id);
    for address in ["newsletter@mydomain.ovh", "contact@mydomain.ovh"] {
        assert_eq!(
            h.sim.sim().account(ORG, ORG, address).unwrap()["sendConnectorId"],
            id,
            "{address}"
        );
    }
    assert_eq!(
        h.sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"],
        id
    );

    // Resyncs with nothing changed: OVH is read again, but nothing is written anywhere.
    let ovh_writes = h.sim.sim().write_count();
    let k8s_writes = h.k8s.write_count();
    let lists = h.counter(&format!("GET {P}/sendConnector"));
    wait_for("two more resyncs", Duration::from_secs(20), || {
        h.counter(&format!("GET {P}/sendConnector")) >= lists + 2
    })
    .await;
    let accounts_read = h.counter(&format!("GET {P}/account"));
    wait_for("a binding resync", Duration::from_secs(20), || {
        h.counter(&format!("GET {P}/account")) > accounts_read
    })
    .await;
    assert_eq!(
        h.sim.sim().write_count(),
        ovh_writes,
        "no OVH write on resync"
    );
    assert_eq!(
        h.k8s.write_count(),
        k8s_writes,
        "no Kubernetes write on resync"
    );
    drop(h.stop);
}
