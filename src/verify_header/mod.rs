//! `verify-header`: did a received message leave the sender's platform through a given relay
//! (a send connector's smart host), or through the platform's own outgoing server? This is the
//! guide's test step, done by reading the message's header block.
//!
//! # The rule
//!
//! Every server that handles a message adds a `Received:` field on top, so the fields read
//! from the bottom (the origin) to the top (the recipient's mailbox). Only one hop decides:
//! the **hand-over**, where a server on the recipient's side took the message from the last
//! server on the sender's side. Hops below it are the sender's (and a sender can write
//! anything there); hops above it are the recipient's (and say nothing about the way out, even
//! when the recipient is hosted at OVHcloud too).
//!
//! The hand-over is found from the top, because the top hop is always the recipient's:
//!
//! 1. Skip the top hops whose `by` host is internal (`localhost`, an address, a dotless or
//!    `.local` name). The first hop with a public `by` host is on the recipient's side.
//! 2. Walk down. A hop stays on the recipient's side while its `by` host is
//!    - a *recipient marker*: in the recipient's domain (Delivered-To, X-Original-To, the
//!      top `for <...>`, To), the server id of an `Authentication-Results` field written
//!      *above* that hop (the receiving server stamps it there), or a known inbound MX or
//!      filter (OVHcloud's `mx*`, `in*`, `vr*`, `out*.mail.ovh.net`; Google, Microsoft 365,
//!      Yahoo, ...);
//!    - internal (kept, but the hand-over is never an internal hop: trailing internal hops
//!      go back to the sender);
//!    - any OVHcloud host, as long as the first public hop was one and no marker has been
//!      passed yet: an OVH-hosted recipient's own Exchange servers sit above OVH's inbound MX.
//!
//!   It stops at the relay (its host or registered domain), a host of the sender's own domain
//!   (From), an OVHcloud host below the recipient's entry, or any unknown host.
//! 3. The lowest hop kept is the hand-over. Its client is the last host on the sender's side,
//!    judged by the name its address resolves to (as the receiving server looked it up), else
//!    the name it gave (HELO), else the `by` host of the hop below.
//!
//! The verdict: that host is the relay (same host, or same registered domain: the last two
//! labels, three under a public suffix such as `co.uk`) → **through the relay** (exit 0); an
//! OVHcloud host or a host of the sender's own domain → **the platform's own server** (exit 1);
//! anything else → **another host** (exit 1). When the relay's registered domain is OVH's or
//! the sender's, only its exact host name counts. DKIM `d=`, `Return-Path` and
//! `Authentication-Results` are shown as supporting evidence; a passing DKIM signature of the
//! relay's domain decides only when no sending host is recorded at all. A relay name below
//! the hand-over (a forged `Received:` line, or the relay hop below the platform's own
//! outgoing hop) or in the From display name never counts.
//!
//! # Example
//!
//! The guide's sample, with `--smart-host smtp-relay.example.com`, top to bottom:
//!
//! ```text
//! Received: from localhost (HELO queue) (127.0.0.1) by localhost ...           recipient (internal)
//! Received: from unknown (HELO output28.mail.ovh.net) (192.168.11.93) by 192.168.1.2 ...
//! Received: from vr45.mail.ovh.net (...) by out28.mail.ovh.net ...             recipient (first public)
//! Received: from in31.mail.ovh.net (...) by vr45.mail.ovh.net ...              recipient (marker)
//! Authentication-Results: in31.mail.ovh.net; dkim=pass header.d=smtp.example.com
//! Received: from sender-id.example.com (sender-id.example.com [11.22.333.44])
//!     by in31.mail.ovh.net ...                                                 hand-over
//! Received: by smtp-relay.smtp.example.com ...                                 sender (the relay)
//! ```
//!
//! The walk stops at `smtp-relay.smtp.example.com` (the relay's domain), so the hand-over is
//! the `in31.mail.ovh.net` hop, whose client `sender-id.example.com` shares the relay's
//! registered domain `example.com`: through the relay. The recipient's OVH hops above it do
//! not make it "the platform".
//!
//! # Layout
//!
//! [`parse_header_block`], [`hops`], [`analyse`] and [`render`] are pure (no I/O); [`run`] is
//! the command line around them.
mod hosts;
mod manifests;
mod parse;
mod verdict;

