//! Packaging: the RBAC of `deploy/` and of the Helm chart grants exactly the Kubernetes API
//! calls the operator makes (recorded from scenarios run against the in-memory API server),
//! the Deployments pass only flags the binary has, the CRD copies and versions agree, and the
//! Argo CD health and action scripts give the right answers under a real Lua interpreter.
//!
//! helm, kubectl and the Python tools come from `.tools/` (`scripts/install-test-tools`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use common::{Harness, NS, binding_manifest, connector_manifest, wait_for};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = "charts/sendconnector-operator";
const RELEASE_NS: &str = "sendconnector-system";

/// Every Kubernetes API call the operator makes: (API group, resource[/subresource], verb),
/// with where the code makes it. The scenarios below record the calls actually made and
/// check them against this table both ways; the RBAC must grant exactly these.
const CALLS: &[(&str, &str, &str, &str)] = &[
    // src/controller/watches.rs: `watcher()` over both kinds (stores and triggers).
    ("sendconnector.io", "sendconnectors", "list", "watcher"),
    ("sendconnector.io", "sendconnectors", "watch", "watcher"),
    ("sendconnector.io", "mailboxbindings", "list", "watcher"),
    ("sendconnector.io", "mailboxbindings", "watch", "watcher"),
    // src/controller/lifecycle.rs: add_finalizer (merge patch guarded by resourceVersion) /
    // remove_finalizer (JSON patch), and add_finalizer's fresh read after a conflict.
    ("sendconnector.io", "sendconnectors", "patch", "finalizers"),
    ("sendconnector.io", "mailboxbindings", "patch", "finalizers"),
    (
        "sendconnector.io",
        "sendconnectors",
        "get",
        "finalizer conflict",
    ),
    (
        "sendconnector.io",
        "mailboxbindings",
        "get",
        "finalizer conflict",
    ),
    // src/controller/conditions.rs: write_status, server-side apply on /status.
    (
        "sendconnector.io",
        "sendconnectors/status",
        "patch",
        "status",
    ),
    (
        "sendconnector.io",
        "mailboxbindings/status",
        "patch",
        "status",
    ),
    // src/controller/credentials.rs: credentials and relay passwords (`get_opt`);
    // src/controller/conditions.rs: `get_metadata_opt` for a Secret's resourceVersion.
    ("", "secrets", "get", "Secret reads"),
    // src/controller/mod.rs: the metadata-only watch (`PartialObjectMeta<Secret>`).
    ("", "secrets", "list", "Secret metadata watch"),
    ("", "secrets", "watch", "Secret metadata watch"),
    // src/controller/context.rs: kube's `Recorder` creates an Event, and patches it when the
    // same Event repeats (a series).
    ("events.k8s.io", "events", "create", "Events"),
    ("events.k8s.io", "events", "patch", "Events (repeats)"),
];

/// Calls of [`CALLS`] a scenario may not happen to make (an Event repeating in time, a
/// finalizer write racing the watch).
const NOT_ALWAYS_SEEN: &[(&str, &str, &str)] = &[
    ("events.k8s.io", "events", "patch"),
    ("sendconnector.io", "sendconnectors", "get"),
    ("sendconnector.io", "mailboxbindings", "get"),
];

/// Paths outside any resource that every authenticated user may read (the
/// `system:discovery` ClusterRole): no rule needed.
fn is_discovery(path: &str) -> bool {
    matches!(path, "/api" | "/apis" | "/version" | "/api/v1")
        || (path.starts_with("/apis/") && path.trim_matches('/').split('/').count() <= 3)
}

/// One request the operator sent to the API server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    Resource {
        verb: &'static str,
        group: String,
        /// `plural` or `plural/subresource`.
        resource: String,
        namespace: Option<String>,
        name: Option<String>,
        /// Asked for `PartialObjectMetadata` (no data).
        metadata_only: bool,
    },
    NonResource(String),
}

