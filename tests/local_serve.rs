//! `local --serve`: after convergence the embedded Kubernetes API is served over HTTP, and the
//! real `kubectl` drives the operator through it: apply, wait for Ready, get (with the printer
//! columns), delete, while the OVH side is a simulator the test can look into. Resources that
//! arrive through kubectl stay on the simulator, whatever endpoint their Secret names; with
//! `--no-controller`, `run` started on the kubeconfig is the only writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ovh_simulator::{Seed, Simulator, SimulatorConfig};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ORG: &str = "private-zz111111-1";

fn kubectl_binary() -> PathBuf {
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl");
    if bundled.exists() {
        bundled
    } else {
        PathBuf::from("kubectl")
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(kubectl_binary());
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .arg("--request-timeout=20s")
            .args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("kubectl runs (installed by scripts/install-test-tools)");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

struct Local(Child);

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_file(path: &Path, local: &mut Local) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !path.exists() {
        if let Ok(Some(status)) = local.0.try_wait() {
            panic!("local exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "local never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_waits_gets_and_deletes_through_local_serve() {
    let seed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("simulator/seed.yaml"),
    )
    .unwrap();
    let mut seed = Seed::from_yaml(&seed).unwrap();
    seed.tasks = Seed::from_yaml("tasks: {todoSeconds: 0.05, doingSeconds: 0.1}")
        .unwrap()
        .tasks;
    let sim = Simulator::start(
        SimulatorConfig {
            seed,
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let child = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"))
        .args([
            "local",
            "-f",
            examples.to_str().unwrap(),
            "--ovh-endpoint",
            &sim.base_url(),
            "--serve",
            "127.0.0.1:0",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
            "--timeout",
            "60s",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut local = Local(child);
    let k = tokio::task::spawn_blocking(move || {
        wait_file(&kubeconfig, &mut local);
        let k = Kubectl { kubeconfig, cache: tempfile::tempdir().unwrap() };

        // A new connector, applied the way a person would.
        let manifest = "apiVersion: sendconnector.io/v1alpha1\nkind: SendConnector\nmetadata: {name: second-relay, namespace: mail}\nspec:\n  organization: private-zz111111-1\n  smartHost: relay2.example.net\n  port: 2525\n  credentialsSecretRef: {name: ovh-api}\n";
        k.ok(&["apply", "-f", "-"], Some(manifest));
        k.ok(&["wait", "--for=condition=Ready", "sendconnector/second-relay", "-n", "mail", "--timeout=60s"], None);
        let table = k.ok(&["get", "sendconnectors", "-n", "mail"], None);
        let header = table.lines().next().unwrap();
        for column in ["NAME", "READY", "REASON", "ID", "SMARTHOST", "AGE"] {
            assert!(header.contains(column), "{column} missing:\n{table}");
        }
        let row = table.lines().find(|l| l.starts_with("second-relay")).unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains("True") && row.contains("relay2.example.net"), "{table}");
        let bindings = k.ok(&["get", "mbx", "-n", "mail"], None);
        assert!(bindings.contains("3/3"), "{bindings}");

        k.ok(&["delete", "sendconnector", "second-relay", "-n", "mail", "--timeout=60s"], None);
        let after = k.run(&["get", "sendconnector", "second-relay", "-n", "mail"], None);
        assert!(!after.status.success(), "the resource is gone once its finalizer went");
        (k, local)
    })
    .await
    .unwrap();
    let names: Vec<String> = sim
        .sim()
        .connectors(ORG, ORG)
        .iter()
        .map(|c| c["displayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["newsletter-relay"],
        "second-relay was deleted on OVH too"
    );
    drop(k);
}

const BIN: &str = env!("CARGO_BIN_EXE_sendconnector-operator");

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A process of the binary, its standard error collected as it comes; killed when dropped.
struct Process {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        for (var, _) in std::env::vars() {
            if var.starts_with("SENDCONNECTOR_") || var.starts_with("OVH_") || var == "RUST_LOG" {
                cmd.env_remove(var);
            }
        }
        cmd.env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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

    /// Waits until `path` exists (the kubeconfig `local --serve` writes).
    fn wait_file(&mut self, path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !path.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited early: {status}\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared:\n{}",
                path.display(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit; returns the exit code and standard error.
    fn interrupt(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status.code(), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "still running after SIGINT:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A credentials Secret for the example platform that names the real `ovh-eu` endpoint.
const OVH_EU_SECRET: &str = "apiVersion: v1
kind: Secret
metadata: {name: ovh-api, namespace: mail}
stringData:
  endpoint: ovh-eu
  applicationKey: demo-application-key
  applicationSecret: demo-application-secret
  consumerKey: demo-consumer-key
";

/// The simulator's counter line for one connector creation.
const CREATION: &str =
    "1 POST /email/exchange/{organizationName}/service/{exchangeService}/sendConnector";

#[test]
fn resources_applied_through_kubectl_reach_the_simulator_whatever_their_endpoint() {
    let environments: [&[(&str, &str)]; 2] = [
        &[],
        &[
            ("OVH_ENDPOINT", "ovh-eu"),
            ("OVH_APPLICATION_KEY", "demo-application-key"),
            ("OVH_APPLICATION_SECRET", "demo-application-secret"),
            ("OVH_CONSUMER_KEY", "demo-consumer-key"),
        ],
    ];
    for env in environments {
        // The manifests directory holds a Namespace only: everything else comes later.
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        std::fs::copy(
            examples().join("00-namespace.yaml"),
            manifests.join("00-namespace.yaml"),
        )
        .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut local = Process::spawn(
            &[
                "local",
                "-f",
                manifests.to_str().unwrap(),
                "--serve",
                "127.0.0.1:0",
                "--kubeconfig-out",
                kubeconfig.to_str().unwrap(),
            ],
            env,
        );
        local.wait_file(&kubeconfig);
        let k = Kubectl {
            kubeconfig,
            cache: tempfile::tempdir().unwrap(),
        };
        k.ok(&["apply", "-f", "-"], Some(OVH_EU_SECRET));
        for file in ["20-relay-password.yaml", "30-sendconnector.yaml"] {
            k.ok(
                &["apply", "-f", examples().join(file).to_str().unwrap()],
                None,
            );
        }
        let waited = k.run(
            &[
                "wait",
                "--for=condition=Ready",
                "sendconnector/newsletter-relay",
                "-n",
                "mail",
                "--timeout=60s",
            ],
            None,
        );
        let status = k.run(
            &[
                "get",
                "sendconnector",
                "newsletter-relay",
                "-n",
                "mail",
                "-o",
                "jsonpath={.status.conditions}",
            ],
            None,
        );
        assert!(
            waited.status.success(),
            "{env:?}: not Ready: {}\n{}",
            String::from_utf8_lossy(&status.stdout),
            local.stderr()
        );
        // The embedded simulator received the calls: its summary counts the creation.
        let (code, stderr) = local.interrupt();
        assert_eq!(code, Some(0), "{env:?}:\n{stderr}");
        let summary: Vec<&str> = stderr
            .lines()
            .skip_while(|l| !l.starts_with("OVH simulator: "))
            .collect();
        assert!(
            summary.iter().any(|l| l.trim() == CREATION),
            "{env:?}: no connector creation on the simulator:\n{stderr}"
        );
        assert!(!stderr.contains("api.ovh.com"), "{env:?}:\n{stderr}");
    }
}

/// Waits for a line of `process`'s standard error holding `what`; returns it.
fn wait_line(process: &mut Process, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(line) = process.stderr().lines().find(|l| l.contains(what)) {
            return line.to_owned();
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("exited early ({status}):\n{}", process.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "no line with {what:?}:\n{}",
            process.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.0 GET on loopback; the answer's body.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

#[test]
fn with_no_controller_run_is_the_only_writer() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // No -f: the served API starts empty, with the CRDs installed.
    let mut local = Process::spawn(
        &[
            "local",
            "--serve",
            "127.0.0.1:0",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
            "--no-controller",
        ],
        &[],
    );
    local.wait_file(&kubeconfig);
    // local says where its simulator is, so that a credentials Secret can name it.
    let line = wait_line(&mut local, "OVH simulator");
    let api = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches([',', '.', ';', ')'])
        .to_owned();
    assert!(api.ends_with("/1.0"), "{line}");
    let root = api.trim_end_matches("/1.0").to_owned();

    let operator = Process::spawn(
        &["run", "--ovh-rate", "50", "--ovh-burst", "50"],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("SENDCONNECTOR_LISTEN", "127.0.0.1:0"),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    let k = Kubectl {
        kubeconfig: kubeconfig.clone(),
        cache: tempfile::tempdir().unwrap(),
    };
    let mut manifests = String::new();
    for file in [
        "00-namespace.yaml",
        "10-ovh-credentials.yaml",
        "20-relay-password.yaml",
        "30-sendconnector.yaml",
        "40-mailboxbinding.yaml",
    ] {
        let text = std::fs::read_to_string(examples().join(file)).unwrap();
        manifests.push_str(&text.replace("endpoint: ovh-eu", &format!("endpoint: {api}")));
        manifests.push_str("\n---\n");
    }
    assert!(manifests.contains(&format!("endpoint: {api}")));
    k.ok(&["apply", "-f", "-"], Some(&manifests));
    for resource in [
        "sendconnector/newsletter-relay",
        "mailboxbinding/newsletter",
    ] {
        let waited = k.run(
            &[
                "wait",
                "--for=condition=Ready",
                resource,
                "-n",
                "mail",
                "--timeout=120s",
            ],
            None,
        );
        assert!(
            waited.status.success(),
            "{resource} not Ready: {}\nrun:\n{}\nlocal:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            operator.stderr(),
            local.stderr()
        );
    }

    // One connector on OVH for the one SendConnector, created once: nobody raced `run`.
    let state: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{root}/_simulator/state"))).unwrap();
    let service = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["organization"] == ORG)
        .unwrap();
    let names: Vec<&str> = service["connectors"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["fields"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["newsletter-relay"], "{service:#}");
    let counters: serde_json::Value =
        serde_json::from_str(&http_get(&format!("{root}/_simulator/counters"))).unwrap();
    let creations = counters
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| route.starts_with("POST ") && route.ends_with("/sendConnector"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(creations, 1, "{counters:#}");
    drop(operator);
    drop(local);
}

#[test]
fn every_file_in_examples_is_a_kubernetes_object() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        assert!(file.is_file(), "{} is not a file", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let docs: Vec<_> = docs.into_iter().filter(|d| !d.is_null()).collect();
        assert!(!docs.is_empty(), "{} holds no object", file.display());
        for doc in docs {
            for field in ["/apiVersion", "/kind", "/metadata/name"] {
                assert!(
                    doc.pointer(field)
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| !v.is_empty()),
                    "{}: a document without {field}: kubectl apply -f examples/ refuses it",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_readme_commands_apply_crds_and_examples_with_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut local = Process::spawn(
        &[
            "local",
            "--serve",
            "127.0.0.1:0",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
            "--no-controller",
        ],
        &[],
    );
    local.wait_file(&kubeconfig);
    let k = Kubectl {
        kubeconfig,
        cache: tempfile::tempdir().unwrap(),
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // "The resources": kubectl apply -f crds/ && kubectl apply -f examples/
    k.ok(&["apply", "-f", root.join("crds").to_str().unwrap()], None);
    let examples = examples();
    let examples = examples.to_str().unwrap();
    let applied = k.ok(&["apply", "-f", examples], None);
    for object in [
        "namespace/mail",
        "secret/ovh-api",
        "secret/relay-password",
        "sendconnector.sendconnector.io/newsletter-relay",
        "mailboxbinding.sendconnector.io/newsletter",
    ] {
        assert!(applied.contains(&format!("{object} created")), "{applied}");
    }
    let again = k.ok(&["apply", "--dry-run=server", "-f", examples], None);
    assert!(again.contains("(server dry run)"), "{again}");
    drop(local);
}

/// `description` of a field of the SendConnector schema in `crds/crds.yaml`, by JSON pointer.
fn crd_description(pointer: &str) -> String {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/crds.yaml"))
            .unwrap();
    let crd: serde_json::Value =
        serde_saphyr::from_str(text.split("\n---\n").next().unwrap()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    schema.pointer(pointer).unwrap()["description"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn kubectl_explain_prints_the_field_docs_on_local_serve() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut local = Process::spawn(
        &[
            "local",
            "--serve",
            "127.0.0.1:0",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
            "--no-controller",
        ],
        &[],
    );
    local.wait_file(&kubeconfig);
    let k = Kubectl {
        kubeconfig,
        cache: tempfile::tempdir().unwrap(),
    };
    let authentication = crd_description("/properties/spec/properties/authentication");
    let mechanism =
        crd_description("/properties/spec/properties/authentication/properties/mechanism");
    for resource in ["sendconnector", "sendconn"] {
        let out = k.ok(
            &["explain", &format!("{resource}.spec.authentication")],
            None,
        );
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("GROUP: sendconnector.io"), "{out}");
        assert!(flat.contains("KIND: SendConnector"), "{out}");
        assert!(flat.contains("VERSION: v1alpha1"), "{out}");
        assert!(flat.contains(&authentication), "{out}");
        assert!(flat.contains(&mechanism), "{out}");
        for field in ["passwordSecretRef", "user"] {
            assert!(flat.contains(field), "{field} missing:\n{out}");
        }
    }
    let missing = k.run(&["explain", "sendconnector.spec.nothing"], None);
    assert!(
        !missing.status.success(),
        "an unknown field is not explained"
    );
}
