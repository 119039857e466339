//! Leader election: two operator instances on one Kubernetes API and one OVH simulator. One
//! reconciles, the other stands by (ready, no OVH request); killed mid-work, the leader is
//! replaced within the lease duration and the work ends with one connector, created once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::core::ApiResource;
use sendconnector_operator::controller::{self, LeaderElection};
use sendconnector_operator::crd::SendConnector;
use sendconnector_operator::telemetry::Telemetry;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(2);
const LEASE_NAME: &str = "sendconnector-operator";

struct Instance {
    telemetry: Telemetry,
    task: tokio::task::JoinHandle<Result<(), controller::Error>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn start(h: &Harness, identity: &str) -> Instance {
    let telemetry = Telemetry::default();
    let mut config = test_config(Duration::from_secs(3600));
    config.telemetry = telemetry.clone();
    config.leader_election = Some(LeaderElection::new(&h.ns, identity, LEASE));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = h.controller_client(&mut config);
    let task = tokio::spawn(async move {
        Box::pin(controller::run(client.await, config, async move {
            let _ = stopped.await;
        }))
        .await
    });
    Instance {
        telemetry,
        task,
        stop: Some(stop),
    }
}

fn holder(h: &Harness) -> Option<String> {
    let lease = h
        .k8s
        .get_object(&ApiResource::erase::<Lease>(&()), Some(&h.ns), LEASE_NAME)?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Records every holder the Lease has, in order, until dropped.
struct Transitions {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Transitions {
    fn record(h: &Harness) -> Self {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let k8s = h.k8s.clone();
        let ns = h.ns.clone();
        let out = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let current = k8s
                    .get_object(&ApiResource::erase::<Lease>(&()), Some(&ns), LEASE_NAME)
                    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned));
                if let Some(current) = current {
                    let mut seen = out.lock().unwrap();
                    if seen.last() != Some(&current) {
                        seen.push(current);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Transitions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether an instance has made any OVH request (its own metrics: each instance has its own
/// OVH clients).
fn ovh_requests(t: &Telemetry) -> usize {
    t.encode()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("sendconnector_ovh_requests_total{"))
        .count()
}

fn reconciles(t: &Telemetry) -> usize {
    t.encode()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("sendconnector_reconciles_total{"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_reconciles_and_a_standby_takes_over_a_killed_leader() {
    let h = Harness::start_idle().await;
    let transitions = Transitions::record(&h);
    let mut a = start(&h, "instance-a");
    let mut b = start(&h, "instance-b");

    // Both fill their caches and report ready; exactly one holds the Lease.
    wait_for("both ready", Duration::from_secs(20), || {
        a.telemetry.health().readiness().is_ok() && b.telemetry.health().readiness().is_ok()
    })
    .await;
    wait_for("a leader", Duration::from_secs(20), || {
        holder(&h).is_some_and(|leader| {
            let (leading, waiting) = if leader == "instance-a" {
                (&a, &b)
            } else {
                (&b, &a)
            };
            leading.telemetry.metrics().is_leader() && !waiting.telemetry.metrics().is_leader()
        })
    })
    .await;
    let first = holder(&h).unwrap();
    let (leader, standby) = if first == "instance-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // The leader starts the work; the moment OVH has the create, it is killed (no more
    // renewals, no graceful anything).
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let create = format!("POST {P}/sendConnector");
    wait_for("the create on OVH", Duration::from_secs(20), || {
        h.counter(&create) == 1
    })
    .await;
    assert_eq!(ovh_requests(&standby.telemetry), 0, "the standby waits");
    assert_eq!(reconciles(&standby.telemetry), 0, "the standby waits");
    assert!(
        standby.telemetry.health().readiness().is_ok(),
        "a standby is ready"
    );
    leader.task.abort();
    let killed = Instant::now();

    // The standby takes over within the lease duration (plus its look-again period and
    // some slack for a busy machine) and finishes the work.
    let second = if first == "instance-a" {
        "instance-b"
    } else {
        "instance-a"
    };
    wait_for("the standby to lead", Duration::from_secs(10), || {
        holder(&h).as_deref() == Some(second)
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE + LEASE / 3 * 2 + Duration::from_millis(800),
        "took over after {took:?}"
    );
    assert!(standby.telemetry.metrics().is_leader());
    let sc = h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;

    // One connector, created once; the Lease went from one holder to the other, once.
    assert_eq!(h.counter(&create), 1, "one create");
    let connectors = h.sim.sim().connectors(ORG, ORG);
    assert_eq!(connectors.len(), 1, "{connectors:#?}");
    assert_eq!(
        connectors[0]["id"].as_i64(),
        sc["status"]["connectorId"].as_i64()
    );
    assert!(ovh_requests(&standby.telemetry) > 0);
    assert_eq!(transitions.seen(), [first.clone(), second.to_owned()]);
    let lease = h
        .k8s
        .get_object(&ApiResource::erase::<Lease>(&()), Some(&h.ns), LEASE_NAME)
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], json!(1), "{lease:#}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], json!(2), "{lease:#}");

    // A normal stop releases the Lease.
    let _ = standby.stop.take().unwrap().send(());
    let stopped = tokio::time::timeout(Duration::from_secs(20), &mut standby.task)
        .await
        .expect("stops")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    assert_eq!(holder(&h), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_at_once_and_a_released_lease_is_taken_at_once() {
    let h = Harness::start_idle().await;
    let mut a = start(&h, "instance-a");
    wait_for("a leads", Duration::from_secs(20), || {
        holder(&h).as_deref() == Some("instance-a") && a.telemetry.metrics().is_leader()
    })
    .await;

    // Another process writes itself into the Lease with a fresh renewal: a stops
    // reconciling and `run` ends with an error (the process exits and restarts as a standby).
    let leases: kube::Api<Lease> = kube::Api::namespaced(h.client.clone(), &h.ns);
    let mut lease = leases.get(LEASE_NAME).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    leases
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
        .unwrap();
    let taken = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), &mut a.task)
        .await
        .expect("run ends")
        .unwrap();
    assert!(taken.elapsed() < LEASE, "{:?}", taken.elapsed());
    let message = ended.unwrap_err().to_string();
    assert!(message.contains("held by intruder"), "{message}");
    assert!(!a.telemetry.metrics().is_leader());
    assert!(a.telemetry.health().liveness().is_err());

    // A Lease given up (holder cleared, as a stopping leader does) is taken at once.
    let mut lease = leases.get(LEASE_NAME).await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = None;
    leases
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
        .unwrap();
    let released = Instant::now();
    let b = start(&h, "instance-b");
    wait_for("b leads", Duration::from_secs(10), || {
        holder(&h).as_deref() == Some("instance-b") && b.telemetry.metrics().is_leader()
    })
    .await;
    assert!(released.elapsed() < LEASE, "{:?}", released.elapsed());
}
