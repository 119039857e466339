//! The `run` subcommand as a user starts it: the binary, a kubeconfig pointing at an API
//! server over TCP, flags and `SENDCONNECTOR_*` variables, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::api::{Api, PostParams};
use kube::core::ApiResource;
use memory_apiserver::ApiServer;
use sendconnector_operator::crd::{self, SendConnector};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sendconnector-operator");

/// An API server over TCP on 127.0.0.1 and a kubeconfig file for it.
struct Cluster {
    k8s: ApiServer,
    dir: tempfile::TempDir,
    _serve: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn start(with_crds: bool) -> Self {
        let k8s = ApiServer::new();
        if with_crds {
            for c in crd::crds() {
                k8s.register_crd(&c);
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = k8s.clone();
        let serve = tokio::spawn(async move {
            let _ = server.serve(listener).await;
        });
        let dir = tempfile::tempdir().unwrap();
        write_kubeconfig(
            &dir.path().join("kubeconfig"),
            &format!("http://127.0.0.1:{port}"),
        );
        Self {
            k8s,
            dir,
            _serve: serve,
        }
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The binary with a clean environment: only this cluster's kubeconfig, no
    /// `SENDCONNECTOR_*` or `OVH_*` variable from the test runner.
    fn command(&self, args: &[&str]) -> Command {
        command(&self.kubeconfig(), self.dir.path(), args)
    }
}

fn write_kubeconfig(path: &Path, server: &str) {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
users:
- name: test
  user: {{}}
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
"
    );
    std::fs::write(path, text).unwrap();
}

fn command(kubeconfig: &Path, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").args(args);
    for (var, _) in std::env::vars() {
        if var.starts_with("SENDCONNECTOR_")
            || var.starts_with("OVH_")
            || var.starts_with("KUBERNETES_")
            || var == "RUST_LOG"
        {
            cmd.env_remove(var);
        }
    }
    // Any free port for metrics and health, so tests running side by side never clash.
    cmd.env("KUBECONFIG", kubeconfig)
        .env("SENDCONNECTOR_LISTEN", "127.0.0.1:0")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A running binary whose standard error is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to end, at most `timeout`.
    async fn exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "still running after {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_for_log(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr().lines().find(|l| l.contains(what)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crds_it_exits_at_once_and_says_how_to_install_them() {
    let cluster = Cluster::start(false).await;
    let started = Instant::now();
    let mut run = Running::spawn(cluster.command(&[]));
    let status = run.exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = run.stderr();
    assert!(stderr.contains("kubectl apply -f crds/"), "{stderr}");
    assert!(stderr.contains("SendConnector"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &format!("http://127.0.0.1:{port}"));
    let mut run = Running::spawn(command(&kubeconfig, dir.path(), &[]));
    let status = run.exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains(
            "could not ask the Kubernetes API whether the sendconnector.io CRDs are installed"
        ),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_runs_with_settings_from_the_environment_and_stops_on_sigterm() {
    let cluster = Cluster::start(true).await;
    let mut cmd = cluster.command(&["--ovh-burst", "3"]);
    cmd.env("SENDCONNECTOR_RESYNC_INTERVAL", "90s")
        .env("SENDCONNECTOR_NAMESPACES", "mail,team-b")
        .env("SENDCONNECTOR_OVH_RATE", "0.5")
        // The flag wins over its variable.
        .env("SENDCONNECTOR_OVH_BURST", "7")
        .env("SENDCONNECTOR_DEFAULT_CREDENTIALS_NAMESPACES", "team-b")
        .env("SENDCONNECTOR_LOG_FORMAT", "json");
    let mut run = Running::spawn(cmd);
    let line = run
        .wait_for_log("starting the operator", Duration::from_secs(10))
        .await;
    let started: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(started["namespaces"], "mail,team-b", "{line}");
    assert_eq!(started["resync_interval"], "1m 30s", "{line}");
    assert_eq!(started["ovh_rate"], 0.5, "{line}");
    assert_eq!(started["ovh_burst"], 3, "{line}");
    assert_eq!(started["default_credentials"], "none", "{line}");
    assert_eq!(
        started["default_credentials_namespaces"], "team-b",
        "{line}"
    );

    // It reconciles: a connector without credentials in a watched namespace is Stalled
    // (no OVH endpoint needed for that), one in an unwatched namespace is left alone.
    let client = cluster.k8s.client();
    for ns in ["mail", "elsewhere"] {
        let sc: SendConnector = serde_json::from_value(json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": "relay", "namespace": ns},
            "spec": {"organization": "private-zz111111-1", "smartHost": "smtp.example.com"}
        }))
        .unwrap();
        Api::<SendConnector>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &sc)
            .await
            .unwrap();
    }
    let resource = ApiResource::erase::<SendConnector>(&());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let obj = cluster
            .k8s
            .get_object(&resource, Some("mail"), "relay")
            .unwrap();
        let stalled = obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "Stalled" && c["status"] == "True" && c["reason"] == "NoCredentials"
            });
        if stalled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not Stalled: {obj:#}\n{}",
            run.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = cluster
        .k8s
        .get_object(&resource, Some("elsewhere"), "relay")
        .unwrap();
    assert_eq!(other["status"], Value::Null, "{other:#}");

    let asked = Instant::now();
    run.terminate();
    let status = run.exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}\n{}", run.stderr());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(run.stderr().contains("\"stopped\""), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_before_anything_starts() {
    let cluster = Cluster::start(true).await;
    for (var, value, expected) in [
        (
            "SENDCONNECTOR_RESYNC_INTERVAL",
            "soon",
            "not a duration such as 90s or 10m",
        ),
        ("SENDCONNECTOR_OVH_RATE", "0", "must be more than zero"),
        ("SENDCONNECTOR_OVH_BURST", "0", "must be at least 1"),
        (
            "SENDCONNECTOR_DEFAULT_CREDENTIALS_SECRET",
            "ovh-api",
            "is not NAMESPACE/NAME",
        ),
        (
            "SENDCONNECTOR_NAMESPACES",
            "Mail",
            "is not a namespace name",
        ),
    ] {
        let mut cmd = cluster.command(&[]);
        cmd.env(var, value);
        let mut run = Running::spawn(cmd);
        let status = run.exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(2), "{var}={value}: {}", run.stderr());
        assert!(
            run.stderr().contains(expected),
            "{var}={value}: {}",
            run.stderr()
        );
    }

    // An incomplete set of OVH_* variables names what is missing, never a value.
    let mut cmd = cluster.command(&[]);
    cmd.env("OVH_APPLICATION_KEY", "my-app-key")
        .env("OVH_CONSUMER_KEY", "s3cr3t-consumer-key");
    let mut run = Running::spawn(cmd);
    let status = run.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains("missing OVH_APPLICATION_SECRET"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_ovh_variables_are_reported_as_the_default_credentials() {
    let cluster = Cluster::start(true).await;
    let mut cmd = cluster.command(&["--log-format", "json"]);
    // A variable set to "" (as a Helm chart may render it) means the default.
    cmd.env("SENDCONNECTOR_NAMESPACES", "")
        .env("OVH_ENDPOINT", "ovh-eu")
        .env("OVH_CLIENT_ID", "client-id")
        .env("OVH_CLIENT_SECRET", "s3cr3t-client-secret");
    let mut run = Running::spawn(cmd);
    let line = run
        .wait_for_log("starting the operator", Duration::from_secs(10))
        .await;
    let started: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        started["default_credentials"],
        "OVH_* environment variables"
    );
    run.terminate();
    assert!(run.exit(Duration::from_secs(10)).await.success());
    assert!(!run.stderr().contains("s3cr3t"), "{}", run.stderr());
}
