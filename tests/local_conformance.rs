//! `local` refuses what a cluster refuses: every invalid manifest of the in-memory API's
//! conformance corpus (`crates/memory-apiserver/tests/conformance/`, whose verdicts are held
//! to a real kube-apiserver there) makes `local -f DIR` and `local -f DIR --dry-run` exit 1
//! naming the field, before a single OVH request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ovh_simulator::{Seed, Simulator, SimulatorConfig};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/memory-apiserver/tests/conformance")
}

/// The invalid manifests a `kubectl apply` could carry: one document, created, with the
/// fields the real server names.
fn invalid_creations() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let expect = lines.next().unwrap().strip_prefix("# expect: ").unwrap();
        let via = lines.next().unwrap().strip_prefix("# via: ").unwrap();
        let Some(fields) = expect.strip_prefix("rejected ") else {
            continue;
        };
        if via != "create" {
            continue;
        }
        let fields = fields.split(',').map(|f| f.trim().to_owned()).collect();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((file, text, fields));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_refuses_every_invalid_manifest_before_any_ovh_request() {
    let seed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("simulator/seed.yaml"),
    )
    .unwrap();
    let sim = Simulator::start(
        SimulatorConfig {
            seed: Seed::from_yaml(&seed).unwrap(),
            ..SimulatorConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let endpoint = sim.base_url();
    let cases = invalid_creations();
    assert!(cases.len() >= 25, "only {} invalid creations", cases.len());
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for (file, text, fields) in &cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
            for extra in [&[][..], &["--dry-run"][..]] {
                let output = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"))
                    .args(["local", "-f", dir.path().to_str().unwrap()])
                    .args(["--ovh-endpoint", &endpoint, "--timeout", "30s"])
                    .args(extra)
                    .env("NO_COLOR", "1")
                    .env_remove("RUST_LOG")
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                let named = fields.iter().all(|f| stderr.contains(f.as_str()));
                let refused = stderr.contains("is invalid") || stderr.contains("unknown field");
                if output.status.code() != Some(1) || !named || !refused {
                    failures.push(format!(
                        "{file} {extra:?}: exit {:?}, expected 1 naming {fields:?}:\n{stderr}",
                        output.status.code()
                    ));
                }
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let requests: u64 = sim.sim().counters().values().sum();
    assert_eq!(requests, 0, "OVH was asked: {:?}", sim.sim().counters());
}
