//! `sendconnector-operator local`: the real controller without a cluster. An embedded
//! Kubernetes API takes the manifests of a directory, the same controller as `run` reconciles
//! them against the embedded OVH simulator (or an OVH endpoint named on the command line), and
//! the outcome is printed as tables once every resource is Ready or Stalled.
mod manifests;
mod report;

pub use manifests::{Manifests, load};
pub use report::{Outcome, outcome};

use crate::controller::{self, ControllerConfig};
use crate::crd::{self, MailboxBinding, SendConnector};
use crate::ovh::{BudgetSettings, Credentials, Endpoint};
use anyhow::Context as _;
use base64::Engine;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use memory_apiserver::ApiServer;
use ovh_simulator::{RunningSimulator, Seed, Simulator, SimulatorConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed used when neither `--simulator-seed` nor the directory gives one: the example
/// platform of `examples/`.
const DEFAULT_SEED: &str = include_str!("../../simulator/seed.yaml");

#[derive(clap::Args, Debug, Clone)]
pub struct LocalArgs {
    /// Directory (or file) of manifests: Namespaces, Secrets, SendConnectors and
    /// MailboxBindings, multi-document YAML or JSON. A simulator seed among them is used as the
    /// simulator's seed. Optional with `--no-controller`.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "DIR",
        required_unless_present = "no_controller"
    )]
    pub dir: Option<PathBuf>,
    /// Give up waiting after this long (`90s`, `5m`).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, env = "SENDCONNECTOR_TIMEOUT")]
    pub timeout: Duration,
    /// Keep the embedded cluster's objects (with their status) and the simulator's objects in
    /// this directory between runs, the way a cluster and OVH would.
    #[arg(long, value_name = "DIR", env = "SENDCONNECTOR_STATE")]
    pub state: Option<PathBuf>,
    /// `simulator` (the embedded OVH simulator), or a real endpoint: `ovh-eu`, `ovh-ca`,
    /// `ovh-us` or a URL. Every OVH request goes there, whatever endpoint a Secret (from DIR or
    /// applied later through `--serve`) or `OVH_ENDPOINT` names: only this flag ever sends
    /// `local` to a real OVH endpoint.
    #[arg(long, default_value = "simulator", env = "SENDCONNECTOR_OVH_ENDPOINT")]
    pub ovh_endpoint: String,
    /// Seed of the embedded simulator (default: a seed file in the directory, else the
    /// example platform).
    #[arg(long, value_name = "FILE", env = "SENDCONNECTOR_SIMULATOR_SEED")]
    pub simulator_seed: Option<PathBuf>,
    /// Plan only: read OVH and print the calls that would be made, write nothing to OVH.
    /// Exit status 0 when nothing would change, 2 when calls are planned, 1 on an error.
    #[arg(long, env = "SENDCONNECTOR_DRY_RUN")]
    pub dry_run: bool,
    /// After convergence, keep running until Ctrl-C or SIGTERM and serve the embedded
    /// Kubernetes API on this address (for `kubectl`). Its own controller keeps reconciling
    /// what is applied there: point no other controller (`run`) at it, or use
    /// `--no-controller`.
    #[arg(
        long,
        value_name = "ADDR",
        requires = "kubeconfig_out",
        env = "SENDCONNECTOR_SERVE"
    )]
    pub serve: Option<SocketAddr>,
    /// With `--serve`: write a kubeconfig for the served API to this file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "serve",
        env = "SENDCONNECTOR_KUBECONFIG_OUT"
    )]
    pub kubeconfig_out: Option<PathBuf>,
    /// With `--serve`: serve the embedded Kubernetes API alone (CRDs installed, the manifests
    /// of `-f` applied if given) and run no controller, so that `run` (or any other
    /// controller) pointed at the kubeconfig is the only writer. The embedded OVH simulator
    /// is still served; its URL is printed, for a credentials Secret's `endpoint`.
    #[arg(
        long,
        requires = "serve",
        conflicts_with = "dry_run",
        env = "SENDCONNECTOR_NO_CONTROLLER"
    )]
    pub no_controller: bool,
    /// Address of the embedded OVH simulator (its API under `http://ADDR/1.0`); any free
    /// loopback port by default.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:0",
        env = "SENDCONNECTOR_SIMULATOR_LISTEN"
    )]
    pub simulator_listen: SocketAddr,
}

/// The OVH side of a local run.
enum Ovh {
    Simulator(RunningSimulator),
    Real(Endpoint),
}

