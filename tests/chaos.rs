//! The fault campaign: a workload of connectors and bindings created, changed, renamed,
//! partly deleted and re-created while the simulator injects faults (500s, 429 bursts with
//! `Retry-After`, latency spikes, lost answers, HTML 408s, resets, timeouts, failed tasks)
//! and the controller is killed and restarted with empty memory, a third of the times right
//! after a POST reached OVH. Once the faults stop and the controller quiesces, OVH must equal
//! the specs exactly, and no secret may have been printed anywhere (logs at debug level,
//! Events, statuses, metrics).
//!
//! `cargo test --test chaos` runs the short form; `make chaos` the full one
//! (`SENDCONNECTOR_CHAOS=full`: three seeds under each set of simulator switches). A failing
//! run prints its seed: `SENDCONNECTOR_CHAOS_SEED=N` replays the same dice.
//!
//! One binary of its own: the log subscriber it installs sees only these campaigns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use base64::Engine;
use common::*;
use kube::api::{DeleteParams, ListParams, PostParams};
use ovh_simulator::{FaultKind, FaultRule, Faults};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const MAILBOXES_PER_BINDING: usize = 3;
const DOMAINS: [&str; 2] = ["mydomain.ovh", "other.ovh"];
/// The credentials of the harness (its seed) and every relay password a campaign sets.
const OVH_SECRETS: [&str; 2] = ["as-secret", "ck-secret"];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of every campaign in this binary, at debug level.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    })
}

#[derive(Clone, Copy, Debug)]
struct Size {
    connectors: usize,
    bindings: usize,
    operations: usize,
    kills: usize,
}

const SHORT: Size = Size {
    connectors: 5,
    bindings: 4,
    operations: 40,
    kills: 6,
};

const FULL: Size = Size {
    connectors: 10,
    bindings: 8,
    operations: 160,
    kills: 24,
};

fn full() -> bool {
    std::env::var("SENDCONNECTOR_CHAOS").is_ok_and(|v| v == "full")
}

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("SENDCONNECTOR_CHAOS_SEED") {
        Ok(seed) => vec![seed.parse().expect("SENDCONNECTOR_CHAOS_SEED is a number")],
        Err(_) => default.to_vec(),
    }
}

fn mailbox(binding: usize, i: usize) -> String {
    format!("user{binding}-{i}@{}", DOMAINS[binding % DOMAINS.len()])
}

fn simulator_seed(size: Size) -> String {
    let accounts: Vec<String> = (0..size.bindings)
        .flat_map(|b| (0..MAILBOXES_PER_BINDING).map(move |i| mailbox(b, i)))
        .collect();
    format!(
        r#"
credentials:
  - applicationKey: ak
    applicationSecret: as-secret
    consumerKey: ck-secret
    accessRules: [{{method: GET, path: "/*"}}, {{method: POST, path: "/*"}}, {{method: PUT, path: "/*"}}, {{method: DELETE, path: "/*"}}]
services:
  - organization: {ORG}
    domains: [{}]
    accounts: [{}]
tasks: {{todoSeconds: 0.05, doingSeconds: 0.1}}
"#,
        DOMAINS.join(", "),
        accounts.join(", ")
    )
}

/// The faults of a campaign: about one request in five is hit.
fn faults(seed: u64) -> Faults {
    Faults {
        latency_ms: 0,
        seed: Some(seed),
        rules: vec![
            // Half the creations lose their answer (the hardest case for duplicates).
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .path_contains("/sendConnector")
                .probability(0.5),
            FaultRule::new(FaultKind::LoseResponse).probability(0.05),
            FaultRule::new(FaultKind::Status500).probability(0.10),
            FaultRule::new(FaultKind::Html408).probability(0.02),
            FaultRule::new(FaultKind::ConnectionReset).probability(0.02),
            FaultRule::new(FaultKind::Latency { ms: 800 }).probability(0.03),
            FaultRule::new(FaultKind::Timeout).probability(0.003),
        ],
    }
}

/// What happened during a campaign, for its report.
#[derive(Debug, Default)]
struct Tally {
    operations: BTreeMap<&'static str, usize>,
    kills: usize,
    kills_after_post: usize,
    task_failures: usize,
    bursts: usize,
}

struct Campaign {
    h: Harness,
    rng: StdRng,
    size: Size,
    seed: u64,
    tally: Tally,
    /// Relay passwords set so far (all secrets).
    passwords: Vec<String>,
}

impl Campaign {
    fn connector_name(i: usize) -> String {
        format!("relay-{i}")
    }

    fn binding_name(i: usize) -> String {
        format!("binding-{i}")
    }

