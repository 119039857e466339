//! What convergence costs in OVH requests, and that creations on one service run side by side
//! without ever producing a duplicate: real controllers, the in-memory Kubernetes API and the
//! simulator, under its default and its strict switches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::PostParams;
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::SendConnector;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// Tasks long enough (3 s) that creations made one after the other could not overlap.
const SLOW_TASKS: &str = "tasks: {todoSeconds: 1.5, doingSeconds: 1.5}";

/// The seed of the scenarios with other task durations.
fn seed_with(tasks: &str) -> String {
    let base = SEED
        .lines()
        .filter(|l| !l.starts_with("tasks:"))
        .collect::<Vec<_>>()
        .join("\n");
    format!("{base}\n{tasks}\n")
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("relay-{i:02}")).collect()
}

async fn create_all(h: &Harness, names: &[String]) {
    for name in names {
        h.connectors()
            .create(&PostParams::default(), &connector_manifest(name))
            .await
            .unwrap();
    }
}

/// The creation task of a Ready SendConnector, as the simulator holds it: (queued, finished)
/// instants.
fn creation_span(h: &Harness, name: &str) -> (jiff::Timestamp, jiff::Timestamp) {
    let sc = h.object::<SendConnector>(name);
    let id = sc["status"]["lastTask"]["id"].as_i64().unwrap();
    assert_eq!(sc["status"]["lastTask"]["function"], "addSendConnector");
    let task = h.sim.sim().task(ORG, ORG, id).expect("the task is kept");
    let at = |field: &str| -> jiff::Timestamp {
        task[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} of {task}"))
            .parse()
            .unwrap()
    };
    (at("todoDate"), at("finishDate"))
}

fn displayed(h: &Harness) -> Vec<String> {
    let mut all: Vec<String> = h
        .sim
        .sim()
        .connectors(ORG, ORG)
        .iter()
        .map(|c: &Value| c["displayName"].as_str().unwrap_or_default().to_owned())
        .collect();
    all.sort();
    all
}

