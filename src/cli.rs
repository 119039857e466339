//! The command line: one binary, one subcommand per job. Every flag can also be set through
//! an environment variable named `SENDCONNECTOR_<FLAG>`.
use crate::controller::{ControllerConfig, LeaderElection};
use crate::ovh::{BudgetSettings, Credentials, CredentialsError};
use crate::telemetry::LogFormat;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "sendconnector-operator",
    version,
    about = "Keeps OVHcloud Exchange send connectors equal to Kubernetes resources"
)]
pub struct Cli {
    /// Log format: `plain` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "SENDCONNECTOR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level or filter directive (`info`, `debug`, `sendconnector_operator=debug`);
    /// `RUST_LOG` wins when set.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "SENDCONNECTOR_LOG_LEVEL"
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against a cluster (kubeconfig from KUBECONFIG or ~/.kube/config, or
    /// in-cluster).
    Run(RunArgs),
    /// Print both CRDs as YAML (the only source of `crds/crds.yaml`).
    Crds,
    /// Run a local simulator of the OVHcloud Exchange API (for tests, demos and pipelines).
    Simulator(crate::simulator_cli::SimulatorArgs),
    /// Run the controller without a cluster on the manifests of a directory, against the
    /// embedded OVH simulator (or `--ovh-endpoint`), and print where every resource ends up.
    ///
    /// Exit status: 0 when every resource is Ready, 1 when one is not (Stalled, or still in
    /// progress at `--timeout`) or on an error. With `--dry-run`, as `terraform plan
    /// -detailed-exitcode`: 0 when nothing would change, 2 when OVH calls are planned, 1 on
    /// an error (a bad manifest or flag, a resource Stalled or not planned in time).
    Local(crate::local::LocalArgs),
    /// Read a received message's header block (FILE or stdin) and say whether it left through
    /// a send connector's smart host or through the platform's own outgoing server.
    VerifyHeader(crate::verify_header::VerifyHeaderArgs),
}

/// Flags of `run`: the operator against a cluster.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated (one watch per namespace, so Roles there
    /// suffice); every namespace when omitted.
    #[arg(
        long,
        env = "SENDCONNECTOR_NAMESPACES",
        value_name = "NS,...",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_namespaces
    )]
    pub namespaces: NamespaceList,
    /// How often a converged resource is compared with OVH again (drift), before jitter.
    #[arg(
        long,
        env = "SENDCONNECTOR_RESYNC_INTERVAL",
        default_value = "10m",
        value_name = "DURATION",
        value_parser = parse_interval
    )]
    pub resync_interval: Duration,
    /// Sustained OVH requests per second, per set of credentials.
    #[arg(
        long,
        env = "SENDCONNECTOR_OVH_RATE",
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "PER_SECOND",
        value_parser = parse_rate
    )]
    pub ovh_rate: f64,
    /// OVH requests that may go at once after an idle period, per set of credentials.
    #[arg(
        long,
        env = "SENDCONNECTOR_OVH_BURST",
        allow_negative_numbers = true,
        default_value_t = 10,
        value_name = "REQUESTS",
        value_parser = parse_burst
    )]
    pub ovh_burst: u32,
    /// First poll of a running OVH task, this long after it started; later polls wait as
    /// long as the task has run so far, up to `--task-poll-max`.
    #[arg(
        long,
        env = "SENDCONNECTOR_TASK_POLL_INTERVAL",
        default_value = "1s",
        value_name = "DURATION",
        value_parser = parse_interval
    )]
    pub task_poll_interval: Duration,
    /// The longest wait between two polls of a running OVH task.
    #[arg(
        long,
        env = "SENDCONNECTOR_TASK_POLL_MAX",
        default_value = "30s",
        value_name = "DURATION",
        value_parser = parse_interval
    )]
    pub task_poll_max: Duration,
    /// The operator's default OVH credentials Secret, for resources without
    /// `spec.credentialsSecretRef` in the namespaces allowed to use it.
    #[arg(
        long,
        env = "SENDCONNECTOR_DEFAULT_CREDENTIALS_SECRET",
        value_name = "NAMESPACE/NAME",
        value_parser = parse_secret_ref
    )]
    pub default_credentials_secret: Option<SecretRef>,
    /// Namespaces whose resources may use the default credentials, comma-separated;
    /// `*` for all. None when omitted.
    #[arg(
        long,
        env = "SENDCONNECTOR_DEFAULT_CREDENTIALS_NAMESPACES",
        value_name = "NS,...",
        default_value = "",
        hide_default_value = true,
        value_parser = parse_namespaces_or_star
    )]
    pub default_credentials_namespaces: NamespaceList,
    /// Address of the HTTP server for metrics (`/metrics`) and health (`/healthz`,
    /// `/readyz`).
    #[arg(
        long,
        env = "SENDCONNECTOR_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDRESS:PORT",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,
    /// Reconcile only while holding a Lease, so that several replicas can run: one leads,
    /// the others stand by (ready, not reconciling).
    #[arg(
        long,
        env = "SENDCONNECTOR_LEADER_ELECTION",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = parse_bool
    )]
    pub leader_election: bool,
    /// Namespace of the leader election Lease; the operator's own namespace (`POD_NAMESPACE`)
    /// when omitted, else `default`.
    #[arg(
        long,
        env = "SENDCONNECTOR_LEADER_ELECTION_NAMESPACE",
        value_name = "NS",
        value_parser = parse_namespace
    )]
    pub leader_election_namespace: Option<String>,
    /// How long the Lease holds without renewal: the longest a crashed leader stays in
    /// charge before a standby takes over. Renewed every third of it.
    #[arg(
        long,
        env = "SENDCONNECTOR_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s",
        value_name = "DURATION",
        value_parser = parse_lease_duration
    )]
    pub leader_election_lease_duration: Duration,
    /// Plan only: read OVH and report in each resource's `status.plan` (and an Event) the
    /// calls that would be made; write nothing to OVH.
    #[arg(
        long,
        env = "SENDCONNECTOR_DRY_RUN",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = parse_bool
    )]
    pub dry_run: bool,
}

