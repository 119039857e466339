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

/// The corpus's refused cases: file, text, `# via:`, and the fields the real server names.
fn refused_cases() -> Vec<(String, String, String, Vec<String>)> {
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
        let fields = fields.split(',').map(|f| f.trim().to_owned()).collect();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let via = via.to_owned();
        out.push((file, text, via, fields));
    }
    out.sort();
    out
}

/// The invalid manifests a `kubectl apply` could carry: one document, created, with the
/// fields the real server names.
fn invalid_creations() -> Vec<(String, String, Vec<String>)> {
    refused_cases()
        .into_iter()
        .filter(|(_, _, via, _)| via == "create")
        .map(|(file, text, _, fields)| (file, text, fields))
        .collect()
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

/// The invalid updates of the corpus as `local` meets them: the object as first applied, then
/// the manifest a user would apply next (the object after a replace or an apply; for a merge
/// or JSON patch, the first object with the patch applied), with the fields the real server
/// names (besides `patch`, which only a patch request has).
fn invalid_updates() -> Vec<(String, serde_json::Value, serde_json::Value, Vec<String>)> {
    let mut out = Vec::new();
    for (file, text, via, fields) in refused_cases() {
        let docs: Vec<serde_json::Value> = text
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        let next = match via.as_str() {
            "replace" | "apply" => docs[1].clone(),
            "merge" => {
                let mut object = docs[0].clone();
                json_patch::merge(&mut object, &docs[1]);
                object
            }
            "json" => {
                // The server's object carries defaults the manifest leaves out: a `replace`
                // of a defaulted field is an `add` to the manifest.
                let mut ops = docs[1].clone();
                for op in ops.as_array_mut().unwrap() {
                    if op["op"] == "replace" {
                        op["op"] = "add".into();
                    }
                }
                let mut object = docs[0].clone();
                let operations: json_patch::Patch = serde_json::from_value(ops).unwrap();
                json_patch::patch(&mut object, &operations).unwrap();
                object
            }
            // Creations are above; a status write is the operator's, never a manifest.
            _ => continue,
        };
        let fields = fields.into_iter().filter(|f| f != "patch").collect();
        out.push((file, docs[0].clone(), next, fields));
    }
    out
}

/// Runs `local -f DIR --state STATE` with `object` as the only manifest.
fn local_with_state(
    object: &serde_json::Value,
    state: &Path,
    endpoint: &str,
    dry_run: bool,
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.yaml"),
        serde_json::to_string(object).unwrap(),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"));
    command
        .args(["local", "-f", dir.path().to_str().unwrap()])
        .args(["--state", state.to_str().unwrap()])
        .args(["--ovh-endpoint", endpoint, "--timeout", "5s"])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    if dry_run {
        command.arg("--dry-run");
    }
    command.output().unwrap()
}

/// The invalid updates: with the first object kept in `--state`, applying the next manifest
/// is refused, naming the field, by `local` and `local --dry-run`, and OVH hears nothing of
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_refuses_every_invalid_update_before_any_ovh_request() {
    let sim = Simulator::start(SimulatorConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = sim.base_url();
    let cases = invalid_updates();
    assert!(cases.len() >= 10, "only {} invalid updates", cases.len());
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for (file, first, next, fields) in &cases {
            for dry_run in [false, true] {
                let state = tempfile::tempdir().unwrap();
                // The first object is stored (it cannot converge: it names no credentials).
                let stored = local_with_state(first, state.path(), &endpoint, false);
                let stored_err = String::from_utf8_lossy(&stored.stderr);
                if stored_err.contains("is invalid") || stored_err.contains("unknown field") {
                    failures.push(format!("{file}: the first object was refused:\n{stored_err}"));
                    continue;
                }
                let output = local_with_state(next, state.path(), &endpoint, dry_run);
                let stderr = String::from_utf8_lossy(&output.stderr);
                let named = fields.iter().all(|f| stderr.contains(f.as_str()));
                let refused = stderr.contains("is invalid") || stderr.contains("unknown field");
                if output.status.code() != Some(1) || !named || !refused {
                    failures.push(format!(
                        "{file} (dry run: {dry_run}): exit {:?}, expected 1 naming {fields:?}:\n{stderr}",
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
