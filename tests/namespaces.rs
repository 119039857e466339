//! Tenancy: a controller limited to some namespaces never touches the others, and the
//! operator's default credentials serve only the namespaces allowed to use them, without a
//! single OVH request for the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, backend};
use kube::api::{Api, PostParams};
use sendconnector_operator::controller::ControllerConfig;
use sendconnector_operator::crd::SendConnector;
use sendconnector_operator::ovh::Credentials;
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

/// The scenario harness with namespaces named by the tests (`a`, `b`, `operators`…), which
/// stand for namespaces of the harness's own on a real API server.
struct Setup {
    h: Harness,
    names: BTreeMap<String, String>,
}

impl Setup {
    /// `watched`: namespaces the controller watches unless the test says otherwise;
    /// `unwatched`: namespaces it never watches (the default credentials' home).
    async fn start(watched: &[&str], unwatched: &[&str]) -> Self {
        let mut h = Harness::start_idle_on(backend::selected(), SEED).await;
        let mut names = BTreeMap::new();
        for ns in watched {
            names.insert((*ns).to_owned(), h.namespace(ns).await);
        }
        for ns in unwatched {
            names.insert((*ns).to_owned(), h.unwatched_namespace(ns).await);
        }
        Self { h, names }
    }

    /// The real name of the test's namespace `ns`.
    fn ns(&self, ns: &str) -> String {
        self.names[ns].clone()
    }

    fn sim_credentials(&self) -> BTreeMap<String, String> {
        [
            ("endpoint", self.h.sim.base_url()),
            ("applicationKey", "ak".to_owned()),
            ("applicationSecret", "as-secret".to_owned()),
            ("consumerKey", "ck-secret".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn credentials_secret(&self, namespace: &str, name: &str) {
        self.h
            .create_secret(&self.ns(namespace), name, self.h.credentials_data())
            .await;
    }

    fn run(&mut self, tweak: impl Fn(&mut ControllerConfig) + Send + Sync + 'static) {
        self.h.tweak = Some(Box::new(tweak));
        self.h.start_controller(Duration::from_secs(3600));
    }

    async fn create(&self, namespace: &str, name: &str, credentials: Option<&str>) {
        let mut spec = json!({"organization": ORG, "smartHost": "smtp-relay.example.com"});
        if let Some(secret) = credentials {
            spec["credentialsSecretRef"] = json!({"name": secret});
        }
        let sc: SendConnector = serde_json::from_value(json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap();
        Api::<SendConnector>::namespaced(self.h.client.clone(), &self.ns(namespace))
            .create(&PostParams::default(), &sc)
            .await
            .unwrap();
    }

    fn object(&self, namespace: &str, name: &str) -> Value {
        self.h.object_in::<SendConnector>(&self.ns(namespace), name)
    }

    fn requests(&self) -> u64 {
        self.h.sim.sim().counters().values().sum()
    }

    async fn stop(mut self) {
        self.h.stop_controller().await;
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
    let mut s = Setup::start(&["a", "b", "c"], &[]).await;
    for ns in ["a", "b", "c"] {
        s.credentials_secret(ns, "ovh-api").await;
    }
    let watched = vec![s.ns("a"), s.ns("c")];
    s.run(move |c| c.namespaces = watched.clone());
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
    let b = s.ns("b");
    assert!(
        !s.h.events()
            .iter()
            .any(|e| e["regarding"]["namespace"] == b.as_str()
                || e["involvedObject"]["namespace"] == b.as_str()),
        "no Event about namespace b"
    );
    let names: Vec<Value> =
        s.h.sim
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
    let mut s = Setup::start(&["a", "b"], &["operators"]).await;
    s.credentials_secret("operators", "ovh-default").await;
    let (operators, a) = (s.ns("operators"), s.ns("a"));
    s.run(move |c| {
        c.default_credentials_secret = Some((operators.clone(), "ovh-default".into()));
        c.default_credentials_namespaces = vec![a.clone()];
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
        s.h.sim.sim().counters()
    );

    s.create("a", "relay-a", None).await;
    wait_for("relay-a Ready", Duration::from_secs(20), || {
        is(&s.object("a", "relay-a"), "Ready", "True", None)
    })
    .await;
    let on_ovh = s.h.sim.sim().connectors(ORG, ORG);
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
    let mut s = Setup::start(&["anywhere"], &[]).await;
    let env = Credentials::from_map(&s.sim_credentials()).unwrap();
    s.run(move |c| {
        c.default_credentials_env = Some(env.clone());
        c.default_credentials_namespaces = vec!["*".into()];
    });
    s.create("anywhere", "relay", None).await;
    wait_for("relay Ready", Duration::from_secs(20), || {
        is(&s.object("anywhere", "relay"), "Ready", "True", None)
    })
    .await;
    assert_eq!(s.h.sim.sim().connectors(ORG, ORG).len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_default_credentials_at_all_is_no_credentials() {
    let mut s = Setup::start(&["a"], &[]).await;
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