/// A comma-separated list of namespaces; an empty value (a variable set to "") is an empty
/// list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceList(pub Vec<String>);

/// A Secret named as `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The `OVH_*` environment variables the operator reads, and the credentials Secret key
/// each one stands for.
pub const OVH_ENV: [(&str, &str); 7] = [
    ("OVH_ENDPOINT", "endpoint"),
    ("OVH_APPLICATION_KEY", "applicationKey"),
    ("OVH_APPLICATION_SECRET", "applicationSecret"),
    ("OVH_CONSUMER_KEY", "consumerKey"),
    ("OVH_CLIENT_ID", "clientId"),
    ("OVH_CLIENT_SECRET", "clientSecret"),
    ("OVH_TOKEN_URL", "tokenUrl"),
];

impl RunArgs {
    /// The controller settings for these flags; `env` looks up environment variables (the
    /// `OVH_*` default credentials).
    pub fn controller_config(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ControllerConfig, String> {
        Ok(ControllerConfig {
            namespaces: self.namespaces.0.clone(),
            dry_run: self.dry_run,
            resync_interval: self.resync_interval,
            task_poll: self.task_poll_interval,
            task_poll_max: self.task_poll_max.max(self.task_poll_interval),
            budget: BudgetSettings {
                rate: self.ovh_rate,
                burst: self.ovh_burst,
            },
            default_credentials_secret: self
                .default_credentials_secret
                .as_ref()
                .map(|r| (r.namespace.clone(), r.name.clone())),
            default_credentials_namespaces: self.default_credentials_namespaces.0.clone(),
            default_credentials_env: env_credentials(&env)?,
            leader_election: self.leader_election.then(|| LeaderElection {
                namespace: self
                    .leader_election_namespace
                    .clone()
                    .unwrap_or_else(|| LeaderElection::default_namespace(&env)),
                ..LeaderElection::new(
                    String::new(),
                    LeaderElection::default_identity(&env),
                    self.leader_election_lease_duration,
                )
            }),
            ..ControllerConfig::default()
        })
    }
}

/// OVH credentials from the `OVH_*` environment variables: `None` when none is set, an
/// error naming the missing or conflicting variables (never a value) when the set is
/// incomplete.
pub fn env_credentials(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    let values: BTreeMap<String, String> = OVH_ENV
        .iter()
        .filter_map(|(var, key)| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| ((*key).to_owned(), v))
        })
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    Credentials::from_map(&values).map(Some).map_err(|e| {
        let mut message = match e {
            CredentialsError::Ambiguous => "OVH_* environment variables mix two methods: set either OVH_APPLICATION_KEY/OVH_APPLICATION_SECRET/OVH_CONSUMER_KEY or OVH_CLIENT_ID/OVH_CLIENT_SECRET".to_owned(),
            other => format!("OVH_* environment variables: {other}"),
        };
        // Speak of the variables, not of the Secret keys they stand for.
        for (var, key) in OVH_ENV {
            message = replace_word(&message, key, var);
        }
        message
    })
}

