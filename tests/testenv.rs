//! The CRDs on a real kube-apiserver (with etcd and kube-controller-manager, started by
//! `scripts/testenv`), driven by the kubectl built with it. These tests fail, never skip, when
//! the control plane cannot be built or started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/testenv.rs"]
mod testenv;

use kube::api::{Api, ListParams};
use sendconnector_operator::crd::SendConnector;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use testenv::TestEnv;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let output = env.kubectl(args);
    assert!(
        output.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs kubectl until its output satisfies `check`: discovery and the OpenAPI documents of a
/// new CRD appear on the server a moment after the CRD is established.
fn eventually(env: &TestEnv, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = env.kubectl(args);
        let out = text(&output);
        if output.status.success() && check(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {}: no expected output within 60 s; last: {out}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The doc comment of `Authentication::mechanism`, read from the source.
fn mechanism_doc() -> String {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/crd/send_connector.rs"),
    )
    .unwrap();
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    let field = lines
        .iter()
        .position(|l| l.starts_with("pub mechanism:"))
        .expect("Authentication::mechanism in src/crd/send_connector.rs");
    let mut doc = Vec::new();
    for line in lines[..field].iter().rev() {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim());
        } else if !line.starts_with("#[") {
            break;
        }
    }
    doc.reverse();
    assert!(
        !doc.is_empty(),
        "no doc comment on Authentication::mechanism"
    );
    doc.join(" ")
}

/// The Kubernetes version testenv/kube/go.mod pins.
fn pinned_version() -> String {
    let go_mod =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/kube/go.mod"))
            .unwrap();
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .expect("k8s.io/kubernetes in testenv/kube/go.mod")
        .trim()
        .to_owned()
}

fn connector(name: &str, extra_spec: &str, mechanism: &str) -> String {
    format!(
        "apiVersion: sendconnector.io/v1alpha1
kind: SendConnector
metadata:
  name: {name}
  namespace: mail
spec:
  organization: private-zz111111-1
  smartHost: smtp-relay.example.com
{extra_spec}  authentication:
    mechanism: {mechanism}
    user: relay
    passwordSecretRef:
      name: relay-password
"
    )
}

/// Applies `manifest` with client-side validation off, so that any refusal is the server's.
fn apply(env: &TestEnv, files: &Path, name: &str, manifest: &str) -> Output {
    let file = files.join(format!("{name}.yaml"));
    std::fs::write(&file, manifest).unwrap();
    env.kubectl(&["apply", "--validate=false", "-f", file.to_str().unwrap()])
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

fn pids(env: &TestEnv) -> Vec<(String, u32)> {
    std::fs::read_to_string(env.dir().join("pids"))
        .unwrap()
        .lines()
        .map(|l| {
            let (name, pid) = l.split_once(' ').unwrap();
            (name.to_owned(), pid.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_crds_on_a_real_api_server() {
    let env = TestEnv::start().expect("the control plane must start");
    let started = pids(&env);
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "watchdog",
    ] {
        assert!(
            started
                .iter()
                .any(|(name, pid)| name == component && alive(*pid)),
            "{component} is not running: {started:?}"
        );
    }

    // The server reports the pinned release, and the kubectl is of the same one.
    let version: Value = serde_json::from_str(&ok(&env, &["version", "-o", "json"])).unwrap();
    let pinned = pinned_version();
    for side in ["clientVersion", "serverVersion"] {
        assert_eq!(version[side]["gitVersion"], pinned.as_str(), "{version:#}");
        assert_eq!(version[side]["major"], "1", "{version:#}");
        assert_eq!(
            version[side]["minor"],
            pinned.split('.').nth(1).unwrap(),
            "{version:#}"
        );
    }

    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let out = ok(&env, &["apply", "-f", crds.to_str().unwrap()]);
    assert!(
        out.contains("sendconnectors.sendconnector.io created")
            && out.contains("mailboxbindings.sendconnector.io created"),
        "{out}"
    );
    ok(
        &env,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sendconnectors.sendconnector.io",
            "crd/mailboxbindings.sendconnector.io",
            "--timeout=60s",
        ],
    );

    // Field docs from the server's OpenAPI, under the kind's name and its short name.
    let doc = words(&mechanism_doc());
    for resource in ["sendconnector", "sendconn"] {
        let path = format!("{resource}.spec.authentication");
        eventually(&env, &["explain", &path], |out| words(out).contains(&doc));
    }

    ok(&env, &["create", "namespace", "mail"]);
    let files = tempfile::tempdir().unwrap();
    let output = apply(
        &env,
        files.path(),
        "relay",
        &connector("relay", "", "basicAuth"),
    );
    assert!(output.status.success(), "{}", text(&output));

    // The short names are this project's kinds, not StorageClass.
    let out = eventually(&env, &["get", "sendconn,mbx", "-A", "-o", "name"], |out| {
        !out.trim().is_empty()
    });
    assert_eq!(out.trim(), "sendconnector.sendconnector.io/relay", "{out}");
    let out = text(&env.kubectl(&["get", "sendconn,mbx", "-A"]));
    assert!(out.contains("relay"), "{out}");
    assert!(!out.to_lowercase().contains("storageclass"), "{out}");

    // The server refuses what the schema forbids, naming the field.
    for (name, manifest, field) in [
        (
            "bad-port",
            connector("bad-port", "  port: 70000\n", "basicAuth"),
            "spec.port",
        ),
        (
            "bad-mechanism",
            connector("bad-mechanism", "", "foo"),
            "spec.authentication.mechanism",
        ),
    ] {
        let output = apply(&env, files.path(), name, &manifest);
        let out = text(&output);
        assert!(!output.status.success(), "{name} was accepted: {out}");
        assert!(
            out.contains("is invalid") && out.contains(field),
            "{name}: {out}"
        );
        let out = text(&env.kubectl(&["get", "sendconnector", name, "-n", "mail"]));
        assert!(out.contains("NotFound"), "{name} was stored: {out}");
    }

    // The Rust client (rustls, the admin's client certificate) reads what kubectl wrote.
    let names = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = env.client().await.unwrap();
        let connectors: Api<SendConnector> = Api::namespaced(client, "mail");
        connectors
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(names, ["relay"]);

    // The controller manager finishes a namespace's deletion.
    ok(
        &env,
        &[
            "delete",
            "namespace",
            "mail",
            "--wait=true",
            "--timeout=120s",
        ],
    );

    let dir = env.dir().to_owned();
    env.stop().unwrap();
    for (name, pid) in &started {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after down");
    }
    assert!(!dir.exists(), "down left {}", dir.display());
}

/// A child process killed when dropped, so a failing test leaves no owner behind.
struct Owner(std::process::Child);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_control_plane_stops_when_its_owner_exits() {
    let mut owner = Owner(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let env = TestEnv::start_owned_by(owner.0.id()).expect("the control plane must start");
    let started = pids(&env);
    assert_eq!(started.len(), 4, "{started:?}");
    ok(&env, &["get", "--raw", "/readyz"]);

    owner.0.kill().unwrap();
    owner.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.iter().any(|(_, pid)| alive(*pid)) || env.dir().exists() {
        assert!(
            Instant::now() < deadline,
            "still running 60 s after the owner exited: {:?}, {} exists: {}",
            started
                .iter()
                .filter(|(_, pid)| alive(*pid))
                .collect::<Vec<_>>(),
            env.dir().display(),
            env.dir().exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
