//! The operator's identity on the real backend: a ServiceAccount of the harness's own, bound
//! to exactly the shipped RBAC (`deploy/rbac.yaml`'s ClusterRole, or the chart's Roles for
//! `watchNamespaces`), and a kube client carrying its TokenRequest token. Every request that
//! client sends and the API server refuses with 403 is recorded, so that a harness can fail
//! on the first missing rule.
#![allow(dead_code)]

use super::backend::{Rbac, Real, real_config};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The ServiceAccount's name, in the harness's namespace (the chart's release namespace).
pub const SERVICE_ACCOUNT: &str = "sendconnector-operator";

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What the operator's RBAC must cover for one controller start.
pub struct Needs<'a> {
    /// The release namespace: the ServiceAccount's and the Lease's. Not a watched one, so
    /// that deleting a watched namespace leaves the operator's identity in place.
    pub home: &'a str,
    /// The namespaces the controller watches.
    pub watched: &'a [String],
    /// The default credentials Secret, `(namespace, name)`.
    pub default_secret: Option<(String, String)>,
    /// Whether the controller runs leader election (its Lease lives in `home`).
    pub leader_election: bool,
}

/// `system:serviceaccount:NS:sendconnector-operator`.
pub fn user(home: &str) -> String {
    format!("system:serviceaccount:{home}:{SERVICE_ACCOUNT}")
}

/// Creates the ServiceAccount and its bindings (idempotent), and returns a client that
/// authenticates with a fresh token of it and records refused requests in `real.denied`.
pub async fn operator_client(
    admin: &kube::Client,
    real: &Real,
    rbac: Rbac,
    needs: &Needs<'_>,
) -> kube::Client {
    let token = operator_token(admin, rbac, needs).await;
    let config = real_config(&real.kubeconfig, Some(&token)).await;
    kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&RecordDenied(real.denied.clone()))
        .build()
}

/// Creates the ServiceAccount and its bindings (idempotent), and returns a fresh token of it
/// (valid for an hour).
pub async fn operator_token(admin: &kube::Client, rbac: Rbac, needs: &Needs<'_>) -> String {
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .patch(
            needs.home,
            &PatchParams::apply("sendconnector-tests").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": needs.home}}),
            ),
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), needs.home);
    accounts
        .patch(
            SERVICE_ACCOUNT,
            &PatchParams::apply("sendconnector-tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": SERVICE_ACCOUNT, "namespace": needs.home}
            })),
        )
        .await
        .unwrap();
    for doc in rbac_documents(rbac, needs) {
        apply(admin, &doc).await;
    }
    rules_in_force(admin, needs).await;
    accounts
        .create_token_request(
            SERVICE_ACCOUNT,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .expect("a TokenRequest answer carries the token")
        .token
}

/// A kubeconfig for the process form of the operator (`run`): the admin kubeconfig's cluster
/// with `token` as the only credential.
pub fn kubeconfig_with_token(admin_kubeconfig: &Path, token: &str) -> String {
    let mut config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(admin_kubeconfig).unwrap()).unwrap();
    config["users"] = json!([{"name": "operator", "user": {"token": token}}]);
    for context in config["contexts"].as_array_mut().unwrap() {
        context["context"]["user"] = json!("operator");
    }
    serde_json::to_string(&config).unwrap()
}

