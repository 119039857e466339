//! The operator against a real kube-apiserver (etcd and kube-controller-manager too, started
//! by `scripts/testenv`), the way an undecodable object reaches users: a looser CRD (without
//! the mechanism enum) was installed when the object was stored, then the real CRD was
//! applied (a server does not validate stored objects again). The operator must report that
//! object and skip it, and converge everything else. Fails, never skips, when the control
//! plane cannot start. The operator authenticates as its ServiceAccount (a TokenRequest token)
//! bound to the shipped cluster-wide RBAC of `deploy/`, and nothing more.
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

/// A client of the test server: as its admin, or with a bearer token.
async fn client_for(env: &TestEnv, token: Option<String>) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig_path()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    if let Some(token) = token {
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..kube::config::AuthInfo::default()
        };
    }
    kube::Client::try_from(config).unwrap()
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

    let admin = client_for(&env, None).await;
    // The operator runs as its ServiceAccount, bound to exactly the rules of deploy/.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "deploy/namespace.yaml",
        "deploy/serviceaccount.yaml",
        "deploy/rbac.yaml",
    ] {
        let out = env.kubectl(&["apply", "-f", root.join(file).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = env.kubectl(&[
        "create",
        "token",
        "sendconnector-operator",
        "-n",
        "sendconnector-system",
        "--duration=1h",
    ]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let operator_client = client_for(
        &env,
        Some(String::from_utf8(token.stdout).unwrap().trim().to_owned()),
    )
    .await;
    let operator = "system:serviceaccount:sendconnector-system:sendconnector-operator";
    for (verb, resource, allowed) in [
        ("patch", "sendconnectors.sendconnector.io", true),
        ("patch", "mailboxbindings.sendconnector.io/status", true),
        ("get", "secrets", true),
        ("create", "secrets", false),
        ("update", "secrets", false),
        ("delete", "sendconnectors.sendconnector.io", false),
        ("create", "sendconnectors.sendconnector.io", false),
        ("list", "configmaps", false),
        ("create", "pods", false),
    ] {
        let out = env.kubectl(&[
            "auth", "can-i", verb, resource, "-n", "mail", "--as", operator,
        ]);
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(
            answer == "yes",
            allowed,
            "can the operator {verb} {resource}? {answer}"
        );
    }
    let client = admin;
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
    let operator = tokio::spawn(controller::run(operator_client, config, async move {
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