impl Call {
    fn from_request(req: &Request) -> Self {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default();
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
            _ => return Self::NonResource(path),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [] => return Self::NonResource(path),
            [resource] => (*resource, None, None),
            [resource, name] => (*resource, Some((*name).to_owned()), None),
            [resource, name, sub, ..] => (*resource, Some((*name).to_owned()), Some(*sub)),
        };
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let verb = match (req.method().as_str(), name.is_some()) {
            ("GET", true) => "get",
            ("GET", false) if watch => "watch",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "unknown",
        };
        Self::Resource {
            verb,
            group,
            resource: subresource
                .map_or_else(|| resource.to_owned(), |s| format!("{resource}/{s}")),
            namespace,
            name,
            metadata_only: accept.contains("as=PartialObjectMetadata"),
        }
    }
}

type Log = Arc<Mutex<Vec<Call>>>;

async fn record(State(log): State<Log>, req: Request, next: Next) -> Response {
    log.lock().unwrap().push(Call::from_request(&req));
    next.run(req).await
}

/// Runs a whole life cycle (create, ready, Secret change, pause, resume, reconcile request,
/// deletion) and returns every request the controllers sent. `namespaced`: the operator
/// watches only `mail` and uses default credentials from a Secret in `operators`.
async fn scenario_calls(namespaced: bool) -> Vec<Call> {
    // The in-memory API, whatever the backend asked for: its router is what records the
    // calls. On a real API server the scenarios run as a ServiceAccount with these rules.
    let mut h = Harness::start_idle_on(common::backend::Kind::Memory, common::SEED).await;
    let plain = h.client.clone();
    if namespaced {
        let all_namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(plain.clone());
        all_namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "operators"}})).unwrap(),
            )
            .await
            .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "ovh-api"},
            "stringData": {"endpoint": h.sim.base_url(), "applicationKey": "ak", "applicationSecret": "as-secret", "consumerKey": "ck-secret"}
        }))
        .unwrap();
        Api::<Secret>::namespaced(plain.clone(), "operators")
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        h.tweak = Some(Box::new(|c| {
            c.namespaces = vec![NS.to_owned()];
            c.default_credentials_secret = Some(("operators".into(), "ovh-api".into()));
            c.default_credentials_namespaces = vec![NS.to_owned()];
        }));
    }
    let log: Log = Arc::default();
    // The controllers get a client whose every request is logged; the test acts through
    // `plain`, which is not.
    h.client = kube::Client::new(
        h.k8s
            .memory()
            .router()
            .layer(from_fn_with_state(log.clone(), record)),
        "default",
    );
    h.start_controller(Duration::from_secs(3600));
    h.client = plain.clone();

    let mut connector = connector_manifest("relay");
    if namespaced {
        connector.spec.credentials_secret_ref = None;
    }
    h.connectors()
        .create(&PostParams::default(), &connector)
        .await
        .unwrap();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ready::<MailboxBinding>("newsletter").await;

    // A new password: pushed once, after a metadata watch event and a Secret read.
    h.set_secret("relay-password", json!({"password": "relay-password-2"}))
        .await;
    let version = Api::<Secret>::namespaced(plain.clone(), NS)
        .get("relay-password")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    wait_for("the new password pushed", Duration::from_secs(30), || {
        h.object::<SendConnector>("relay")["status"]["appliedAuthentication"]["passwordSecret"]
            ["resourceVersion"]
            == version.as_str()
    })
    .await;
    h.wait_ready::<SendConnector>("relay").await;

    // Pause, resume, reconcile now.
    h.patch_connector(
        "relay",
        json!({"metadata": {"annotations": {"sendconnector.io/paused": "true"}}}),
    )
    .await;
    h.wait_condition::<SendConnector>("relay", "False", "Paused")
        .await;
    h.patch_connector(
        "relay",
        json!({"metadata": {"annotations": {"sendconnector.io/paused": null, "sendconnector.io/reconcile-requested-at": "now-1"}}}),
    )
    .await;
    wait_for(
        "the reconcile request echoed",
        Duration::from_secs(30),
        || h.object::<SendConnector>("relay")["status"]["lastHandledReconcileAt"] == "now-1",
    )
    .await;
    h.wait_ready::<SendConnector>("relay").await;

    // Deletion with policy Delete: the binding, then the connector.
    h.bindings()
        .delete("newsletter", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the binding gone", Duration::from_secs(30), || {
        h.object::<MailboxBinding>("newsletter").is_null()
    })
    .await;
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the connector gone", Duration::from_secs(30), || {
        h.object::<SendConnector>("relay").is_null()
    })
    .await;
    h.stop_controller().await;
    log.lock().unwrap().clone()
}

