//! The operator against a real kube-apiserver (etcd and kube-controller-manager too, started
//! by `scripts/testenv`), the way an undecodable object reaches users: a looser CRD (without
//! the mechanism enum) was installed when the object was stored, then the real CRD was
//! applied (a server does not validate stored objects again). The operator must report that
//! object and skip it, and converge everything else. Fails, never skips, when the control
//! plane cannot start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/testenv.rs"]
mod testenv;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use ovh_simulator::{Seed, Simulator, SimulatorConfig};
use sendconnector_operator::controller::{self, ControllerConfig};
use sendconnector_operator::crd::{SendConnector, crds};
use sendconnector_operator::ovh::{BudgetSettings, ClientOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testenv::TestEnv;

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

fn kubectl_apply(env: &TestEnv, body: &Value) {
    let path = env.dir().join(format!("apply-{}.json", rand_suffix()));
    std::fs::write(&path, serde_json::to_vec(body).unwrap()).unwrap();
    let out = env.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "kubectl apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Removes every `enum` under the SendConnector schema's `authentication.mechanism`.
fn without_mechanism_enum(mut crd: Value) -> Value {
    let mechanism = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/authentication/properties/mechanism")
        .unwrap();
    mechanism.as_object_mut().unwrap().remove("enum");
    crd
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_stored_under_a_looser_crd_is_reported_and_skipped() {
    let env = TestEnv::start().unwrap();
    let mut both = crds().into_iter().map(|c| serde_json::to_value(c).unwrap());
    let (connector_crd, binding_crd) = (both.next().unwrap(), both.next().unwrap());
    kubectl_apply(&env, &without_mechanism_enum(connector_crd.clone()));
    kubectl_apply(&env, &binding_crd);
    for crd in [
        "sendconnectors.sendconnector.io",
        "mailboxbindings.sendconnector.io",
    ] {
        let out = env.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let kubeconfig = Kubeconfig::read_from(env.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let sim = Simulator::start(
        SimulatorConfig {
            seed: Seed::from_yaml(SEED).unwrap(),
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "mail"}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "mail");
    for (name, data) in [
        (
            "ovh-api",
            json!({"endpoint": sim.base_url(), "applicationKey": "ak", "applicationSecret": "as-secret", "consumerKey": "ck-secret"}),
        ),
        ("relay-password", json!({"password": "relay-password-1"})),
    ] {
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let manifest = |name: &str, mechanism: &str| {
        json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": name, "namespace": "mail"},
            "spec": {
                "organization": ORG, "smartHost": "smtp-relay.example.com",
                "authentication": {"mechanism": mechanism, "user": "relay-user", "passwordSecretRef": {"name": "relay-password"}},
                "credentialsSecretRef": {"name": "ovh-api"}
            }
        })
    };
    // Stored under the looser CRD, then the real CRD comes back.
    kubectl_apply(&env, &manifest("ntlm-relay", "ntlm"));
    kubectl_apply(&env, &connector_crd);
    kubectl_apply(&env, &manifest("good-relay", "basicAuthRequireTLS"));
    // The real CRD refuses the same object now.
    let path = env.dir().join("refused.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&manifest("refused-relay", "ntlm")).unwrap(),
    )
    .unwrap();
    let refused = env.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "the real CRD refuses mechanism ntlm"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("spec.authentication.mechanism"));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ControllerConfig {
        budget: BudgetSettings {
            rate: 100.0,
            burst: 100,
        },
        task_poll: Duration::from_millis(100),
        ovh: ClientOptions {
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
        ..ControllerConfig::default()
    };
    let operator = tokio::spawn(controller::run(client.clone(), config, async move {
        let _ = stop_rx.await;
    }));

    let connectors: Api<SendConnector> = Api::namespaced(client.clone(), "mail");
    wait_until("good-relay Ready", Duration::from_secs(60), || {
        let connectors = connectors.clone();
        async move {
            connectors
                .get_opt("good-relay")
                .await
                .ok()
                .flatten()
                .is_some_and(|sc| {
                    sc.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.is_true())
                    })
                })
        }
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "mail");
    wait_until(
        "an InvalidSpec Event on ntlm-relay",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                events.list(&ListParams::default()).await.is_ok_and(|list| {
                    list.items.iter().any(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("ntlm-relay")
                            && e.reason.as_deref() == Some("InvalidSpec")
                            && e.note
                                .as_deref()
                                .unwrap_or("")
                                .contains("spec.authentication.mechanism")
                    })
                })
            }
        },
    )
    .await;
    let on_ovh = sim.sim().connectors(ORG, ORG);
    assert_eq!(on_ovh.len(), 1, "only the good one: {on_ovh:?}");
    assert_eq!(on_ovh[0]["displayName"], "good-relay");
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), operator)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    env.stop().unwrap();
}
