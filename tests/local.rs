//! `sendconnector-operator local`: the real controller on a directory of manifests, against the
//! embedded OVH simulator, run as the binary a newcomer runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn local(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"));
    cmd.arg("local")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The write lines of the simulator summary: `(count, "METHOD route")`.
fn writes(stderr: &str) -> (u64, Vec<(u64, String)>) {
    let mut lines = stderr
        .lines()
        .skip_while(|l| !l.starts_with("OVH simulator: "));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no simulator summary in:\n{stderr}"));
    let total = head
        .trim_start_matches("OVH simulator: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let routes = lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (n, route) = l.trim().split_once(' ').unwrap();
            (n.parse().unwrap(), route.to_owned())
        })
        .collect();
    (total, routes)
}

fn row<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn the_examples_converge_then_a_second_run_writes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let dir = examples();
    let args = [
        "-f",
        dir.to_str().unwrap(),
        "--state",
        state.path().to_str().unwrap(),
        "--timeout",
        "60s",
    ];
    let first = local(&args, &[]);
    let (out, err) = text(&first);
    assert!(first.status.success(), "{out}\n{err}");
    assert!(
        row(&out, "newsletter-relay").contains("True")
            && row(&out, "newsletter-relay").contains("smtp-relay.example.com"),
        "{out}"
    );
    assert!(row(&out, "newsletter").contains("3/3"), "{out}");
    let (total, routes) = writes(&err);
    assert!(total > 0, "{err}");
    assert!(
        routes
            .iter()
            .any(|(n, r)| *n == 1 && r.ends_with("/sendConnector") && r.starts_with("POST")),
        "{routes:?}"
    );

    // The same cluster state and the same OVH: nothing to write.
    let second = local(&args, &[]);
    let (out, err) = text(&second);
    assert!(second.status.success(), "{out}\n{err}");
    assert_eq!(writes(&err), (0, vec![]), "{err}");

    // A cluster rebuilt from git (no kept cluster state) against the same OVH: everything is
    // adopted; the only write is the password, which OVH never shows.
    let rebuilt = tempfile::tempdir().unwrap();
    std::fs::copy(
        state.path().join("ovh.json"),
        rebuilt.path().join("ovh.json"),
    )
    .unwrap();
    let third = local(
        &[
            "-f",
            dir.to_str().unwrap(),
            "--state",
            rebuilt.path().to_str().unwrap(),
            "--timeout",
            "60s",
        ],
        &[],
    );
    let (out, err) = text(&third);
    assert!(third.status.success(), "{out}\n{err}");
    let (total, routes) = writes(&err);
    assert_eq!(total, 1, "{err}");
    assert!(routes[0].1.ends_with("/changeAuthentication"), "{routes:?}");
}

#[test]
fn unknown_kinds_are_reported_and_a_missing_mailbox_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples(), dir.path());
    std::fs::write(
        dir.path().join("50-extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated, namespace: mail}\n",
    )
    .unwrap();
    let binding = std::fs::read_to_string(dir.path().join("40-mailboxbinding.yaml")).unwrap();
    std::fs::write(
        dir.path().join("40-mailboxbinding.yaml"),
        binding.replace("contact@mydomain.ovh", "ghost@mydomain.ovh"),
    )
    .unwrap();
    let run = local(
        &["-f", dir.path().to_str().unwrap(), "--timeout", "5s"],
        &[],
    );
    let (out, err) = text(&run);
    assert_eq!(run.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("skipped") && err.contains("ConfigMap unrelated"),
        "{err}"
    );
    assert!(
        row(&out, "newsletter").contains("MailboxNotFound")
            && row(&out, "newsletter").contains("ghost@mydomain.ovh"),
        "{out}"
    );
    assert!(row(&out, "newsletter-relay").contains("True"), "{out}");
}