/// (group, resource, verb) of the resource calls; panics on a non-discovery path.
fn permissions(calls: &[Call]) -> BTreeSet<(String, String, String)> {
    calls
        .iter()
        .filter_map(|call| match call {
            Call::Resource {
                verb,
                group,
                resource,
                ..
            } => Some((group.clone(), resource.clone(), (*verb).to_owned())),
            Call::NonResource(path) => {
                assert!(is_discovery(path), "a non-resource request: {path}");
                None
            }
        })
        .collect()
}

fn expected() -> BTreeSet<(String, String, String)> {
    CALLS
        .iter()
        .map(|(g, r, v, _)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect()
}

/// The recorded calls are all in [`CALLS`], and every row of [`CALLS`] was seen (but those
/// a scenario may miss).
fn check_against_table(seen: &BTreeSet<(String, String, String)>) {
    let table = expected();
    let unknown: Vec<_> = seen.difference(&table).collect();
    assert!(
        unknown.is_empty(),
        "the operator made calls missing from CALLS (and so from the RBAC): {unknown:?}"
    );
    let unseen: Vec<_> = table
        .difference(seen)
        .filter(|(g, r, v)| {
            !NOT_ALWAYS_SEEN
                .iter()
                .any(|(g2, r2, v2)| g == g2 && r == r2 && v == v2)
        })
        .collect();
    assert!(
        unseen.is_empty(),
        "rows of CALLS the operator never made (stale table?): {unseen:?}"
    );
}

fn check_secret_reads_and_watches(calls: &[Call]) {
    for call in calls {
        if let Call::Resource {
            verb,
            resource,
            metadata_only,
            ..
        } = call
        {
            if resource == "secrets" && (*verb == "list" || *verb == "watch") {
                assert!(
                    metadata_only,
                    "Secrets are listed and watched as metadata only: {call:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_calls_are_the_table_and_the_rbac_grants_exactly_them() {
    let calls = scenario_calls(false).await;
    let seen = permissions(&calls);
    check_against_table(&seen);
    check_secret_reads_and_watches(&calls);

    for (what, docs) in [
        ("deploy/", kustomize("deploy")),
        ("the chart with default values", helm_template(&[])),
    ] {
        let grants = grants(&docs);
        let cluster: BTreeSet<_> = grants
            .iter()
            .map(|g| {
                assert_eq!(g.namespace, None, "{what}: a namespaced grant {g:?}");
                assert!(
                    g.resource_names.is_empty(),
                    "{what}: resourceNames in {g:?}"
                );
                (g.group.clone(), g.resource.clone(), g.verb.clone())
            })
            .collect();
        assert_eq!(
            cluster,
            expected(),
            "{what}: the ClusterRole must grant exactly the calls in CALLS"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_limited_calls_fit_the_charts_roles() {
    let calls = scenario_calls(true).await;
    check_against_table(&permissions(&calls));
    check_secret_reads_and_watches(&calls);
    // Every call is made in a namespace: Roles suffice. In `operators`, only the default
    // credentials Secret is read.
    for call in &calls {
        if let Call::Resource {
            verb,
            resource,
            namespace,
            name,
            ..
        } = call
        {
            match namespace.as_deref() {
                Some(NS) => {}
                Some("operators") => assert!(
                    *verb == "get" && resource == "secrets" && name.as_deref() == Some("ovh-api"),
                    "in operators only the default credentials are read: {call:?}"
                ),
                other => panic!("a call outside the watched namespace ({other:?}): {call:?}"),
            }
        }
    }

    // The chart with watchNamespaces [mail, team-b], default credentials operators/ovh-api
    // and two replicas (so leader election).
    let docs = helm_template(&["-f", &format!("{CHART}/ci/full-values.yaml")]);
    let grants = grants(&docs);
    let mut by_namespace: BTreeMap<Option<String>, BTreeSet<_>> = BTreeMap::new();
    for g in &grants {
        by_namespace
            .entry(g.namespace.clone())
            .or_default()
            .insert((
                g.group.clone(),
                g.resource.clone(),
                g.verb.clone(),
                g.resource_names.clone(),
            ));
    }
    assert!(
        !by_namespace.contains_key(&None),
        "no cluster-wide grant with watchNamespaces: {grants:?}"
    );
    let with_names = |set: BTreeSet<(String, String, String)>| -> BTreeSet<_> {
        set.into_iter()
            .map(|(g, r, v)| (g, r, v, Vec::new()))
            .collect()
    };
    for ns in ["mail", "team-b"] {
        assert_eq!(
            by_namespace.remove(&Some(ns.to_owned())),
            Some(with_names(expected())),
            "the Role in {ns}"
        );
    }
    assert_eq!(
        by_namespace.remove(&Some("operators".to_owned())),
        Some(BTreeSet::from([(
            String::new(),
            "secrets".to_owned(),
            "get".to_owned(),
            vec!["ovh-api".to_owned()]
        )])),
        "the default credentials Role: get that one Secret"
    );
    // Leader election (--leader-election): Leases in the release namespace, nothing else.
    let leader = by_namespace.remove(&Some(RELEASE_NS.to_owned()));
    assert!(
        leader.as_ref().is_some_and(|rules| rules
            .iter()
            .all(|(g, r, _, _)| g == "coordination.k8s.io" && r == "leases")),
        "the leader election Role: {leader:?}"
    );
    let verbs: BTreeSet<&str> = leader
        .iter()
        .flatten()
        .map(|(_, _, v, _)| v.as_str())
        .collect();
    assert_eq!(
        verbs,
        BTreeSet::from(["create", "get", "update"]),
        "a Lease is read, created, then replaced"
    );
    assert!(by_namespace.is_empty(), "other grants: {by_namespace:?}");
}

/// One (namespace, group, resource, verb) granted to the operator's ServiceAccount;
/// `namespace` is `None` for a ClusterRoleBinding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
    resource_names: Vec<String>,
}

/// What the bindings to the Deployment's ServiceAccount grant.
fn grants(docs: &[Value]) -> BTreeSet<Grant> {
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 1, "one Deployment");
    let deployment = deployments[0];
    let sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("the Deployment names its ServiceAccount");
    let sa_ns = deployment["metadata"]["namespace"].as_str().unwrap();
    assert_eq!(sa_ns, RELEASE_NS);
    assert!(
        docs.iter().any(|d| d["kind"] == "ServiceAccount"
            && d["metadata"]["name"] == sa
            && d["metadata"]["namespace"] == sa_ns),
        "the ServiceAccount {sa_ns}/{sa} is created"
    );
    let mut out = BTreeSet::new();
    for binding in docs
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
    {
        let ours = binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            })
        });
        if !ours {
            continue;
        }
        let namespace = binding["metadata"]["namespace"]
            .as_str()
            .filter(|_| binding["kind"] == "RoleBinding")
            .map(str::to_owned);
        let role_kind = &binding["roleRef"]["kind"];
        let role_name = &binding["roleRef"]["name"];
        let role = docs
            .iter()
            .find(|d| {
                &d["kind"] == role_kind
                    && &d["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || d["metadata"]["namespace"].as_str() == namespace.as_deref())
            })
            .unwrap_or_else(|| panic!("the role {role_kind} {role_name} of {binding}"));
        for rule in role["rules"].as_array().unwrap() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "no nonResourceURLs: {rule}"
            );
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        assert_ne!(verb, "*", "no wildcard verb: {rule}");
                        assert_ne!(resource, "*", "no wildcard resource: {rule}");
                        out.insert(Grant {
                            namespace: namespace.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            resource_names: list("resourceNames"),
                        });
                    }
                }
            }
        }
    }
    out
}