async fn creations_overlap_and_cost_about_two_requests_each(strict_switches: bool) {
    let mut h = Harness::start_idle_seeded(&seed_with(SLOW_TASKS)).await;
    if strict_switches {
        h.use_strict_switches();
    }
    let names = names(10);
    create_all(&h, &names).await;
    h.start_controller(HOUR);
    for name in &names {
        h.wait_ready::<SendConnector>(name).await;
    }
    assert_eq!(displayed(&h), names, "one connector per resource");
    // Side by side: every creation was queued before the first one ended.
    let spans: Vec<_> = names.iter().map(|n| creation_span(&h, n)).collect();
    let last_queued = spans.iter().map(|s| s.0).max().unwrap();
    let first_done = spans.iter().map(|s| s.1).min().unwrap();
    assert!(
        last_queued < first_done,
        "creations waited for each other: last queued {last_queued}, first done {first_done}"
    );
    let posts = h.count("POST", "/sendConnector");
    let polls = h.count("GET", "/task/{id}");
    let lists = h.count("GET", "/sendConnector");
    let total: u64 = h.sim.sim().counters().values().sum();
    eprintln!("posts {posts}, task polls {polls}, lists {lists}, all {total}");
    assert_eq!(posts, 10);
    // While a task runs, the shared list says so for all of them, and a connector listed
    // settled (`ok`, no task) was created: its task is not read. With the strict switches a
    // new connector is not listed while it is created, so its task is polled until it ends
    // (about log2(3 s / 100 ms) times).
    let poll_bound = if strict_switches { 10 * 7 } else { 5 };
    assert!(polls <= poll_bound, "{polls} task polls");
    assert!(lists <= 25, "{lists} connector lists for 10 creations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_on_one_service_run_side_by_side() {
    creations_overlap_and_cost_about_two_requests_each(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_on_one_service_run_side_by_side_under_the_strict_switches() {
    creations_overlap_and_cost_about_two_requests_each(true).await;
}

/// A lost answer to one POST while nine other creations run: the resource that lost it waits
/// for its own create (never for the others'), and nothing is created twice.
async fn a_lost_create_answer_among_others(strict_switches: bool) {
    let mut h = Harness::start_idle_seeded(&seed_with(SLOW_TASKS)).await;
    if strict_switches {
        h.use_strict_switches();
    }
    h.sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .path_contains("/sendConnector")
                .times(2),
        ],
    });
    let names = names(10);
    create_all(&h, &names).await;
    h.start_controller(HOUR);
    for name in &names {
        h.wait_ready::<SendConnector>(name).await;
    }
    h.wait_ovh_settled().await;
    assert_eq!(displayed(&h), names, "one connector per resource");
    assert_eq!(
        h.count("POST", "/sendConnector"),
        10,
        "a POST whose answer was lost is never sent again"
    );
    for name in &names {
        let sc = h.object::<SendConnector>(name);
        let id = sc["status"]["connectorId"].as_i64().unwrap();
        let on_ovh = h.sim.sim().connector(ORG, ORG, id).unwrap();
        assert_eq!(on_ovh["displayName"], name.as_str(), "{name} holds its own");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_while_other_creations_run() {
    a_lost_create_answer_among_others(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_while_other_creations_run_under_the_strict_switches() {
    a_lost_create_answer_among_others(true).await;
}

/// Counts, per object name, the changes a watch on `api` sees (its creation excluded).
fn count_changes<K>(api: kube::Api<K>) -> std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures::StreamExt;
    use kube::ResourceExt;
    use kube::runtime::watcher;
    let counts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let seen = counts.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(obj)) = event {
                // The first sight is the creation; every later one is a write.
                let mut counts = seen.lock().unwrap();
                let n = counts.entry(obj.name_any()).or_insert(u32::MAX);
                *n = n.wrapping_add(1);
            }
        }
    });
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_convergence_costs_at_most_three_writes_per_resource() {
    let accounts: Vec<String> = (0..10).map(|i| format!("user{i}@mydomain.ovh")).collect();
    let seed = SEED.replace(
        "accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]",
        &format!("accounts: [{}]", accounts.join(", ")),
    );
    let mut h = Harness::start_idle_seeded(&seed).await;
    // Tasks (0.15 s) end before the first poll: only the writes convergence needs are
    // counted. A small budget (4 requests a second) keeps the bindings waiting for their
    // connectors for seconds, without a write of their own: the connectors say how their
    // creation goes.
    h.tweak = Some(Box::new(|c| {
        c.task_poll = Duration::from_millis(500);
        c.budget = sendconnector_operator::ovh::BudgetSettings {
            rate: 4.0,
            burst: 1,
        };
    }));
    let connector_writes = count_changes(h.connectors());
    let binding_writes = count_changes(h.bindings());
    // The watches are up before anything is created.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names = names(5);
    create_all(&h, &names).await;
    for (i, name) in names.iter().enumerate() {
        let mut mb = binding_manifest(&format!("binding-{i}"), name);
        mb.spec.mailboxes = vec![accounts[2 * i].clone(), accounts[2 * i + 1].clone()];
        mb.spec.default_for_domains = if i == 0 {
            vec!["mydomain.ovh".into()]
        } else {
            Vec::new()
        };
        h.bindings()
            .create(&PostParams::default(), &mb)
            .await
            .unwrap();
    }
    h.start_controller(HOUR);
    for (i, name) in names.iter().enumerate() {
        h.wait_ready::<SendConnector>(name).await;
        h.wait_ready::<sendconnector_operator::crd::MailboxBinding>(&format!("binding-{i}"))
            .await;
    }
    h.wait_ovh_settled().await;
    // A moment of quiet shows any write convergence did not need.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connectors = connector_writes.lock().unwrap().clone();
    let bindings = binding_writes.lock().unwrap().clone();
    assert_eq!(connectors.len(), 5, "{connectors:?}");
    assert_eq!(bindings.len(), 5, "{bindings:?}");
    // The finalizer, the intent recorded before the first OVH write, and Ready.
    for (name, writes) in connectors.iter().chain(bindings.iter()) {
        assert!(
            *writes <= 3,
            "{name}: {writes} writes ({connectors:?} {bindings:?})"
        );
    }
}

/// A SendConnector applied while 30 others drain a small request budget (5 a second) is not
/// served after all of them: it takes every other token, so it is Ready while most of the
/// bulk still waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_applied_during_a_bulk_change_goes_ahead_of_it() {
    let mut h = Harness::start_idle().await;
    h.tweak = Some(Box::new(|c| {
        c.budget = sendconnector_operator::ovh::BudgetSettings {
            rate: 5.0,
            burst: 1,
        };
    }));
    let bulk = names(30);
    create_all(&h, &bulk).await;
    h.start_controller(HOUR);
    // Applied well after the bulk (changes seen within half a second of each other are one wave,
    // served in turn).
    wait_for(
        "the bulk change's first creations",
        Duration::from_secs(30),
        || h.count("POST", "/sendConnector") >= 5,
    )
    .await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("late"))
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("late").await;
    let ready = bulk
        .iter()
        .filter(|n| ready(&h.object::<SendConnector>(n)).as_deref() == Some("True"))
        .count();
    eprintln!("{ready} of the 30 bulk connectors were Ready before the late one");
    assert!(
        ready <= 15,
        "{ready} of the 30 bulk connectors were Ready before the late one"
    );
    for name in &bulk {
        h.wait_ready::<SendConnector>(name).await;
    }
    assert_eq!(displayed(&h).len(), 31, "one connector per resource");
}