impl Ovh {
    /// Where every OVH request of this run goes.
    fn endpoint(&self) -> anyhow::Result<Endpoint> {
        match self {
            Self::Simulator(sim) => Ok(Endpoint::parse(&sim.base_url(), None)?),
            Self::Real(e) => Ok(e.clone()),
        }
    }
}

fn secret_strings(secret: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(data) = secret["data"].as_object() {
        for (k, v) in data {
            if let Some(decoded) = v
                .as_str()
                .and_then(|s| b64.decode(s).ok())
                .and_then(|b| String::from_utf8(b).ok())
            {
                out.insert(k.clone(), decoded);
            }
        }
    }
    if let Some(data) = secret["stringData"].as_object() {
        for (k, v) in data {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_owned());
            }
        }
    }
    out
}

/// Credentials Secrets: those a SendConnector names, and any holding OVH keys.
fn is_credentials(secret: &Value, connectors: &[&Value]) -> bool {
    let (ns, name) = (
        &secret["metadata"]["namespace"],
        &secret["metadata"]["name"],
    );
    let named = connectors.iter().any(|c| {
        c["metadata"]["namespace"] == *ns && c["spec"]["credentialsSecretRef"]["name"] == *name
    });
    let data = secret_strings(secret);
    named || data.contains_key("applicationKey") || data.contains_key("clientId")
}

/// The simulator's seed: the given one, plus every credential the manifests hold (so any
/// credentials work against the embedded simulator), plus, when no seed was given at all, the
/// services, mailboxes and domains the manifests name.
fn simulator_seed(args: &LocalArgs, manifests: &Manifests) -> anyhow::Result<Seed> {
    let mut seed = match (&args.simulator_seed, &manifests.seed) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Seed::from_yaml(&text)?
        }
        (None, Some((_, seed))) => seed.clone(),
        (None, None) => Seed::from_yaml(DEFAULT_SEED)?,
    };
    let connectors: Vec<&Value> = manifests
        .objects
        .iter()
        .filter(|o| o["kind"] == "SendConnector")
        .collect();
    for secret in manifests
        .objects
        .iter()
        .filter(|o| o["kind"] == "Secret" && is_credentials(o, &connectors))
    {
        let data = secret_strings(secret);
        let credential = if data.contains_key("clientId") {
            json!({"clientId": data.get("clientId"), "clientSecret": data.get("clientSecret")})
        } else {
            json!({"applicationKey": data.get("applicationKey"), "applicationSecret": data.get("applicationSecret"), "consumerKey": data.get("consumerKey")})
        };
        if let Ok(c) = serde_json::from_value(credential) {
            seed.credentials.push(c);
        }
    }
    Ok(seed)
}

fn resource_of(object: &Value) -> Option<ApiResource> {
    let (group, version) = match object["apiVersion"].as_str()?.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), object["apiVersion"].as_str()?.to_owned()),
    };
    let kind = object["kind"].as_str()?;
    let plural = match kind {
        "Namespace" => "namespaces",
        "Secret" => "secrets",
        "SendConnector" => "sendconnectors",
        "MailboxBinding" => "mailboxbindings",
        _ => return None,
    };
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, &version, kind),
        plural,
    ))
}

/// The merge patch that turns `stored` into `wanted`: `wanted`'s values, and `null` for every
/// key of `stored` that `wanted` lacks, object by object (a list is replaced whole).
fn merge_patch_to(stored: &Value, wanted: &Value) -> Value {
    let (Value::Object(stored), Value::Object(wanted_map)) = (stored, wanted) else {
        return wanted.clone();
    };
    let mut patch = serde_json::Map::new();
    for (key, value) in wanted_map {
        let entry = match stored.get(key) {
            Some(old) if old.is_object() && value.is_object() => merge_patch_to(old, value),
            _ => value.clone(),
        };
        patch.insert(key.clone(), entry);
    }
    for key in stored.keys() {
        if !wanted_map.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    Value::Object(patch)
}

/// Creates the object, or brings an existing one (from `--state`) to the manifest's spec,
/// data, labels and annotations. An unchanged object is not written at all.
async fn apply(client: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let resource = resource_of(object).context("unsupported kind")?;
    let name = object["metadata"]["name"]
        .as_str()
        .context("a manifest without metadata.name")?;
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let api: Api<DynamicObject> = if object["kind"] == "Namespace" {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    let mut body = object.clone();
    if object["kind"] != "Namespace" {
        body["metadata"]["namespace"] = json!(namespace);
    }
    let existing = api.get_opt(name).await?;
    let Some(existing) = existing else {
        // As `kubectl apply` does: a field the schema does not know fails the create.
        let request = http::Request::post(format!("{}?fieldValidation=Strict", api.resource_url()))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body)?)?;
        client
            .request::<DynamicObject>(request)
            .await
            .with_context(|| format!("creating {} {namespace}/{name}", object["kind"]))?;
        return Ok(());
    };
    // A merge patch of what the manifest says, a field it no longer has removed (as
    // `kubectl apply` removes what it applied before); the server keeps the object as
    // it is (same resourceVersion, no event) when nothing differs, defaults included.
    let existing = serde_json::to_value(&existing)?;
    let mut patch = json!({"metadata": {"labels": body["metadata"]["labels"], "annotations": body["metadata"]["annotations"]}});
    for key in ["spec", "stringData", "data", "type"] {
        if !body[key].is_null() {
            patch[key] = body[key].clone();
        }
    }
    if !body["spec"].is_null() {
        patch["spec"] = merge_patch_to(&existing["spec"], &body["spec"]);
    }
    if patch["stringData"].is_object() {
        // Compare as data, so an unchanged Secret stays unchanged.
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: BTreeMap<String, String> = secret_strings(&body)
            .into_iter()
            .map(|(k, v)| (k, b64.encode(v)))
            .collect();
        patch["data"] = json!(data);
        patch.as_object_mut().map(|p| p.remove("stringData"));
    }
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::default()
    };
    api.patch(name, &strict, &Patch::Merge(&patch))
        .await
        .with_context(|| format!("updating {} {namespace}/{name}", object["kind"]))?;
    Ok(())
}

fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sendconnector-local\n  cluster:\n    server: http://{addr}\nusers:\n- name: sendconnector-local\n  user: {{}}\ncontexts:\n- name: sendconnector-local\n  context:\n    cluster: sendconnector-local\n    user: sendconnector-local\n    namespace: default\ncurrent-context: sendconnector-local\n"
    )
}

fn state_file(state: Option<&Path>, name: &str) -> Option<PathBuf> {
    state.map(|d| d.join(name))
}

/// The embedded Kubernetes API over HTTP, with a kubeconfig for it, until Ctrl-C or SIGTERM.
async fn serve(
    k8s: &ApiServer,
    addr: SocketAddr,
    kubeconfig_out: &Path,
    ovh: &Ovh,
    with_controller: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr()?;
    if let Ovh::Simulator(sim) = ovh {
        eprintln!(
            "serving the OVH simulator on {} (a credentials Secret's endpoint; admin API under http://{}/_simulator/)",
            sim.base_url(),
            sim.addr()
        );
    }
    std::fs::write(kubeconfig_out, kubeconfig(bound))
        .with_context(|| format!("writing {}", kubeconfig_out.display()))?;
    let who = if with_controller {
        "local's controller reconciles what is applied there"
    } else {
        "no controller: start one (sendconnector-operator run) with this kubeconfig"
    };
    eprintln!(
        "serving the embedded Kubernetes API on http://{bound} (kubeconfig: {}); {who}; Ctrl-C stops",
        kubeconfig_out.display()
    );
    let server = k8s.clone();
    tokio::select! {
        result = server.serve(listener) => result?,
        () = crate::cli::shutdown_signal() => {}
    }
    Ok(())
}

/// Saves the cluster with `--state`, then tells what the simulator received.
fn finish(args: &LocalArgs, k8s: &ApiServer, ovh: &Ovh) -> anyhow::Result<()> {
    if let Some(path) = state_file(args.state.as_deref(), "cluster.json") {
        std::fs::write(&path, serde_json::to_vec_pretty(&k8s.snapshot())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Ovh::Simulator(sim) = ovh {
        let writes: Vec<String> = sim
            .sim()
            .counters()
            .into_iter()
            .filter(|(route, _)| !route.starts_with("GET ") && !route.contains("/auth/"))
            .map(|(route, n)| format!("  {n} {route}"))
            .collect();
        eprintln!(
            "OVH simulator: {} write(s){}",
            sim.sim().write_count(),
            if writes.is_empty() {
                String::new()
            } else {
                format!("\n{}", writes.join("\n"))
            }
        );
    }
    Ok(())
}

/// How a run of `local` ended: its exit status, as `terraform plan -detailed-exitcode` for a
/// dry run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every resource is Ready; with `--dry-run`, nothing would change. Status 0.
    Ready,
    /// A resource is not Ready: Stalled, still in progress at `--timeout`, or (`--dry-run`)
    /// not made Ready by the planned calls. Status 1, as for any error.
    NotReady,
    /// `--dry-run`: OVH calls are planned. Status 2.
    Planned,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Self::Ready => 0,
            Self::NotReady => 1,
            Self::Planned => 2,
        }
    }
}