fn tool(path: &str) -> PathBuf {
    let tool = Path::new(ROOT).join(".tools").join(path);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/install-test-tools",
        tool.display()
    );
    tool
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn helm_template(args: &[&str]) -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    let yaml = run(Command::new(tool("bin/helm"))
        .current_dir(ROOT)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .args([
            "template",
            "sendconnector-operator",
            CHART,
            "-n",
            RELEASE_NS,
        ])
        .args(args));
    parse_docs(&yaml)
}

fn kustomize(dir: &str) -> Vec<Value> {
    parse_docs(&run(Command::new(tool("bin/kubectl"))
        .current_dir(ROOT)
        .args(["kustomize", dir])))
}

fn container_args(docs: &[Value]) -> Vec<String> {
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "run", "the container runs `run`");
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// Flags the chart may pass before the binary has them, with the release that brings them.
const COMING_FLAGS: &[&str] = &["--leader-election"];

#[test]
fn deployments_pass_only_flags_the_binary_has() {
    let help =
        run(Command::new(env!("CARGO_BIN_EXE_sendconnector-operator")).args(["run", "--help"]));
    let known =
        |flag: &str| help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n"));
    let renders = [
        ("deploy/", kustomize("deploy"), false),
        ("the chart (default values)", helm_template(&[]), false),
        (
            "the chart (ci/full-values.yaml)",
            helm_template(&["-f", &format!("{CHART}/ci/full-values.yaml")]),
            true,
        ),
    ];
    for (what, docs, may_use_coming) in renders {
        for arg in container_args(&docs).iter().skip(1) {
            let flag = arg.split('=').next().unwrap();
            assert!(flag.starts_with("--"), "{what}: `{arg}` is not a flag");
            let coming = may_use_coming && COMING_FLAGS.contains(&flag);
            assert!(
                known(flag) || coming,
                "{what} passes {flag}, which `sendconnector-operator run` does not have"
            );
        }
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
        for var in env.as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap();
            if name.starts_with("SENDCONNECTOR_") {
                assert!(
                    help.contains(&format!("env: {name}")),
                    "{what} sets {name}, which `run` does not read"
                );
            }
        }
    }
    // With default values the chart passes every value as a flag, and parses.
    let args = container_args(&helm_template(&[]));
    let output = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the chart's arguments {args:?} are refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn deployments_are_locked_down() {
    for (what, docs) in [
        ("deploy/", kustomize("deploy")),
        ("the chart", helm_template(&[])),
    ] {
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let sc = &container["securityContext"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
        assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{what}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{what}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{what}"
        );
        assert_eq!(container["ports"][0]["containerPort"], 8080, "{what}");
        assert_eq!(
            deployment["spec"]["strategy"]["type"], "Recreate",
            "{what}: one replica without leader election never overlaps"
        );
        let image = container["image"].as_str().unwrap();
        assert!(
            image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
            "{what}: the image tag is the crate version: {image}"
        );
    }
}