pub use hosts::registered_domain;
pub use manifests::smart_host_from_manifests;
pub use parse::{
    Field, FromPart, HeaderBlock, Hop, InputError, hops, parse_header_block, parse_received,
};
pub use verdict::{Relay, RelayMatch, Report, Side, Verdict, analyse, render};

use clap::{ArgGroup, Args};
use std::io::Read;
use std::path::PathBuf;

/// Exit code of an input that cannot be used (unreadable header, unknown connector).
pub const EXIT_UNREADABLE: i32 = 2;

/// Flags of `verify-header`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("relay").required(true).args(["smart_host", "connector"])))]
#[command(
    after_help = "Exit codes: 0 = left through the relay, 1 = did not (the platform's own \
    outgoing server or another host), 2 = unreadable input.\n\
    --connector reads the SendConnector from manifests (-f), or else from the cluster of \
    KUBECONFIG (or ~/.kube/config, or in-cluster)."
)]
pub struct VerifyHeaderArgs {
    /// The received message's header block (or the whole message); stdin when omitted or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The relay to look for: a send connector's smart host.
    #[arg(long, value_name = "HOST", env = "SENDCONNECTOR_SMART_HOST")]
    pub smart_host: Option<String>,
    /// The SendConnector whose `spec.smartHost` is the relay, read from the manifests given
    /// with -f, or else from the cluster.
    #[arg(long, value_name = "NAMESPACE/NAME", env = "SENDCONNECTOR_CONNECTOR")]
    pub connector: Option<String>,
    /// Manifest file or directory (multi-document YAML) holding the SendConnector named by
    /// --connector.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "MANIFEST_FILE_OR_DIR",
        requires = "connector",
        env = "SENDCONNECTOR_FILENAME"
    )]
    pub manifests: Option<PathBuf>,
}

/// The relay named by the flags.
async fn relay_host(args: &VerifyHeaderArgs) -> Result<String, String> {
    if let Some(host) = &args.smart_host {
        return Ok(host.clone());
    }
    let connector = args.connector.as_deref().unwrap_or_default();
    let (namespace, name) = connector
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| {
            format!("--connector `{connector}` is not NAMESPACE/NAME (for example mail/newsletter-relay)")
        })?;
    match &args.manifests {
        Some(manifests) => smart_host_from_manifests(manifests, namespace, name),
        None => smart_host_from_cluster(namespace, name).await,
    }
}

/// `spec.smartHost` of a SendConnector in the cluster of `KUBECONFIG` (or in-cluster).
async fn smart_host_from_cluster(namespace: &str, name: &str) -> Result<String, String> {
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("--connector without -f reads the cluster, but there is no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}")
    })?;
    let api: kube::Api<crate::crd::SendConnector> = kube::Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(Some(connector)) => Ok(connector.spec.smart_host),
        Ok(None) => Err(format!(
            "SendConnector {namespace}/{name} not found in the cluster"
        )),
        Err(e) => Err(format!(
            "cannot read SendConnector {namespace}/{name} from the cluster: {e}"
        )),
    }
}

fn read_input(file: Option<&PathBuf>) -> Result<(String, Vec<u8>), String> {
    match file {
        Some(path) if path.as_os_str() != "-" => std::fs::read(path)
            .map(|bytes| (path.display().to_string(), bytes))
            .map_err(|e| format!("{}: {e}", path.display())),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(("stdin".to_owned(), bytes))
        }
    }
}

/// The command: prints the hops and the verdict, and returns the exit code (0 through the
/// relay, 1 not, 2 unreadable input, with a one-line error on stderr).
pub async fn run(args: &VerifyHeaderArgs) -> i32 {
    let relay = match relay_host(args).await.and_then(|host| Relay::new(&host)) {
        Ok(relay) => relay,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let (source, bytes) = match read_input(args.file.as_ref()) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let report = parse_header_block(&bytes).and_then(|block| analyse(&block, &relay));
    match report {
        Ok(report) => {
            print!("{}", render(&report));
            report.verdict.exit_code()
        }
        Err(e) => {
            eprintln!("error: {source}: {e}");
            EXIT_UNREADABLE
        }
    }
}