    async fn exists<K>(&self, api: &kube::Api<K>, name: &str) -> bool
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.get_opt(name)
            .await
            .unwrap()
            .is_some_and(|o| o.meta().deletion_timestamp.is_none())
    }

    async fn create_connector(&mut self, i: usize) {
        let name = Self::connector_name(i);
        let mut sc = connector_manifest(&name);
        if self.rng.random_bool(0.3) {
            sc.spec.display_name = Some(format!("{name}-shown"));
        }
        let _ = self
            .h
            .connectors()
            .create(&PostParams::default(), &sc)
            .await;
    }

    /// Creates a binding of a connector that exists (created first if need be); none for a
    /// connector being deleted, which would wait for the binding for ever (by contract).
    async fn create_binding(&mut self, b: usize) -> &'static str {
        let connector = Self::connector_name(self.rng.random_range(0..self.size.connectors));
        match self.h.connectors().get_opt(&connector).await.unwrap() {
            Some(sc) if sc.metadata.deletion_timestamp.is_some() => return "skip",
            Some(_) => {}
            None => self.create_connector_named(&connector).await,
        }
        let mut mb = binding_manifest(&Self::binding_name(b), &connector);
        let count = self.rng.random_range(1..=MAILBOXES_PER_BINDING);
        mb.spec.mailboxes = (0..count).map(|i| mailbox(b, i)).collect();
        // The first binding of each domain may make it the default for new mailboxes.
        mb.spec.default_for_domains = if b < DOMAINS.len() && self.rng.random_bool(0.5) {
            vec![DOMAINS[b % DOMAINS.len()].to_owned()]
        } else {
            Vec::new()
        };
        let _ = self.h.bindings().create(&PostParams::default(), &mb).await;
        "create binding"
    }

    async fn create_connector_named(&mut self, name: &str) {
        let i: usize = name.trim_start_matches("relay-").parse().unwrap();
        self.create_connector(i).await;
    }

    /// Deletes a connector and, first, the bindings that use it (else it waits for them).
    async fn delete_connector(&mut self, i: usize) {
        let name = Self::connector_name(i);
        let bindings = self
            .h
            .bindings()
            .list(&ListParams::default())
            .await
            .unwrap();
        for b in bindings.items {
            if b.spec.connector_ref.name == name {
                let _ = self
                    .h
                    .bindings()
                    .delete(&kube::ResourceExt::name_any(&b), &DeleteParams::default())
                    .await;
            }
        }
        let _ = self
            .h
            .connectors()
            .delete(&name, &DeleteParams::default())
            .await;
    }

    async fn step(&mut self) {
        let c = self.rng.random_range(0..self.size.connectors);
        let b = self.rng.random_range(0..self.size.bindings);
        let connector = Self::connector_name(c);
        let live = self.exists(&self.h.connectors(), &connector).await;
        let op = match self.rng.random_range(0..100) {
            0..15 => {
                if live {
                    "skip"
                } else {
                    self.create_connector(c).await;
                    "create connector"
                }
            }
            15..27 if live => {
                let port = self.rng.random_range(1000..3000);
                let size = self.rng.random_range(1..=100);
                self.h
                    .patch_connector(
                        &connector,
                        json!({"spec": {"port": port, "maxSendSize": size}}),
                    )
                    .await;
                "change connector"
            }
            27..35 if live => {
                let shown = format!("{connector}-renamed-{}", self.rng.random_range(0..1000));
                self.h
                    .patch_connector(&connector, json!({"spec": {"displayName": shown}}))
                    .await;
                "rename connector"
            }
            35..40 if live => {
                let user = format!("user-{}", self.rng.random_range(0..1000));
                self.h
                    .patch_connector(
                        &connector,
                        json!({"spec": {"authentication": {"user": user}}}),
                    )
                    .await;
                "change user"
            }
            40..44 => {
                let password = format!("pw-{:016x}", self.rng.random::<u64>());
                self.h
                    .set_secret("relay-password", json!({"password": password}))
                    .await;
                self.passwords.push(password);
                "change password"
            }
            44..52 if live => {
                self.delete_connector(c).await;
                "delete connector"
            }
            52..70 => {
                if self
                    .exists(&self.h.bindings(), &Self::binding_name(b))
                    .await
                {
                    let count = self.rng.random_range(1..=MAILBOXES_PER_BINDING);
                    let mailboxes: Vec<String> = (0..count).map(|i| mailbox(b, i)).collect();
                    self.h
                        .patch_binding(
                            &Self::binding_name(b),
                            json!({"spec": {"mailboxes": mailboxes}}),
                        )
                        .await;
                    "change binding"
                } else {
                    self.create_binding(b).await
                }
            }
            70..76 => {
                let _ = self
                    .h
                    .bindings()
                    .delete(&Self::binding_name(b), &DeleteParams::default())
                    .await;
                "delete binding"
            }
            76..84 => self.out_of_band_edit().await,
            84..88 => {
                self.h.sim.sim().fail_next_task(None);
                self.tally.task_failures += 1;
                "fail next task"
            }
            88..91 => {
                let mut f = faults(self.seed.wrapping_add(self.tally.bursts as u64));
                f.rules.insert(
                    0,
                    FaultRule::new(FaultKind::TooManyRequests {
                        retry_after_seconds: 1,
                    })
                    .times(self.rng.random_range(3..10)),
                );
                self.h.sim.sim().set_faults(f);
                self.tally.bursts += 1;
                "429 burst"
            }
            _ => "skip",
        };
        *self.tally.operations.entry(op).or_default() += 1;
    }

    /// A change made on OVH by a person: a connector's port, or a bound mailbox detached.
    /// (Pointed at another connector by hand, and then dropped from its binding, a mailbox
    /// is no longer the operator's to put back: the campaign would not know what to expect.)
    async fn out_of_band_edit(&mut self) -> &'static str {
        let sim = self.h.sim.sim();
        let connectors = sim.connectors(ORG, ORG);
        if connectors.is_empty() {
            return "skip";
        }
        let target = &connectors[self.rng.random_range(0..connectors.len())];
        let id = target["id"].as_i64().unwrap();
        if self.rng.random_bool(0.5) {
            let _ = sim.edit_connector(ORG, ORG, id, json!({"port": 2222}));
            return "edit connector on OVH";
        }
        let bindings = self
            .h
            .bindings()
            .list(&ListParams::default())
            .await
            .unwrap();
        let bound: Vec<String> = bindings
            .items
            .iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .flat_map(|b| b.spec.mailboxes.clone())
            .collect();
        if bound.is_empty() {
            return "skip";
        }
        let address = &bound[self.rng.random_range(0..bound.len())];
        let _ = sim.edit_account(ORG, ORG, address, json!({"sendConnectorId": 0}));
        "edit mailbox on OVH"
    }

    /// Kills the controller, at once or (`after_post`) right after the next POST reaches OVH,
    /// and starts a new one with empty memory.
    async fn kill(&mut self, after_post: bool) {
        if after_post {
            // A new relay password makes every connector with authentication POST
            // changeAuthentication, so a POST is on its way.
            let password = format!("pw-{:016x}", self.rng.random::<u64>());
            self.h
                .set_secret("relay-password", json!({"password": password}))
                .await;
            self.passwords.push(password);
            let posts = || {
                self.h
                    .sim
                    .sim()
                    .counters()
                    .iter()
                    .filter(|(k, _)| k.starts_with("POST "))
                    .map(|(_, v)| *v)
                    .sum::<u64>()
            };
            let before = posts();
            let deadline = Instant::now() + Duration::from_secs(10);
            while posts() == before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if posts() != before {
                self.tally.kills_after_post += 1;
            }
        }
        self.h.kill_controller().await;
        self.tally.kills += 1;
        let resync = self.h.resync;
        self.h.start_controller(resync);
    }

    async fn run(&mut self) {
        let kill_every = self.size.operations / self.size.kills;
        for i in 0..self.size.operations {
            self.step().await;
            if i % kill_every == kill_every - 1 {
                // Every third kill right after a POST reached OVH.
                let after_post = self.tally.kills % 3 == 0;
                self.kill(after_post).await;
            }
            let pause = self.rng.random_range(20..300);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Every invariant that must hold once things are calm; empty when all do.
    async fn violations(&self) -> Vec<String> {
        let sim = self.h.sim.sim();
        let mut out = Vec::new();
        let connectors = self
            .h
            .connectors()
            .list(&ListParams::default())
            .await
            .unwrap();
        let bindings = self
            .h
            .bindings()
            .list(&ListParams::default())
            .await
            .unwrap();
        let on_ovh = sim.connectors(ORG, ORG);
        let password = self
            .passwords
            .last()
            .cloned()
            .unwrap_or_else(|| "relay-password-1".into());
        let mut ids_by_resource: BTreeMap<String, i64> = BTreeMap::new();
        for sc in &connectors.items {
            let name = kube::ResourceExt::name_any(sc);
            if sc.metadata.deletion_timestamp.is_some() {
                out.push(format!("SendConnector {name} is still being deleted"));
                continue;
            }
            let obj = self.h.object::<SendConnector>(&name);
            if !ready_for_generation(&obj) {
                out.push(format!(
                    "SendConnector {name} is not Ready: {}",
                    obj["status"]["conditions"]
                ));
            }
            let shown = sc.display_name();
            let matching: Vec<&Value> = on_ovh
                .iter()
                .filter(|c| c["displayName"] == shown)
                .collect();
            if matching.len() != 1 {
                out.push(format!(
                    "{} connectors named {shown:?} on OVH",
                    matching.len()
                ));
                continue;
            }
            let c = matching[0];
            let id = c["id"].as_i64().unwrap();
            ids_by_resource.insert(name.clone(), id);
            if obj["status"]["connectorId"].as_i64() != Some(id) {
                out.push(format!(
                    "SendConnector {name} records {} but OVH has {id}",
                    obj["status"]["connectorId"]
                ));
            }
            let spec = &sc.spec;
            let fields = [
                ("smartHost", json!(spec.smart_host)),
                ("port", json!(spec.port)),
                ("requireTLS", json!(spec.require_tls)),
                ("maxSendSize", json!(spec.max_send_size)),
                ("smartHostAuthMechanism", json!(spec.mechanism())),
            ];
            for (field, want) in fields {
                if c[field] != want {
                    out.push(format!(
                        "connector {id} ({name}): {field} is {} on OVH, {want} in the spec",
                        c[field]
                    ));
                }
            }
            if sim.connector_user(ORG, ORG, id).as_deref() != spec.auth_user() {
                out.push(format!("connector {id} ({name}): user differs"));
            }
            if sim.connector_password(ORG, ORG, id).as_deref() != Some(password.as_str()) {
                out.push(format!(
                    "connector {id} ({name}): password is not the Secret's"
                ));
            }
        }
        let expected_ids: BTreeSet<i64> = ids_by_resource.values().copied().collect();
        for c in &on_ovh {
            let id = c["id"].as_i64().unwrap();
            if !expected_ids.contains(&id) {
                out.push(format!(
                    "connector {id} ({}) belongs to no resource",
                    c["displayName"]
                ));
            }
        }
        // Mailboxes and domains: the connector of the binding that lists them, else 0.
        let mut want_accounts: BTreeMap<String, i64> = BTreeMap::new();
        let mut want_domains: BTreeMap<String, i64> = BTreeMap::new();
        for mb in &bindings.items {
            let name = kube::ResourceExt::name_any(mb);
            if mb.metadata.deletion_timestamp.is_some() {
                out.push(format!("MailboxBinding {name} is still being deleted"));
                continue;
            }
            let obj = self.h.object::<MailboxBinding>(&name);
            if !ready_for_generation(&obj) {
                out.push(format!(
                    "MailboxBinding {name} is not Ready: {}",
                    obj["status"]["conditions"]
                ));
            }
            let id = ids_by_resource
                .get(&mb.spec.connector_ref.name)
                .copied()
                .unwrap_or(-1);
            for m in &mb.spec.mailboxes {
                want_accounts.insert(m.clone(), id);
            }
            for d in &mb.spec.default_for_domains {
                want_domains.insert(d.clone(), id);
            }
        }
        let live_ids: BTreeSet<i64> = on_ovh.iter().filter_map(|c| c["id"].as_i64()).collect();
        for b in 0..self.size.bindings {
            for i in 0..MAILBOXES_PER_BINDING {
                let address = mailbox(b, i);
                let got = sim.account(ORG, ORG, &address).unwrap()["sendConnectorId"]
                    .as_i64()
                    .unwrap_or(0);
                let want = want_accounts.get(&address).copied().unwrap_or(0);
                if got != want {
                    out.push(format!("{address} sends through {got}, {want} wanted"));
                }
                if got != 0 && !live_ids.contains(&got) {
                    out.push(format!(
                        "{address} points at connector {got}, which does not exist"
                    ));
                }
            }
        }
        for d in DOMAINS {
            let got = sim.domain(ORG, ORG, d).unwrap()["sendConnectorIdDefault"]
                .as_i64()
                .unwrap_or(0);
            let want = want_domains.get(d).copied().unwrap_or(0);
            if got != want {
                out.push(format!("domain {d} defaults to {got}, {want} wanted"));
            }
        }
        out
    }

    /// Waits until every invariant holds, and still holds after two resync intervals.
    async fn quiesce(&self, timeout: Duration) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.violations().await;
            if v.is_empty() {
                tokio::time::sleep(self.h.resync * 2).await;
                let again = self.violations().await;
                if again.is_empty() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.violations().await);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn ready_for_generation(obj: &Value) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|a| {
        a.iter().any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && c["observedGeneration"] == obj["metadata"]["generation"]
        })
    })
}