/// Replaces whole-word occurrences of `word`.
fn replace_word(text: &str, word: &str, by: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        out.push_str(&rest[..at]);
        if boundary(before) && boundary(after) {
            out.push_str(by);
        } else {
            out.push_str(word);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// A Kubernetes namespace name (an RFC 1123 label).
fn parse_namespace(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty namespace name (remove the extra comma)".into());
    }
    let valid = s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
        ))
    }
}

fn parse_namespace_or_star(s: &str) -> Result<String, String> {
    if s.trim() == "*" {
        Ok("*".into())
    } else {
        parse_namespace(s)
    }
}

fn parse_list(
    s: &str,
    item: impl Fn(&str) -> Result<String, String>,
) -> Result<NamespaceList, String> {
    if s.trim().is_empty() {
        return Ok(NamespaceList::default());
    }
    s.split(',')
        .map(item)
        .collect::<Result<_, _>>()
        .map(NamespaceList)
}

fn parse_namespaces(s: &str) -> Result<NamespaceList, String> {
    parse_list(s, parse_namespace)
}

fn parse_namespaces_or_star(s: &str) -> Result<NamespaceList, String> {
    parse_list(s, parse_namespace_or_star)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration such as 90s or 10m: {e}"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an address and port such as 0.0.0.0:8080 or [::]:8080"))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); empty (a variable set to "") is
/// `false`.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_interval(s)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of requests per second such as 0.8"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!(
            "must be more than zero requests per second (got {s})"
        ));
    }
    Ok(rate)
}

fn parse_burst(s: &str) -> Result<u32, String> {
    let burst: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of requests such as 10"))?;
    if burst == 0 {
        return Err("must be at least 1 request".into());
    }
    Ok(burst)
}

fn parse_secret_ref(s: &str) -> Result<SecretRef, String> {
    let usage = || format!("`{s}` is not NAMESPACE/NAME (for example operators/ovh-api)");
    let (namespace, name) = s.trim().split_once('/').ok_or_else(usage)?;
    let namespace = parse_namespace(namespace).map_err(|e| format!("{}: {e}", usage()))?;
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_name {
        return Err(format!("{}: `{name}` is not a Secret name", usage()));
    }
    Ok(SecretRef {
        namespace,
        name: name.to_owned(),
    })
}