/// The RBAC objects that grant `needs` with the shipped rules, for this harness.
pub fn rbac_documents(rbac: Rbac, needs: &Needs<'_>) -> Vec<Value> {
    let mut docs = Vec::new();
    match rbac {
        Rbac::Cluster => {
            // deploy/'s ClusterRole as shipped (the same object for every harness), and its
            // binding pointed at this harness's ServiceAccount.
            let shipped =
                std::fs::read_to_string(Path::new(ROOT).join("deploy/rbac.yaml")).unwrap();
            for mut doc in parse_docs(&shipped) {
                match doc["kind"].as_str() {
                    Some("ClusterRole") => docs.push(doc),
                    Some("ClusterRoleBinding") => {
                        doc["metadata"]["name"] =
                            json!(format!("{SERVICE_ACCOUNT}-{}", needs.home));
                        doc["subjects"] = json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": needs.home}]);
                        docs.push(doc);
                    }
                    other => panic!("deploy/rbac.yaml holds an unexpected {other:?}"),
                }
            }
            // deploy/ runs one replica without leader election; its rules come from the chart.
            if needs.leader_election {
                docs.extend(chart_rbac(needs, &[]).into_iter().filter(|d| {
                    d["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with("-leader-election"))
                }));
            }
        }
        Rbac::Namespaced => docs.extend(chart_rbac(needs, needs.watched)),
    }
    docs
}

/// The chart's Roles, RoleBindings, ClusterRoles and ClusterRoleBindings, rendered for this
/// harness (release namespace `needs.home`).
fn chart_rbac(needs: &Needs<'_>, watch: &[String]) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(Path::new(ROOT).join(".tools/bin/helm"));
    command
        .current_dir(ROOT)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .args([
            "template",
            "sendconnector-operator",
            "charts/sendconnector-operator",
        ])
        .args(["--namespace", needs.home])
        .args(["--set", &format!("fullnameOverride={SERVICE_ACCOUNT}")])
        .args(["--set", &format!("serviceAccount.name={SERVICE_ACCOUNT}")])
        .args([
            "--set",
            &format!("leaderElection.enabled={}", needs.leader_election),
        ]);
    if !watch.is_empty() {
        command.args(["--set", &format!("watchNamespaces={{{}}}", watch.join(","))]);
    }
    if let Some((namespace, name)) = &needs.default_secret {
        command.args([
            "--set",
            &format!("defaultCredentials.secret={namespace}/{name}"),
        ]);
    }
    let out = command
        .output()
        .expect("running .tools/bin/helm (scripts/install-test-tools installs it)");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_docs(&String::from_utf8(out.stdout).unwrap())
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding")
            )
        })
        .collect()
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Waits until the API server's authorizer grants what was just bound: it learns new
/// bindings through its own watch, moments later, and a controller started before that is
/// refused its first lists.
async fn rules_in_force(admin: &kube::Client, needs: &Needs<'_>) {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Every watched namespace, or the whole cluster when none is named.
    let scopes: Vec<Option<String>> = if needs.watched.is_empty() {
        vec![None]
    } else {
        needs.watched.iter().cloned().map(Some).collect()
    };
    for ns in &scopes {
        for resource in ["sendconnectors", "mailboxbindings"] {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user(needs.home)),
                    resource_attributes: Some(ResourceAttributes {
                        group: Some("sendconnector.io".into()),
                        resource: Some(resource.into()),
                        verb: Some("list".into()),
                        namespace: ns.clone(),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            loop {
                let answer = reviews
                    .create(&PostParams::default(), &review)
                    .await
                    .unwrap();
                if answer.status.is_some_and(|s| s.allowed) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the shipped RBAC never granted list {resource} in {ns:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Server-side applies one RBAC object as the admin.
async fn apply(admin: &kube::Client, doc: &Value) {
    let kind = doc["kind"].as_str().unwrap();
    let resource = ApiResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let name = doc["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply("sendconnector-tests").force(),
        &Patch::Apply(doc),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// A layer recording `METHOD URI` of every request answered 403.
#[derive(Clone)]
pub struct RecordDenied(pub Arc<Mutex<Vec<String>>>);

impl<S> tower::Layer<S> for RecordDenied {
    type Service = DeniedRecorder<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeniedRecorder {
            inner,
            denied: self.0.clone(),
        }
    }
}

pub struct DeniedRecorder<S> {
    inner: S,
    denied: Arc<Mutex<Vec<String>>>,
}

impl<S, B> tower::Service<http::Request<kube::client::Body>> for DeniedRecorder<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: From<axum::Error>,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = http::Response<axum::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let line = format!("{} {}", request.method(), request.uri());
        let denied = self.denied.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?.map(axum::body::Body::new);
            if response.status() != http::StatusCode::FORBIDDEN {
                return Ok(response);
            }
            // RBAC's refusals name the user; admission's 403s (a namespace being
            // terminated takes no new Events) are the cluster's rules, not missing ones.
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await?;
            let status: Value = serde_json::from_slice(&body).unwrap_or_default();
            let message = status["message"].as_str().unwrap_or_default();
            if message.contains("is forbidden: User \"") {
                denied.lock().unwrap().push(format!("{line}: {message}"));
            }
            Ok(http::Response::from_parts(
                parts,
                axum::body::Body::from(body),
            ))
        })
    }
}
