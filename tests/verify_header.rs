//! `verify-header`: the guide's sample header and realistic others, through the library and
//! through the binary (files, stdin, `--connector` with manifests, exit codes).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use sendconnector_operator::verify_header::{
    InputError, Relay, Side, Verdict, analyse, hops, parse_header_block, render,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RELAY: &str = "smtp-relay.example.com";

fn header_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/headers")
        .join(name)
}

fn header(name: &str) -> Vec<u8> {
    std::fs::read(header_path(name)).unwrap()
}

fn check(name: &str) -> (Verdict, String) {
    let block = parse_header_block(&header(name)).unwrap();
    let report = analyse(&block, &Relay::new(RELAY).unwrap()).unwrap();
    (report.verdict.clone(), render(&report))
}

/// The binary with no `SENDCONNECTOR_*` variable from the environment.
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sendconnector-operator"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SENDCONNECTOR_") {
            command.env_remove(key);
        }
    }
    // No cluster unless a test gives one: never the machine's own kubeconfig.
    command
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST");
    command.arg("verify-header");
    command
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = binary();
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_guides_sample_left_through_the_relay() {
    // The guide shows this header as proof that newsletter@mydomain.ovh sends through its
    // connector: the relay (smtp.example.com / sender-id.example.com) handed it to the
    // recipient's OVH-hosted mailbox, whose own hops sit above.
    let block = parse_header_block(&header("guide-sample.txt")).unwrap();
    let hops = hops(&block);
    assert_eq!(hops.len(), 6);
    assert_eq!(hops[0].by.as_deref(), Some("smtp-relay.smtp.example.com"));
    assert_eq!(hops[5].by.as_deref(), Some("localhost"));
    let report = analyse(&block, &Relay::new(RELAY).unwrap()).unwrap();
    assert_eq!(report.verdict, Verdict::Relay);
    assert_eq!(report.handover, 1);
    assert_eq!(
        report.sides,
        [
            Side::Sender,
            Side::Handover,
            Side::Recipient,
            Side::Recipient,
            Side::Recipient,
            Side::Recipient
        ]
    );
    assert_eq!(report.sender_host.as_deref(), Some("sender-id.example.com"));
    let rendered = render(&report);
    assert!(
        rendered.contains("by its registered domain example.com"),
        "{rendered}"
    );
    assert!(
        rendered.contains("DKIM-Signature d=smtp.example.com (Authentication-Results: dkim=pass): matches the relay's domain"),
        "{rendered}"
    );
    assert!(
        rendered.contains("Return-Path domain sender-id.example.com: matches"),
        "{rendered}"
    );
    assert!(
        rendered.contains("recipient's side (hosted at OVHcloud)"),
        "{rendered}"
    );

    // Through the binary: hops from the origin, the verdict, exit 0.
    let output = run(
        &["--smart-host", RELAY, "tests/headers/guide-sample.txt"],
        None,
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let first = stdout.find("by smtp-relay.smtp.example.com").unwrap();
    let last = stdout.find("by localhost").unwrap();
    assert!(first < last, "{stdout}");
    assert!(
        stdout.contains("at Tue, 28 Feb 2023 07:51:01 +0000 (UTC)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Verdict: left through the relay smtp-relay.example.com"),
        "{stdout}"
    );
}

#[test]
fn a_platform_server_is_not_the_relay_for_the_guides_sample() {
    // The same message, checked against another relay: not through it.
    let block = parse_header_block(&header("guide-sample.txt")).unwrap();
    let report = analyse(&block, &Relay::new("relay.other-provider.net").unwrap()).unwrap();
    assert_eq!(
        report.verdict,
        Verdict::OtherHost("sender-id.example.com".into())
    );
    let output = run(
        &[
            "--smart-host",
            "relay.other-provider.net",
            "tests/headers/guide-sample.txt",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_newsletter_through_the_relay() {
    let (verdict, rendered) = check("relay-newsletter.txt");
    assert_eq!(verdict, Verdict::Relay, "{rendered}");
    assert!(rendered.contains("hop 4: the message left the sender's side there: mx.google.com received it from out-2.smtp.example.com"), "{rendered}");
    // The platform's Exchange servers below the relay are expected, not a contradiction.
    assert!(
        rendered.contains("the platform's servers handed the message on before the relay"),
        "{rendered}"
    );
    // The body's fake Received line is not read.
    assert!(!rendered.contains("by anything"), "{rendered}");
}

#[test]
fn contact_through_the_platform() {
    let (verdict, rendered) = check("platform-contact.txt");
    assert_eq!(
        verdict,
        Verdict::Platform("mo552.mail-out.ovh.net".into()),
        "{rendered}"
    );
    let output = run(
        &["--smart-host", RELAY, "tests/headers/platform-contact.txt"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("the platform's own outgoing server mo552.mail-out.ovh.net")
    );
}

#[test]
fn a_relay_line_below_the_platform_hop_does_not_count() {
    let (verdict, rendered) = check("forged-relay-below.txt");
    assert_eq!(
        verdict,
        Verdict::Platform("mo552.mail-out.ovh.net".into()),
        "{rendered}"
    );
    assert!(
        rendered.contains("hop 1: the relay's name appears there, below hop 5"),
        "{rendered}"
    );
    let output = run(
        &[
            "--smart-host",
            RELAY,
            "tests/headers/forged-relay-below.txt",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_relay_name_in_the_display_name_or_helo_does_not_count() {
    let (verdict, rendered) = check("forged-display-name.txt");
    assert_eq!(
        verdict,
        Verdict::Platform("mo552.mail-out.ovh.net".into()),
        "{rendered}"
    );
    assert!(rendered.contains("only in the display name"), "{rendered}");
    assert!(rendered.contains("the resolved name counts"), "{rendered}");
    let output = run(
        &[
            "--smart-host",
            RELAY,
            "tests/headers/forged-display-name.txt",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn folded_lines_and_crlf() {
    let bytes = header("folded-crlf.txt");
    assert!(
        bytes.windows(2).any(|w| w == b"\r\n"),
        "the sample keeps its CRLF"
    );
    let block = parse_header_block(&bytes).unwrap();
    let received: Vec<_> = block.all("Received").collect();
    assert_eq!(received.len(), 4);
    assert!(!block.fields.iter().any(|f| f.value.contains('\r')));
    let (verdict, rendered) = check("folded-crlf.txt");
    assert_eq!(verdict, Verdict::Relay, "{rendered}");
    assert!(
        rendered.contains(
            "db8eur05ft012.mail.protection.outlook.com received it from out-2.smtp.example.com"
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains("DKIM-Signature d=smtp.example.com (Authentication-Results: dkim=pass)"),
        "{rendered}"
    );

    // The same message with LF endings gives the same report.
    let lf = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
    let relay = Relay::new(RELAY).unwrap();
    let from_lf = analyse(&parse_header_block(lf.as_bytes()).unwrap(), &relay).unwrap();
    assert_eq!(render(&from_lf), rendered);
}

#[test]
fn a_recipient_also_hosted_at_ovh() {
    let (verdict, rendered) = check("recipient-at-ovh-relay.txt");
    assert_eq!(verdict, Verdict::Relay, "{rendered}");
    assert!(rendered.contains("hop 4: the message left the sender's side there: mx3.mail.ovh.net received it from out-2.smtp.example.com"), "{rendered}");
    assert!(
        rendered.contains("hops 5, 6: the recipient's side (hosted at OVHcloud)"),
        "{rendered}"
    );

    // And the platform case with the same recipient still names the platform's server, not
    // the recipient's Exchange servers.
    let (verdict, rendered) = check("recipient-at-ovh-platform.txt");
    assert_eq!(
        verdict,
        Verdict::Platform("mo552.mail-out.ovh.net".into()),
        "{rendered}"
    );
    let output = run(
        &[
            "--smart-host",
            RELAY,
            "tests/headers/recipient-at-ovh-relay.txt",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn unreadable_inputs_exit_2() {
    assert_eq!(
        parse_header_block(&header("garbage.txt")),
        Err(InputError::NoHeaders)
    );
    let block = parse_header_block(&header("no-received.txt")).unwrap();
    assert_eq!(
        analyse(&block, &Relay::new(RELAY).unwrap()).unwrap_err(),
        InputError::NoReceived
    );
    let binary_garbage: Vec<u8> = (0..=255_u8).cycle().take(2048).collect();
    for (args, stdin, expected) in [
        (
            vec!["tests/headers/garbage.txt"],
            None,
            "no header lines found",
        ),
        (
            vec!["tests/headers/no-received.txt"],
            None,
            "no Received: header found",
        ),
        (vec![], Some(&b""[..]), "the input is empty"),
        (vec!["-"], Some(&binary_garbage[..]), "binary data"),
        (vec!["tests/headers/missing.txt"], None, "missing.txt"),
    ] {
        let mut all = vec!["--smart-host", RELAY];
        all.extend(args.iter().copied());
        let output = run(&all, stdin);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn reads_stdin_without_a_file() {
    let output = run(&["--smart-host", RELAY], Some(&header("guide-sample.txt")));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Verdict: left through the relay"));
    let output = run(
        &["--smart-host", RELAY, "-"],
        Some(&header("platform-contact.txt")),
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_relay_from_a_sendconnector_manifest() {
    let output = run(
        &[
            "--connector",
            "mail/newsletter-relay",
            "-f",
            "examples/",
            "tests/headers/guide-sample.txt",
        ],
        None,
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.starts_with("Relay: smtp-relay.example.com"),
        "{stdout}"
    );
    let output = run(
        &[
            "--connector",
            "mail/newsletter-relay",
            "-f",
            "examples/30-sendconnector.yaml",
            "tests/headers/platform-contact.txt",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));

    let output = run(
        &[
            "--connector",
            "mail/nope",
            "-f",
            "examples/",
            "tests/headers/guide-sample.txt",
        ],
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("no SendConnector mail/nope"), "{stderr}");
    assert!(stderr.contains("mail/newsletter-relay"), "{stderr}");
}

#[test]
fn exactly_one_relay_flag() {
    for (args, expected) in [
        (vec![], "--smart-host"),
        (
            vec![
                "--smart-host",
                RELAY,
                "--connector",
                "mail/newsletter-relay",
                "-f",
                "examples/",
            ],
            "cannot be used with",
        ),
        (
            vec!["--connector", "mail/newsletter-relay"],
            "no Kubernetes configuration",
        ),
        (
            vec!["--connector", "newsletter-relay", "-f", "examples/"],
            "NAMESPACE/NAME",
        ),
        (vec!["-f", "examples/"], "--connector"),
        (vec!["--smart-host", "not a host"], "not a host name"),
    ] {
        let mut all = args.clone();
        all.push("tests/headers/guide-sample.txt");
        let output = run(&all, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = binary().arg("--help").output().unwrap();
    let help = text(&output.stdout);
    assert!(help.contains("from the cluster of KUBECONFIG"), "{help}");
    assert!(help.contains("Exit codes"), "{help}");
}

/// `--connector` without `-f` reads the SendConnector from the cluster of `KUBECONFIG`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_is_read_from_the_cluster() {
    use kube::api::{Api, PostParams};
    use sendconnector_operator::crd::SendConnector;
    let server = memory_apiserver::ApiServer::new();
    for crd in sendconnector_operator::crd::crds() {
        server.register_crd(&crd);
    }
    let manifest = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/30-sendconnector.yaml"),
    )
    .unwrap();
    let connector: SendConnector = serde_saphyr::from_str(&manifest).unwrap();
    Api::<SendConnector>::namespaced(server.client(), "mail")
        .create(&PostParams::default(), &connector)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://{addr}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = binary();
        command
            .env("KUBECONFIG", &kubeconfig)
            .args([
                "--connector",
                "mail/newsletter-relay",
                "tests/headers/guide-sample.txt",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );

    let missing = tokio::task::spawn_blocking(move || {
        let mut command = binary();
        command
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .args(["--connector", "mail/nope", "tests/headers/guide-sample.txt"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("SendConnector mail/nope not found"),
        "{}",
        text(&missing.stderr)
    );
}