/// Whether a resource's `status.plan` holds calls.
fn has_calls(object: &Value) -> bool {
    object["status"]["plan"]
        .as_array()
        .is_some_and(|p| !p.is_empty())
}

/// The exit of a run whose resources ended as `objects`.
fn exit_of(objects: &[&Value], dry_run: bool) -> Exit {
    let mut planned = false;
    for o in objects {
        match outcome(o) {
            Outcome::Ready => {}
            Outcome::Planned if dry_run && has_calls(o) => planned = true,
            Outcome::Planned | Outcome::Stalled | Outcome::Pending => return Exit::NotReady,
        }
    }
    if planned { Exit::Planned } else { Exit::Ready }
}

/// With `--dry-run`, a binding's plan holds once it was made against its connector's current
/// id (the connector's own reconcile may give it one after the binding planned).
fn bindings_agree(connectors: &[Value], bindings: &[Value]) -> bool {
    bindings.iter().all(|b| {
        !matches!(outcome(b), Outcome::Planned | Outcome::Ready)
            || connectors
                .iter()
                .find(|c| {
                    c["metadata"]["namespace"] == b["metadata"]["namespace"]
                        && c["metadata"]["name"] == b["spec"]["connectorRef"]["name"]
                })
                .is_none_or(|c| c["status"]["connectorId"] == b["status"]["connectorId"])
    })
}