#[test]
fn ovh_variables_never_send_local_to_a_real_endpoint() {
    // OVH_* variables point at an address where nothing listens; local still uses the
    // embedded simulator because --ovh-endpoint did not name another endpoint.
    let env = [
        ("OVH_ENDPOINT", "http://127.0.0.1:9/1.0"),
        ("OVH_APPLICATION_KEY", "real-ak"),
        ("OVH_APPLICATION_SECRET", "real-as"),
        ("OVH_CONSUMER_KEY", "real-ck"),
    ];
    let run = local(
        &["-f", examples().to_str().unwrap(), "--timeout", "60s"],
        &env,
    );
    let (out, err) = text(&run);
    assert!(run.status.success(), "{out}\n{err}");
    assert!(err.contains("OVH simulator: "), "{err}");
}

#[test]
fn a_dry_run_prints_exactly_the_missing_calls_and_writes_nothing() {
    // OVH already holds the connector (made by an earlier run on the connector alone).
    let part = tempfile::tempdir().unwrap();
    copy_dir(&examples(), part.path());
    std::fs::remove_file(part.path().join("40-mailboxbinding.yaml")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = local(
        &[
            "-f",
            part.path().to_str().unwrap(),
            "--state",
            state.path().to_str().unwrap(),
            "--timeout",
            "60s",
        ],
        &[],
    );
    assert!(first.status.success(), "{:?}", text(&first));

    // A new cluster, the whole example, --dry-run: the plan is what is missing, nothing more.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(state.path().join("ovh.json"), fresh.path().join("ovh.json")).unwrap();
    let dry = local(
        &[
            "-f",
            examples().to_str().unwrap(),
            "--state",
            fresh.path().to_str().unwrap(),
            "--dry-run",
            "--timeout",
            "60s",
        ],
        &[],
    );
    let (out, err) = text(&dry);
    assert_eq!(
        dry.status.code(),
        Some(2),
        "calls are planned:\n{out}\n{err}"
    );
    assert_eq!(writes(&err), (0, vec![]), "a dry run writes nothing: {err}");
    let plan: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Planned OVH calls"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .map(str::trim)
        .collect();
    let p = "/email/exchange/private-zz111111-1/service/private-zz111111-1";
    assert_eq!(
        plan,
        [
            format!("POST {p}/sendConnector/29/changeAuthentication"),
            format!("PUT {p}/account/newsletter@mydomain.ovh"),
            format!("PUT {p}/account/contact@mydomain.ovh"),
            format!("PUT {p}/domain/mydomain.ovh/changeDefaultSBR"),
        ],
        "{out}"
    );
    assert!(
        out.contains(r#""password":"**********""#) && !out.contains("change-me"),
        "{out}"
    );
    assert!(out.contains(r#"{"sendConnectorId":29}"#), "{out}");
}

#[test]
fn a_dry_run_exits_0_with_nothing_to_change_2_with_calls_planned_1_on_an_error() {
    let dir = examples();
    let dir = dir.to_str().unwrap();

    // A fresh platform: everything is to be created.
    let fresh = local(&["-f", dir, "--dry-run", "--timeout", "60s"], &[]);
    let (out, err) = text(&fresh);
    assert_eq!(fresh.status.code(), Some(2), "{out}\n{err}");
    assert!(out.contains("Planned OVH calls"), "{out}");

    // After a real run, the same manifests and state: nothing to change.
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let real = local(&["-f", dir, "--state", state, "--timeout", "60s"], &[]);
    assert_eq!(real.status.code(), Some(0), "{:?}", text(&real));
    let again = local(
        &["-f", dir, "--state", state, "--dry-run", "--timeout", "60s"],
        &[],
    );
    let (out, err) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(writes(&err), (0, vec![]), "{err}");
    assert!(out.contains("nothing to change"), "{out}");

    // Errors: a manifest that is not YAML, and a bad flag value.
    let bad = tempfile::tempdir().unwrap();
    copy_dir(&examples(), bad.path());
    std::fs::write(bad.path().join("50-bad.yaml"), "kind: [unclosed\n").unwrap();
    let broken = local(
        &[
            "-f",
            bad.path().to_str().unwrap(),
            "--dry-run",
            "--timeout",
            "60s",
        ],
        &[],
    );
    let (out, err) = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("50-bad.yaml"), "{err}");
    let flag = local(&["-f", dir, "--dry-run", "--timeout", "soon"], &[]);
    let (out, err) = text(&flag);
    assert_eq!(flag.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("--timeout"), "{err}");
}
