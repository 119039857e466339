//! OVHcloud's own Python client (`python-ovh`, installed by `scripts/install-test-tools`)
//! drives the simulator: if the official client is satisfied, the simulator speaks OVH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ovh_simulator::{Seed, Simulator, SimulatorConfig};
use std::path::PathBuf;
use std::process::Command;

const SEED: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: as
    consumerKey: ck
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}, {method: PUT, path: "/*"}, {method: DELETE, path: "/*"}]
  - applicationKey: ak-ro
    applicationSecret: as-ro
    consumerKey: ck-ro
    accessRules: [{method: GET, path: "/*"}]
  - clientId: sa-client
    clientSecret: sa-secret
services:
  - organization: private-zz111111-1
    service: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

fn python() -> PathBuf {
    let path = std::env::var_os("SENDCONNECTOR_TEST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/install-test-tools (or `make test`, which does)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn python_ovh_drives_the_simulator() {
    let python = python();
    let config = SimulatorConfig {
        seed: Seed::from_yaml(SEED).unwrap(),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/drive_simulator.py");
    let base = sim.base_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .arg("private-zz111111-1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-ovh checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // The script created one connector through the official client.
    assert_eq!(
        sim.sim()
            .connectors("private-zz111111-1", "private-zz111111-1")
            .len(),
        1
    );
}
