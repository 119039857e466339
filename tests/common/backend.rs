//! Where a scenario's Kubernetes API lives: this process's in-memory API server, or a real
//! kube-apiserver (`scripts/testenv`). `SENDCONNECTOR_TEST_BACKEND=memory|real` chooses
//! (memory when unset). On the real backend the control plane is the one of
//! `SENDCONNECTOR_TEST_KUBECONFIG` (scripts/test starts one for the whole pass, with the CRDs
//! installed), or, when that is unset, a private one this test process starts and installs
//! the CRDs on. A control plane that cannot start fails the test: the real backend never
//! falls back to the in-memory one.
//!
//! The scenarios read Kubernetes synchronously (inside `wait_for` closures). On the real
//! backend those reads go through a thread of their own, with its own runtime and admin
//! client, so that a read never waits for the test's runtime.
#![allow(dead_code)]

use super::testenv::TestEnv;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use memory_apiserver::ApiServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

/// The backend a test process was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Real,
}

/// `SENDCONNECTOR_TEST_BACKEND`: `memory` (the default) or `real`; anything else fails.
pub fn selected() -> Kind {
    match std::env::var("SENDCONNECTOR_TEST_BACKEND").as_deref() {
        Err(_) | Ok("" | "memory") => Kind::Memory,
        Ok("real") => Kind::Real,
        Ok(other) => panic!("SENDCONNECTOR_TEST_BACKEND={other}: expected memory or real"),
    }
}

/// Which shipped RBAC the operator runs with on the real backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rbac {
    /// `deploy/rbac.yaml`'s ClusterRole, bound to the harness's ServiceAccount.
    Cluster,
    /// The chart rendered with `watchNamespaces` = the harness's namespaces: Roles only.
    Namespaced,
}

/// `SENDCONNECTOR_TEST_RBAC`: `cluster` (the default) or `namespaced`; anything else fails.
pub fn rbac_mode() -> Rbac {
    match std::env::var("SENDCONNECTOR_TEST_RBAC").as_deref() {
        Err(_) | Ok("" | "cluster") => Rbac::Cluster,
        Ok("namespaced") => Rbac::Namespaced,
        Ok(other) => panic!("SENDCONNECTOR_TEST_RBAC={other}: expected cluster or namespaced"),
    }
}

/// The admin kubeconfig of the real control plane: the shared one, or a private one started
/// (once per test process) with the CRDs installed. It stops when this process exits.
pub fn real_kubeconfig() -> PathBuf {
    static PRIVATE: OnceLock<TestEnv> = OnceLock::new();
    if let Ok(path) = std::env::var("SENDCONNECTOR_TEST_KUBECONFIG") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SENDCONNECTOR_TEST_KUBECONFIG={}: no such file (is the control plane up?)",
            path.display()
        );
        return path;
    }
    PRIVATE
        .get_or_init(|| {
            let env = TestEnv::start().unwrap_or_else(|e| {
                panic!("the real backend was asked for and its control plane cannot start: {e:#}")
            });
            install_crds(&env.kubeconfig_path());
            env
        })
        .kubeconfig_path()
}

/// The kubectl of the control plane (`scripts/testenv kubectl`).
pub fn kubectl() -> PathBuf {
    let out = std::process::Command::new(super::testenv::script())
        .arg("kubectl")
        .output()
        .expect("running scripts/testenv kubectl");
    assert!(
        out.status.success(),
        "scripts/testenv kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Applies `crds/` and waits until both CRDs are served.
pub fn install_crds(kubeconfig: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kubectl = kubectl();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(args)
            .output()
            .expect("running kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "apply",
        "--server-side",
        "-f",
        root.join("crds/crds.yaml").to_str().unwrap(),
    ]);
    run(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/sendconnectors.sendconnector.io",
        "crd/mailboxbindings.sendconnector.io",
    ]);
}

/// A client of the real control plane from its admin kubeconfig, optionally with a bearer
/// token instead of the admin's certificate.
pub async fn real_config(kubeconfig: &Path, token: Option<&str>) -> kube::Config {
    let file = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap();
    if let Some(token) = token {
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_owned().into()),
            ..kube::config::AuthInfo::default()
        };
    }
    config
}

