//! The README's configuration tables say what the binary and the chart really take: every
//! `run` flag of `--help` is in the flags table with its variable, and every value of the
//! chart's values table exists in `values.yaml` (and every top-level value is documented).
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