#[test]
fn crd_copies_equal_crds_yaml() {
    let root = Path::new(ROOT);
    let source = std::fs::read_to_string(root.join("crds/crds.yaml")).unwrap();
    for copy in [
        "deploy/crds/crds.yaml",
        "charts/sendconnector-operator/crds/crds.yaml",
    ] {
        let path = root.join(copy);
        if std::env::var_os("UPDATE_CRDS").is_some() {
            std::fs::write(&path, &source).unwrap();
        }
        assert!(
            std::fs::read_to_string(&path).unwrap() == source,
            "{copy} differs from crds/crds.yaml: UPDATE_CRDS=1 cargo test --test packaging"
        );
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn argocd_scripts_under_lua() {
    let root = Path::new(ROOT);
    let out = run(Command::new(tool("venv/bin/python"))
        .arg(root.join("tests/gitops/run_lua.py"))
        .arg(root));
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // Both kinds share one set of scripts.
    let dir = root.join("gitops/argocd/sendconnector.io");
    for file in [
        "health.lua",
        "actions/discovery.lua",
        "actions/pause/action.lua",
        "actions/resume/action.lua",
        "actions/reconcile/action.lua",
    ] {
        let a = std::fs::read_to_string(dir.join("SendConnector").join(file)).unwrap();
        let b = std::fs::read_to_string(dir.join("MailboxBinding").join(file)).unwrap();
        assert_eq!(a, b, "{file} differs between the kinds");
    }
}

const KINDS: [&str; 2] = ["SendConnector", "MailboxBinding"];
const ACTIONS: [&str; 3] = ["pause", "resume", "reconcile"];

/// `text` with every non-empty line indented by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_owned()
            } else {
                format!("{:n$}{line}\n", "")
            }
        })
        .collect()
}