/// The subcommand a command line names (its first word that is neither a flag nor the value
/// of a global flag), even when the line does not parse.
pub fn subcommand(args: impl IntoIterator<Item = String>) -> Option<String> {
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--log-format" | "--log-level" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            word => return Some(word.to_owned()),
        }
    }
    None
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut command_line = vec!["sendconnector-operator", "run"];
        command_line.extend_from_slice(args);
        Cli::try_parse_from(command_line).map(|cli| match cli.command {
            Command::Run(args) => args,
            other => panic!("parsed as {other:?}"),
        })
    }

    fn error(args: &[&str]) -> String {
        run_args(args).unwrap_err().to_string()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_follow_the_contract() {
        // Only meaningful when the SENDCONNECTOR_* variables are unset, as they are in CI.
        if std::env::vars().any(|(k, _)| k.starts_with("SENDCONNECTOR_")) {
            return;
        }
        let args = run_args(&[]).unwrap();
        assert!(args.namespaces.0.is_empty());
        assert_eq!(args.resync_interval, Duration::from_secs(600));
        assert!((args.ovh_rate - 0.8).abs() < f64::EPSILON);
        assert_eq!(args.ovh_burst, 10);
        assert_eq!(args.default_credentials_secret, None);
        assert!(args.default_credentials_namespaces.0.is_empty());
        let config = args.controller_config(no_env).unwrap();
        assert!(config.namespaces.is_empty());
        assert!(config.default_credentials_env.is_none());
        assert_eq!(config.budget.burst, 10);
    }

    #[test]
    fn listen_and_leader_election() {
        if std::env::vars().any(|(k, _)| k.starts_with("SENDCONNECTOR_")) {
            return;
        }
        let args = run_args(&[]).unwrap();
        assert_eq!(args.listen, "0.0.0.0:8080".parse().unwrap());
        assert!(!args.leader_election);
        assert_eq!(args.leader_election_lease_duration, Duration::from_secs(15));
        assert!(
            args.controller_config(no_env)
                .unwrap()
                .leader_election
                .is_none()
        );

        let pod = |var: &str| match var {
            "POD_NAME" => Some("operator-5d8f-abcde".to_owned()),
            "POD_NAMESPACE" => Some("operators".to_owned()),
            _ => None,
        };
        let args = run_args(&["--listen", "127.0.0.1:9090", "--leader-election"]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:9090".parse().unwrap());
        let election = args
            .controller_config(pod)
            .unwrap()
            .leader_election
            .unwrap();
        assert_eq!(election.namespace, "operators");
        assert_eq!(election.identity, "operator-5d8f-abcde");
        assert_eq!(election.lease_name, "sendconnector-operator");
        assert_eq!(election.lease_duration, Duration::from_secs(15));
        let election = args
            .controller_config(no_env)
            .unwrap()
            .leader_election
            .unwrap();
        assert_eq!(election.namespace, "default");

        let args = run_args(&[
            "--leader-election=true",
            "--leader-election-namespace",
            "ops",
            "--leader-election-lease-duration",
            "30s",
        ])
        .unwrap();
        let election = args
            .controller_config(pod)
            .unwrap()
            .leader_election
            .unwrap();
        assert_eq!(election.namespace, "ops");
        assert_eq!(election.lease_duration, Duration::from_secs(30));
        assert!(
            !run_args(&["--leader-election=false"])
                .unwrap()
                .leader_election
        );
    }

    #[test]
    fn every_flag_parses() {
        let args = run_args(&[
            "--namespaces",
            "mail,team-b",
            "--resync-interval",
            "90s",
            "--ovh-rate",
            "2.5",
            "--ovh-burst",
            "3",
            "--default-credentials-secret",
            "operators/ovh-api",
            "--default-credentials-namespaces",
            "mail,*",
            "--log-format",
            "json",
            "--task-poll-interval",
            "500ms",
            "--task-poll-max",
            "20s",
        ])
        .unwrap();
        assert_eq!(args.namespaces.0, ["mail", "team-b"]);
        assert_eq!(args.resync_interval, Duration::from_secs(90));
        assert_eq!(args.ovh_burst, 3);
        assert_eq!(
            args.default_credentials_secret,
            Some(SecretRef {
                namespace: "operators".into(),
                name: "ovh-api".into()
            })
        );
        assert_eq!(args.default_credentials_namespaces.0, ["mail", "*"]);
        let config = args.controller_config(no_env).unwrap();
        assert_eq!(config.namespaces, ["mail", "team-b"]);
        assert_eq!(config.resync_interval, Duration::from_secs(90));
        assert!((config.budget.rate - 2.5).abs() < f64::EPSILON);
        assert_eq!(
            config.default_credentials_secret,
            Some(("operators".into(), "ovh-api".into()))
        );
        assert!(config.may_use_default_credentials("anything"));
        assert_eq!(config.task_poll, Duration::from_millis(500));
        assert_eq!(config.task_poll_max, Duration::from_secs(20));
    }

    #[test]
    fn a_task_is_polled_as_often_as_its_age_allows() {
        let config = run_args(&[]).unwrap().controller_config(no_env).unwrap();
        assert_eq!(config.task_poll, Duration::from_secs(1));
        let after = |secs: u64| config.task_poll_after(Duration::from_secs(secs));
        // A task just started is looked at after the first interval, then after as long as
        // it has run, never longer than the cap.
        assert_eq!(after(0), Duration::from_secs(1));
        assert_eq!(after(3), Duration::from_secs(3));
        assert_eq!(after(600), Duration::from_secs(30));
        // A cap below the first interval is the first interval.
        let odd = run_args(&["--task-poll-interval", "10s", "--task-poll-max", "2s"])
            .unwrap()
            .controller_config(no_env)
            .unwrap();
        assert_eq!(odd.task_poll_after(Duration::ZERO), Duration::from_secs(10));
    }

    #[test]
    fn an_empty_list_means_none_given() {
        let args =
            run_args(&["--namespaces", "", "--default-credentials-namespaces", " "]).unwrap();
        assert!(args.namespaces.0.is_empty());
        assert!(args.default_credentials_namespaces.0.is_empty());
        let args = run_args(&["--namespaces", " mail , team-b "]).unwrap();
        assert_eq!(args.namespaces.0, ["mail", "team-b"]);
    }

    #[test]
    fn humantime_durations() {
        for (text, secs) in [("10m", 600), ("1h 30m", 5400), ("45s", 45), ("2min", 120)] {
            let args = run_args(&["--resync-interval", text]).unwrap();
            assert_eq!(args.resync_interval, Duration::from_secs(secs), "{text}");
        }
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        for (args, expected) in [
            (&["--ovh-rate", "0"][..], "must be more than zero"),
            (&["--ovh-rate", "-1"], "must be more than zero"),
            (
                &["--ovh-rate", "fast"],
                "not a number of requests per second",
            ),
            (&["--ovh-rate", "inf"], "must be more than zero"),
            (&["--ovh-burst", "0"], "must be at least 1"),
            (&["--ovh-burst", "-2"], "not a whole number"),
            (&["--resync-interval", "0s"], "longer than zero"),
            (&["--resync-interval", "soon"], "not a duration such as 90s"),
            (&["--resync-interval", "600"], "not a duration such as 90s"),
            (
                &["--default-credentials-secret", "ovh-api"],
                "is not NAMESPACE/NAME",
            ),
            (
                &["--default-credentials-secret", "ops/"],
                "is not a Secret name",
            ),
            (
                &["--default-credentials-secret", "Ops/ovh"],
                "is not a namespace name",
            ),
            (&["--namespaces", "a,,b"], "empty namespace name"),
            (&["--namespaces", "Mail"], "is not a namespace name"),
            (
                &["--default-credentials-namespaces", "a,b_c"],
                "is not a namespace name",
            ),
            (&["--listen", "localhost"], "not an address and port"),
            (&["--leader-election", "maybe"], "not true or false"),
            (
                &["--leader-election-lease-duration", "500ms"],
                "at least 1s",
            ),
            (
                &["--leader-election-namespace", "Ops"],
                "is not a namespace name",
            ),
            (&["--dry-run", "maybe"], "not true or false"),
        ] {
            let message = error(args);
            assert!(message.contains(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn environment_credentials() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(env_credentials(env(&[])), Ok(None));
        assert_eq!(env_credentials(env(&[("OVH_ENDPOINT", "  ")])), Ok(None));
        let creds = env_credentials(env(&[
            ("OVH_ENDPOINT", "ovh-ca"),
            ("OVH_APPLICATION_KEY", "ak"),
            ("OVH_APPLICATION_SECRET", "s3cr3t-as"),
            ("OVH_CONSUMER_KEY", "s3cr3t-ck"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(creds.endpoint.base().as_str(), "https://ca.api.ovh.com/1.0");
        assert!(
            env_credentials(env(&[
                ("OVH_CLIENT_ID", "id"),
                ("OVH_CLIENT_SECRET", "s3cr3t")
            ]))
            .unwrap()
            .is_some()
        );

        let message = env_credentials(env(&[
            ("OVH_APPLICATION_KEY", "ak"),
            ("OVH_CONSUMER_KEY", "s3cr3t-ck"),
        ]))
        .unwrap_err();
        assert!(
            message.contains("missing OVH_APPLICATION_SECRET"),
            "{message}"
        );
        assert!(!message.contains("s3cr3t"), "{message}");
        let message = env_credentials(env(&[("OVH_ENDPOINT", "ovh-eu")])).unwrap_err();
        assert!(message.contains("OVH_APPLICATION_KEY"), "{message}");
        assert!(message.contains("OVH_CLIENT_ID"), "{message}");
        let message = env_credentials(env(&[
            ("OVH_APPLICATION_KEY", "ak"),
            ("OVH_CLIENT_SECRET", "s3cr3t"),
        ]))
        .unwrap_err();
        assert!(message.contains("mix two methods"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");

        let args = run_args(&[]).unwrap();
        let message = args
            .controller_config(env(&[("OVH_CLIENT_ID", "id")]))
            .unwrap_err();
        assert!(message.contains("missing OVH_CLIENT_SECRET"), "{message}");
    }

    #[test]
    fn local_needs_a_directory_unless_it_serves_without_a_controller() {
        let local = |args: &[&str]| {
            let mut command_line = vec!["sendconnector-operator", "local"];
            command_line.extend_from_slice(args);
            Cli::try_parse_from(command_line).map(|cli| match cli.command {
                Command::Local(args) => args,
                other => panic!("parsed as {other:?}"),
            })
        };
        let serve = ["--serve", "127.0.0.1:0", "--kubeconfig-out", "k"];
        let args = local(&[&serve[..], &["--no-controller"]].concat()).unwrap();
        assert!(args.no_controller && args.dir.is_none());
        assert_eq!(
            local(&["-f", "examples"]).unwrap().dir.unwrap().to_str(),
            Some("examples")
        );
        for (args, expected) in [
            (&[][..], "--filename <DIR>"),
            (&serve[..], "--filename <DIR>"),
            (&["--no-controller"][..], "--serve <ADDR>"),
            (
                &[&serve[..], &["--no-controller", "--dry-run"]].concat()[..],
                "cannot be used with",
            ),
        ] {
            let message = local(args).unwrap_err().to_string();
            assert!(message.contains(expected), "{args:?}: {message}");
        }
    }

    #[test]
    fn the_subcommand_of_a_command_line() {
        let of = |line: &str| subcommand(line.split(' ').map(str::to_owned));
        assert_eq!(of("bin local -f x").as_deref(), Some("local"));
        assert_eq!(of("bin --log-format json local").as_deref(), Some("local"));
        assert_eq!(of("bin --log-level=debug run").as_deref(), Some("run"));
        assert_eq!(of("bin --verbose"), None);
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(
            replace_word("missing clientId, clientIdX", "clientId", "OVH_CLIENT_ID"),
            "missing OVH_CLIENT_ID, clientIdX"
        );
    }
}