/// Runs `local`; says how it ended.
pub async fn run(args: LocalArgs) -> anyhow::Result<Exit> {
    let manifests = match &args.dir {
        Some(dir) => load(dir)?,
        None => Manifests::default(),
    };
    for skipped in &manifests.skipped {
        eprintln!("skipped {skipped}");
    }
    if let Some(dir) = &args.state {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let k8s = ApiServer::new();
    for c in crd::crds() {
        k8s.register_crd(&c);
    }
    if let Some(path) = state_file(args.state.as_deref(), "cluster.json").filter(|p| p.exists()) {
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        let n = k8s
            .restore(&saved)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        eprintln!("loaded {n} objects from {}", path.display());
    }

    let ovh = if args.ovh_endpoint == "simulator" {
        let config = SimulatorConfig {
            seed: simulator_seed(&args, &manifests)?,
            state_file: state_file(args.state.as_deref(), "ovh.json"),
            ..SimulatorConfig::default()
        };
        Ovh::Simulator(
            Simulator::start(config, args.simulator_listen)
                .await
                .with_context(|| {
                    format!("starting the OVH simulator on {}", args.simulator_listen)
                })?,
        )
    } else {
        Ovh::Real(Endpoint::parse(&args.ovh_endpoint, None)?)
    };

    let client = k8s.client();
    for object in &manifests.objects {
        apply(&client, object).await?;
    }

    if args.no_controller {
        if let (Some(addr), Some(out)) = (args.serve, &args.kubeconfig_out) {
            serve(&k8s, addr, out, &ovh, false).await?;
        }
        finish(&args, &k8s, &ovh)?;
        return Ok(Exit::Ready);
    }

    // Every OVH request of the controller goes to this run's endpoint, whatever endpoint a
    // credentials Secret (from DIR or applied later through `--serve`) or `OVH_ENDPOINT` names.
    let mut config = ControllerConfig {
        resync_interval: Duration::from_secs(600),
        dry_run: args.dry_run,
        endpoint_override: Some(ovh.endpoint()?),
        ..ControllerConfig::default()
    };
    match &ovh {
        Ovh::Simulator(_) => {
            // The simulator has no fair-use limit and fast tasks: poll it often.
            config.budget = BudgetSettings {
                rate: 50.0,
                burst: 50,
            };
            config.task_poll = Duration::from_millis(250);
            config.task_poll_max = Duration::from_millis(500);
        }
        Ovh::Real(_) => {
            if std::env::vars().any(|(k, _)| k.starts_with("OVH_")) {
                config.default_credentials_env = Some(Credentials::from_env()?);
                config.default_credentials_namespaces = vec!["*".into()];
            }
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(client.clone(), config, async move {
        let _ = stop_rx.await;
    }));

    let sc = ApiResource::erase::<SendConnector>(&());
    let mb = ApiResource::erase::<MailboxBinding>(&());
    let deadline = tokio::time::Instant::now() + args.timeout;
    let (connectors, bindings) = loop {
        let connectors = k8s.list_objects(&sc, None);
        let bindings = k8s.list_objects(&mb, None);
        let settled = connectors
            .iter()
            .chain(&bindings)
            .all(|o| outcome(o) != Outcome::Pending)
            && (!args.dry_run || bindings_agree(&connectors, &bindings));
        if settled || tokio::time::Instant::now() >= deadline || controller.is_finished() {
            break (connectors, bindings);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{}\n", report::connectors(&connectors));
    println!("{}", report::bindings(&bindings));
    if args.dry_run {
        let all: Vec<Value> = connectors.iter().chain(&bindings).cloned().collect();
        println!(
            "\nPlanned OVH calls (dry run: nothing was written):\n{}",
            report::plans(&all)
        );
    }
    let all: Vec<&Value> = connectors.iter().chain(&bindings).collect();
    let exit = exit_of(&all, args.dry_run);
    for o in all
        .iter()
        .filter(|o| args.dry_run && outcome(o) == Outcome::Planned && !has_calls(o))
    {
        eprintln!(
            "{} {}/{}: no OVH call planned, yet not Ready",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        );
    }
    let pending = connectors
        .iter()
        .chain(&bindings)
        .filter(|o| outcome(o) == Outcome::Pending)
        .count();
    if pending > 0 {
        eprintln!(
            "gave up after {}: {pending} resource(s) still in progress",
            humantime::format_duration(args.timeout)
        );
    }

    if let (Some(addr), Some(out)) = (args.serve, &args.kubeconfig_out) {
        serve(&k8s, addr, out, &ovh, true).await?;
    }

    let _ = stop_tx.send(());
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(30), controller)
        .await
        .unwrap_or(Ok(Ok(())))
    {
        eprintln!("controller stopped with an error: {e}");
    }
    finish(&args, &k8s, &ovh)?;
    drop(ovh);
    Ok(exit)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_field_left_out_of_the_next_manifest_is_removed() {
        let stored = json!({"port": 587, "service": "s", "authentication": {"mechanism": "basicAuth", "user": "u"}, "mailboxes": ["a", "b"]});
        let wanted =
            json!({"port": 25, "authentication": {"mechanism": "none"}, "mailboxes": ["a"]});
        assert_eq!(
            merge_patch_to(&stored, &wanted),
            json!({"port": 25, "service": null, "authentication": {"mechanism": "none", "user": null}, "mailboxes": ["a"]})
        );
    }

    use super::*;

    fn resource(kind: &str, reason: &str, id: Option<i64>, plan: usize) -> Value {
        let status = if reason == "Ready" { "True" } else { "False" };
        json!({
            "kind": kind,
            "metadata": {"name": if kind == "SendConnector" { "relay" } else { "team" }, "namespace": "mail", "generation": 1},
            "spec": {"connectorRef": {"name": "relay"}},
            "status": {
                "connectorId": id,
                "plan": vec![json!({"method": "PUT"}); plan],
                "conditions": [{"type": "Ready", "status": status, "reason": reason, "observedGeneration": 1}],
            },
        })
    }

    #[test]
    fn exit_codes_of_a_dry_run() {
        let ready = resource("SendConnector", "Ready", Some(29), 0);
        let planned = resource("MailboxBinding", "DryRun", Some(29), 2);
        let unplanned = resource("MailboxBinding", "DryRun", Some(29), 0);
        let stalled = resource("MailboxBinding", "Conflict", Some(29), 0);
        assert_eq!(exit_of(&[&ready], true), Exit::Ready);
        assert_eq!(exit_of(&[&ready, &planned], true), Exit::Planned);
        assert_eq!(exit_of(&[&ready, &unplanned], true), Exit::NotReady);
        assert_eq!(exit_of(&[&planned, &stalled], true), Exit::NotReady);
        assert_eq!(exit_of(&[&planned], false), Exit::NotReady);
        assert_eq!(exit_of(&[], true), Exit::Ready);
        assert_eq!(
            [Exit::Ready, Exit::NotReady, Exit::Planned].map(Exit::code),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_binding_planned_before_its_connector_had_an_id_is_not_settled() {
        let connector = resource("SendConnector", "DryRun", Some(29), 1);
        let early = resource("MailboxBinding", "DryRun", None, 2);
        let current = resource("MailboxBinding", "DryRun", Some(29), 2);
        assert!(!bindings_agree(std::slice::from_ref(&connector), &[early]));
        assert!(bindings_agree(std::slice::from_ref(&connector), &[current]));
        let new = resource("SendConnector", "DryRun", None, 1);
        let against_new = resource("MailboxBinding", "DryRun", None, 2);
        assert!(bindings_agree(&[new], &[against_new]));
        assert!(bindings_agree(
            &[],
            &[resource("MailboxBinding", "DryRun", None, 1)]
        ));
    }
}