/// Everything a campaign's operator said or wrote: logs, Events, every object's status.
async fn everything_said(h: &Harness) -> String {
    let mut text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    for e in h.events() {
        text.push_str(&e.to_string());
    }
    let connectors = h.connectors().list(&ListParams::default()).await.unwrap();
    for sc in connectors.items {
        text.push_str(&serde_json::to_string(&sc.status).unwrap());
    }
    let bindings = h.bindings().list(&ListParams::default()).await.unwrap();
    for mb in bindings.items {
        text.push_str(&serde_json::to_string(&mb.status).unwrap());
    }
    text
}

async fn campaign(seed: u64, strict: bool, size: Size) {
    logs();
    let started = Instant::now();
    // The in-memory API, whatever the backend asked for: the campaign's kills and its
    // hundreds of resources fit a fast in-process API; the scenarios cover the real one.
    let h = Harness::start_idle_on(backend::Kind::Memory, &simulator_seed(size)).await;
    if strict {
        h.use_strict_switches();
    }
    h.sim.sim().set_faults(faults(seed));
    let mut c = Campaign {
        h,
        rng: StdRng::seed_from_u64(seed),
        size,
        seed,
        tally: Tally::default(),
        passwords: Vec::new(),
    };
    // One metrics registry for every controller of the campaign, scanned for secrets too.
    let telemetry = sendconnector_operator::telemetry::Telemetry::default();
    let shared = telemetry.clone();
    c.h.tweak = Some(Box::new(move |config| config.telemetry = shared.clone()));
    c.h.start_controller(Duration::from_secs(3));
    c.run().await;
    let requests: u64 = c.h.sim.sim().counters().values().sum();
    let faults_by_kind = c.h.sim.sim().fault_counts();
    // Calm: no more faults, one last restart with empty memory, then everything must settle.
    c.h.sim.sim().set_faults(Faults::default());
    c.kill(false).await;
    let result = c.quiesce(Duration::from_secs(180)).await;
    let mut said = everything_said(&c.h).await;
    let metrics = telemetry.encode().unwrap();
    assert!(metrics.contains("sendconnector_"), "metrics were gathered");
    said.push_str(&metrics);
    let switches = if strict { "strict" } else { "default" };
    eprintln!(
        "chaos seed {seed} ({switches} switches): {} operations {:?}, {} kills ({} right after a POST), {} task failures, {} 429 bursts, {requests} OVH requests, faults {faults_by_kind:?}, {:.0?}",
        c.tally.operations.values().sum::<usize>(),
        c.tally.operations,
        c.tally.kills,
        c.tally.kills_after_post,
        c.tally.task_failures,
        c.tally.bursts,
        started.elapsed(),
    );
    if let Err(violations) = result {
        panic!(
            "chaos seed {seed} ({switches} switches): invariants broken after quiescing (replay: SENDCONNECTOR_CHAOS_SEED={seed}):\n  {}",
            violations.join("\n  ")
        );
    }
    assert!(c.tally.kills >= size.kills, "{:?}", c.tally);
    assert!(
        faults_by_kind.get("loseResponse").copied().unwrap_or(0) > 0
            && faults_by_kind.get("status500").copied().unwrap_or(0) > 0,
        "faults were injected: {faults_by_kind:?}"
    );
    assert!(
        c.tally.kills_after_post * 4 >= c.tally.kills,
        "a third of the kills are aimed right after a POST, and most must land there: {:?}",
        c.tally
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let secrets: Vec<String> = OVH_SECRETS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(std::iter::once("relay-password-1".to_owned()))
        .chain(c.passwords.iter().cloned())
        .collect();
    for secret in &secrets {
        assert!(
            !said.contains(secret.as_str()),
            "a secret was printed (seed {seed})"
        );
        assert!(
            !said.contains(&b64.encode(secret)),
            "a secret was printed in base64 (seed {seed})"
        );
    }
    c.h.kill_controller().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_default_switches() {
    let (size, default_seeds) = if full() {
        (FULL, vec![101, 202, 303])
    } else {
        (SHORT, vec![7])
    };
    for seed in seeds(&default_seeds) {
        campaign(seed, false, size).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_strict_switches() {
    let (size, default_seeds) = if full() {
        (FULL, vec![404, 505, 606])
    } else {
        (SHORT, vec![8])
    };
    for seed in seeds(&default_seeds) {
        campaign(seed, true, size).await;
    }
}
