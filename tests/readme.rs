//! The README's configuration tables say what the binary and the chart really take: every
//! `run` flag of `--help` is in the flags table with its variable, and every value of the
//! chart's values table exists in `values.yaml` (and every top-level value is documented).
//! Its snippets work: the python-ovh lines of the simulator section drive a simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of one `## ` section of the README.
fn section(title: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    readme
        .lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .map(str::to_owned)
        .collect()
}

/// The backticked words of a table cell.
fn ticks(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn cells(row: &str) -> Vec<String> {
    row.replace("\\|", "¦")
        .split('|')
        .map(|c| c.trim().replace('¦', "|"))
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn the_flags_table_is_what_run_help_lists() {
    let help = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let in_help: BTreeSet<String> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([',', '.']).to_owned())
        .filter(|w| w != "--help" && w != "--version")
        .collect();
    let mut in_readme = BTreeSet::new();
    for row in section("## Running the operator")
        .iter()
        .filter(|l| l.starts_with("| `--"))
    {
        let c = cells(row);
        let flag = ticks(&c[0])[0]
            .split(['[', ' ', '='])
            .next()
            .unwrap()
            .to_owned();
        let env = &ticks(&c[1])[0];
        let expected_env = format!(
            "SENDCONNECTOR_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert_eq!(env, &expected_env, "{row}");
        assert!(
            help.contains(&format!("[env: {env}=")),
            "{env} is not what --help says for {flag}"
        );
        in_readme.insert(flag);
    }
    assert_eq!(in_readme, in_help, "README flags table vs `run --help`");
}

fn values() -> Value {
    let text =
        std::fs::read_to_string(root().join("charts/sendconnector-operator/values.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn has_path(values: &Value, path: &str) -> bool {
    path.split('.')
        .try_fold(values, |v, key| v.as_object().and_then(|m| m.get(key)))
        .is_some()
}

#[test]
fn the_values_table_is_what_the_chart_takes() {
    let values = values();
    let mut documented_top = BTreeSet::new();
    let rows: Vec<String> = section("## Installing")
        .into_iter()
        .filter(|l| l.starts_with("| `"))
        .collect();
    assert!(rows.len() > 10, "the values table is there");
    for row in rows {
        let first = cells(&row)[0].clone();
        // `serviceMonitor.enabled` (`interval`, `labels`): the words in parentheses are
        // siblings of the first value.
        let (main, nested) = first
            .split_once('(')
            .map_or((first.as_str(), ""), |(m, n)| (m, n));
        let main_paths = ticks(main);
        for path in &main_paths {
            assert!(
                has_path(&values, path),
                "README documents `{path}`, which values.yaml lacks"
            );
            documented_top.insert(path.split('.').next().unwrap().to_owned());
        }
        let parent = main_paths[0].rsplit_once('.').map(|(p, _)| p.to_owned());
        for leaf in ticks(nested) {
            let path = parent
                .as_ref()
                .map_or(leaf.clone(), |p| format!("{p}.{leaf}"));
            assert!(
                has_path(&values, &path),
                "README documents `{path}`, which values.yaml lacks"
            );
        }
    }
    let top: BTreeSet<String> = values.as_object().unwrap().keys().cloned().collect();
    let undocumented: Vec<&String> = top.difference(&documented_top).collect();
    assert!(
        undocumented.is_empty(),
        "values.yaml has undocumented values: {undocumented:?}"
    );
}

/// The code blocks of one `## ` section fenced as ```` ```LANG ````.
fn code_blocks(title: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section(title) {
        let fence = line.trim_start();
        match &mut current {
            None if fence == format!("```{lang}") => current = Some(Vec::new()),
            Some(lines) if fence == "```" => {
                blocks.push(lines.join("\n") + "\n");
                current = None;
            }
            Some(lines) => lines.push(line.clone()),
            None => {}
        }
    }
    blocks
}

/// The simulator binary, as the README starts it, on a free port; killed when dropped.
struct RunningSimulator(std::process::Child, String);

impl RunningSimulator {
    fn start(seed: &std::path::Path) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"))
            .args([
                "--log-format",
                "plain",
                "simulator",
                "--listen",
                "127.0.0.1:0",
                "--seed",
            ])
            .arg(seed)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("SENDCONNECTOR_LISTEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let root = loop {
            let line = lines
                .next()
                .expect("the simulator says where it listens")
                .unwrap();
            if let Some(at) = line.find("listening on http://") {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap();
                break url.trim_end_matches("/1.0").to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self(child, root)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_python_snippet_drives_the_simulator() {
    let title = "## The OVHcloud Exchange API simulator";
    let blocks = code_blocks(title, "python");
    assert_eq!(blocks.len(), 1, "one python-ovh snippet in {title}");
    let snippet = &blocks[0];
    // The snippet names the simulator at the README's --listen address.
    let address = "http://127.0.0.1:8089";
    assert!(snippet.contains(address), "{snippet}");
    let python = root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/install-test-tools (or `make test`, which does)",
        python.display()
    );
    let sim = RunningSimulator::start(&root().join("simulator/seed.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("snippet.py");
    std::fs::write(&script, snippet.replace(address, &sim.1)).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .env_remove("OVH_ENDPOINT")
        .env_remove("OVH_APPLICATION_KEY")
        .env_remove("OVH_APPLICATION_SECRET")
        .env_remove("OVH_CONSUMER_KEY")
        .env_remove("OVH_CLIENT_ID")
        .env_remove("OVH_CLIENT_SECRET")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{snippet}\n{stdout}\n{stderr}");
    // What the snippet prints: the signed and the OAuth2 client both got answers.
    assert!(stdout.contains("[]"), "{stdout}");
    assert!(stdout.contains("newsletter@mydomain.ovh"), "{stdout}");
    drop(sim);
}