enum Read {
    Get {
        resource: ApiResource,
        namespace: Option<String>,
        name: String,
        reply: mpsc::Sender<Option<Value>>,
    },
    List {
        resource: ApiResource,
        namespace: Option<String>,
        reply: mpsc::Sender<Vec<Value>>,
    },
}

/// Synchronous reads of the real API server, served by a thread with its own runtime.
pub struct Reader {
    requests: Mutex<mpsc::Sender<Read>>,
}

impl Reader {
    fn start(kubeconfig: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel::<Read>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = kube::Client::try_from(real_config(&kubeconfig, None).await).unwrap();
                // Ends when the harness (the sender) is gone.
                while let Ok(read) = rx.recv() {
                    match read {
                        Read::Get {
                            resource,
                            namespace,
                            name,
                            reply,
                        } => {
                            let api = api(&client, &resource, namespace.as_deref());
                            let object = api
                                .get_opt(&name)
                                .await
                                .unwrap_or_else(|e| panic!("GET {}/{name}: {e}", resource.plural))
                                .map(|o| with_type(serde_json::to_value(o).unwrap(), &resource));
                            let _ = reply.send(object);
                        }
                        Read::List {
                            resource,
                            namespace,
                            reply,
                        } => {
                            let api = api(&client, &resource, namespace.as_deref());
                            let objects = api
                                .list(&ListParams::default())
                                .await
                                .unwrap_or_else(|e| panic!("LIST {}: {e}", resource.plural))
                                .items
                                .into_iter()
                                .map(|o| with_type(serde_json::to_value(o).unwrap(), &resource))
                                .collect();
                            let _ = reply.send(objects);
                        }
                    }
                }
            });
        });
        Self {
            requests: Mutex::new(tx),
        }
    }

    pub fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .unwrap()
            .send(Read::Get {
                resource: resource.clone(),
                namespace: namespace.map(ToOwned::to_owned),
                name: name.to_owned(),
                reply,
            })
            .unwrap();
        answer.recv().expect("the reader thread answers")
    }

    pub fn list(&self, resource: &ApiResource, namespace: Option<&str>) -> Vec<Value> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .unwrap()
            .send(Read::List {
                resource: resource.clone(),
                namespace: namespace.map(ToOwned::to_owned),
                reply,
            })
            .unwrap();
        answer.recv().expect("the reader thread answers")
    }
}

fn api(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// List items come without `apiVersion` and `kind`; the in-memory reads carry them.
fn with_type(mut object: Value, resource: &ApiResource) -> Value {
    object["apiVersion"] = Value::String(resource.api_version.clone());
    object["kind"] = Value::String(resource.kind.clone());
    object
}

/// The real backend of one harness: the control plane's admin kubeconfig, the synchronous
/// reader, and the requests of the operator that the API server refused with 403.
pub struct Real {
    pub kubeconfig: PathBuf,
    pub reader: Reader,
    pub denied: Arc<Mutex<Vec<String>>>,
}

/// The Kubernetes API of a harness.
#[derive(Clone)]
pub enum Backend {
    Memory(ApiServer),
    Real(Arc<Real>),
}

impl Backend {
    pub fn real() -> Self {
        let kubeconfig = real_kubeconfig();
        Self::Real(Arc::new(Real {
            reader: Reader::start(kubeconfig.clone()),
            kubeconfig,
            denied: Arc::default(),
        }))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::Memory(_) => Kind::Memory,
            Self::Real(_) => Kind::Real,
        }
    }

    /// The in-memory API server, for the tests that inspect it directly (they run on the
    /// in-memory backend only).
    pub fn memory(&self) -> &ApiServer {
        match self {
            Self::Memory(server) => server,
            Self::Real(_) => panic!("this test inspects the in-memory API server"),
        }
    }

    /// One object, as the API returns it.
    pub fn get_object(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        match self {
            Self::Memory(server) => server.get_object(resource, namespace, name),
            Self::Real(real) => real.reader.get(resource, namespace, name),
        }
    }

    /// Objects of one kind, in one namespace or (`None`) all of them.
    pub fn list_objects(&self, resource: &ApiResource, namespace: Option<&str>) -> Vec<Value> {
        match self {
            Self::Memory(server) => server.list_objects(resource, namespace),
            Self::Real(real) => real.reader.list(resource, namespace),
        }
    }
}