/// `gitops/argocd/argocd-cm.yaml`: the scripts as Argo CD `argocd-cm` keys.
fn argocd_cm() -> String {
    let dir = Path::new(ROOT).join("gitops/argocd/sendconnector.io");
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
    let mut out = String::from(
        "# Generated from gitops/argocd/sendconnector.io/ by tests/packaging.rs\n\
         # (UPDATE_GITOPS=1 cargo test --test packaging): Argo CD health checks and resource\n\
         # actions of both kinds, as argocd-cm keys. Merge into Argo CD's argocd-cm ConfigMap.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n\
         \x20 labels:\n    app.kubernetes.io/part-of: argocd\ndata:\n",
    );
    for kind in KINDS {
        let kind_dir = dir.join(kind);
        writeln!(
            out,
            "  resource.customizations.health.sendconnector.io_{kind}: |"
        )
        .unwrap();
        out += &indent(&read(kind_dir.join("health.lua")), 4);
        writeln!(
            out,
            "  resource.customizations.actions.sendconnector.io_{kind}: |"
        )
        .unwrap();
        out += "    discovery.lua: |\n";
        out += &indent(&read(kind_dir.join("actions/discovery.lua")), 6);
        out += "    definitions:\n";
        for action in ACTIONS {
            writeln!(out, "      - name: {action}\n        action.lua: |").unwrap();
            out += &indent(
                &read(kind_dir.join("actions").join(action).join("action.lua")),
                10,
            );
        }
    }
    out
}

#[test]
fn argocd_cm_carries_the_scripts() {
    let path = Path::new(ROOT).join("gitops/argocd/argocd-cm.yaml");
    let generated = argocd_cm();
    if std::env::var_os("UPDATE_GITOPS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    assert!(
        std::fs::read_to_string(&path).unwrap_or_default() == generated,
        "gitops/argocd/argocd-cm.yaml is stale: UPDATE_GITOPS=1 cargo test --test packaging"
    );
    // What Argo CD reads back: the health script as is, the actions as YAML.
    let cm: Value = serde_saphyr::from_str(&generated).unwrap();
    let dir = Path::new(ROOT).join("gitops/argocd/sendconnector.io");
    for kind in KINDS {
        let health = std::fs::read_to_string(dir.join(kind).join("health.lua")).unwrap();
        assert_eq!(
            cm["data"][format!("resource.customizations.health.sendconnector.io_{kind}")],
            health.as_str()
        );
        let actions: Value = serde_saphyr::from_str(
            cm["data"][format!("resource.customizations.actions.sendconnector.io_{kind}")]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let names: Vec<&str> = actions["definitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ACTIONS);
        let reconcile =
            std::fs::read_to_string(dir.join(kind).join("actions/reconcile/action.lua")).unwrap();
        assert_eq!(actions["definitions"][2]["action.lua"], reconcile.as_str());
    }
}
