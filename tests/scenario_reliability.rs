//! Defects a fault campaign found: each scenario failed before its fix. Real controllers, the
//! in-memory Kubernetes API and the simulator, often with its strict switches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::{DeleteParams, PostParams};
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::{Value, json};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn named(name: &str, display_name: &str) -> SendConnector {
    let mut sc = connector_manifest(name);
    sc.spec.display_name = Some(display_name.to_owned());
    sc
}

fn connectors_named(h: &Harness, display_name: &str) -> Vec<Value> {
    h.sim
        .sim()
        .connectors(ORG, ORG)
        .into_iter()
        .filter(|c| c["displayName"] == display_name)
        .collect()
}

async fn gone(h: &Harness, name: &str) {
    let api = h.connectors();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} was never deleted: {:#}",
            h.object::<SendConnector>(name)["status"]
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_loser_of_a_conflict_leaves_the_winners_connector() {
    let h = Harness::start(HOUR).await;
    let api = h.connectors();
    api.create(&PostParams::default(), &named("winner", "shared"))
        .await
        .unwrap();
    let winner = h.wait_ready::<SendConnector>("winner").await;
    let id = winner["status"]["connectorId"].as_i64().unwrap();
    h.wait_ovh_settled().await;
    api.create(&PostParams::default(), &named("loser", "shared"))
        .await
        .unwrap();
    h.wait_condition::<SendConnector>("loser", "False", "Conflict")
        .await;

    h.sim.sim().reset_counters();
    api.delete("loser", &DeleteParams::default()).await.unwrap();
    gone(&h, "loser").await;
    assert_eq!(h.count("DELETE", "/sendConnector/{id}"), 0);
    let left = connectors_named(&h, "shared");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"].as_i64(), Some(id), "the winner's connector");
    assert!(
        h.events_for("loser")
            .iter()
            .any(|(_, n)| n.contains("nothing of this resource's")),
        "{:?}",
        h.events_for("loser")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_listed_only_once_created_are_created_once() {
    let h = Harness::start(HOUR).await;
    h.use_strict_switches();
    h.sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![
            FaultRule::new(FaultKind::Status500)
                .method("GET")
                .path_contains("/task")
                .probability(0.4),
        ],
    });
    let api = h.connectors();
    let names: Vec<String> = (0..20).map(|i| format!("relay-{i:02}")).collect();
    for name in &names {
        api.create(&PostParams::default(), &connector_manifest(name))
            .await
            .unwrap();
    }
    for name in &names {
        h.wait_ready::<SendConnector>(name).await;
    }
    h.sim.sim().set_faults(Faults::default());
    h.wait_ovh_settled().await;
    for name in &names {
        assert_eq!(connectors_named(&h, name).len(), 1, "{name} on OVH");
    }
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), names.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_after_a_lost_create_answer_renames_the_one_connector() {
    let h = Harness::start_idle().await;
    h.sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .path_contains("/sendConnector")
                .times(1),
        ],
    });
    let mut h = h;
    h.start_controller(HOUR);
    h.connectors()
        .create(&PostParams::default(), &named("relay", "first-name"))
        .await
        .unwrap();
    wait_for("the lost POST", Duration::from_secs(20), || {
        h.count("POST", "/sendConnector") == 1
    })
    .await;
    h.patch_connector("relay", json!({"spec": {"displayName": "second-name"}}))
        .await;
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    let all = h.sim.sim().connectors(ORG, ORG);
    assert_eq!(all.len(), 1, "one connector, renamed: {all:?}");
    assert_eq!(all[0]["displayName"], "second-name");
    assert_eq!(h.count("POST", "/sendConnector"), 1);

    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    gone(&h, "relay").await;
    h.wait_ovh_settled().await;
    assert!(h.sim.sim().connectors(ORG, ORG).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_organization_or_service_is_stalled_not_a_second_connector() {
    // On the in-memory API only, whatever the backend asked for, with the CRDs' rules off:
    // a real API server's CEL rules refuse the change itself (spec.organization is immutable).
    let mut h = Harness::start_idle_unvalidated().await;
    h.start_controller(HOUR);
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    let id = sc["status"]["connectorId"].as_i64().unwrap();
    h.wait_ovh_settled().await;
    h.sim.sim().reset_counters();

    for (patch, field) in [
        (
            json!({"spec": {"organization": "private-other-1"}}),
            "spec.organization",
        ),
        (
            json!({"spec": {"organization": ORG, "service": "other-service"}}),
            "spec.service",
        ),
    ] {
        h.patch_connector("relay", patch).await;
        let obj = h
            .wait_condition::<SendConnector>("relay", "False", "InvalidSpec")
            .await;
        let message = ready_message(&obj);
        assert!(message.contains(field), "{message}");
        assert!(
            message.contains(ORG),
            "names what it was created under: {message}"
        );
    }
    assert_eq!(h.ovh_writes(), 0);
    let total: u64 = h.sim.sim().counters().values().sum();
    assert_eq!(total, 0, "no OVH request at all for a changed identity");

    // Put back: Ready again, same connector.
    h.patch_connector(
        "relay",
        json!({"spec": {"organization": ORG, "service": null}}),
    )
    .await;
    let sc = h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(sc["status"]["connectorId"].as_i64(), Some(id));

    // Changed again, then deleted: the connector it created goes, under its recorded identity.
    h.patch_connector(
        "relay",
        json!({"spec": {"organization": "private-other-1"}}),
    )
    .await;
    h.wait_condition::<SendConnector>("relay", "False", "InvalidSpec")
        .await;
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    gone(&h, "relay").await;
    h.wait_ovh_settled().await;
    assert!(h.sim.sim().connectors(ORG, ORG).is_empty());
    assert_eq!(h.count("POST", "/sendConnector"), 0);
}

/// Creates an object from raw JSON, whatever it holds (the in-memory API, like a cluster
/// whose CRD lacked these rules when the object was stored, keeps it).
async fn create_raw<K: kube::Resource<DynamicType = ()>>(h: &Harness, body: Value) {
    let ar = kube::core::ApiResource::erase::<K>(&());
    let api: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(h.client.clone(), &h.ns, &ar);
    let obj: kube::core::DynamicObject = serde_json::from_value(body).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

fn raw_connector(name: &str, spec_patch: Value) -> Value {
    let mut obj = serde_json::to_value(connector_manifest(name)).unwrap();
    match spec_patch {
        Value::Null => {
            obj.as_object_mut().unwrap().remove("spec");
        }
        patch => json_patch_merge(&mut obj["spec"], &patch),
    }
    obj
}

fn json_patch_merge(target: &mut Value, patch: &Value) {
    if let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) {
        for (k, v) in p {
            json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    } else {
        *target = patch.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_objects_are_reported_and_skipped() {
    // On the in-memory API only, whatever the backend asked for: a real API server refuses
    // these objects (tests/real_server.rs stores one there under a looser CRD instead).
    let mut h = Harness::start_idle_unvalidated().await;
    // Stored before the operator starts: its first list holds them.
    for (name, patch) in [
        (
            "bad-mechanism",
            json!({"authentication": {"mechanism": "ntlm"}}),
        ),
        ("bad-port", json!({"port": "587"})),
        ("bad-policy", json!({"deletionPolicy": "delete"})),
        ("no-spec", Value::Null),
    ] {
        create_raw::<SendConnector>(&h, raw_connector(name, patch)).await;
    }
    create_raw::<sendconnector_operator::crd::MailboxBinding>(
        &h,
        json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": "bad-binding"},
            "spec": {"connectorRef": {"name": "good"}, "mailboxes": "newsletter@mydomain.ovh"}
        }),
    )
    .await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("good"))
        .await
        .unwrap();
    h.start_controller(HOUR);
    h.wait_ready::<SendConnector>("good").await;
    for (name, field) in [
        ("bad-mechanism", "spec.authentication.mechanism"),
        ("bad-port", "spec.port"),
        ("bad-policy", "spec.deletionPolicy"),
        ("no-spec", "spec"),
        ("bad-binding", "spec.mailboxes"),
    ] {
        wait_for(
            &format!("an Event on {name}"),
            Duration::from_secs(10),
            || {
                h.events_for(name)
                    .iter()
                    .any(|(r, n)| r == "InvalidSpec" && n.contains(field))
            },
        )
        .await;
    }

    // While running: a new bad object neither stops nor slows the others.
    create_raw::<SendConnector>(
        &h,
        raw_connector("bad-later", json!({"authentication": {"mechanism": "foo"}})),
    )
    .await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("good-later"))
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("good-later").await;
    wait_for("an Event on bad-later", Duration::from_secs(10), || {
        h.events_for("bad-later")
            .iter()
            .any(|(r, n)| r == "InvalidSpec" && n.contains("spec.authentication.mechanism"))
    })
    .await;
    assert_eq!(
        h.sim.sim().connectors(ORG, ORG).len(),
        2,
        "only the good ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_that_never_reached_ovh_is_deleted_at_once() {
    let h = Harness::start(HOUR).await;
    let mut sc = connector_manifest("nowhere");
    sc.spec.credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "no-such-secret"})).unwrap());
    h.connectors()
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
    wait_for("a condition", Duration::from_secs(10), || {
        ready(&h.object::<SendConnector>("nowhere")).as_deref() == Some("False")
    })
    .await;
    h.connectors()
        .delete("nowhere", &DeleteParams::default())
        .await
        .unwrap();
    gone(&h, "nowhere").await;
    // The Event may be stored a moment after the object is gone.
    wait_for("the Deleted Event", Duration::from_secs(10), || {
        h.events_for("nowhere")
            .iter()
            .any(|(r, n)| r == "Deleted" && n.contains("nothing to delete"))
    })
    .await;
    let total: u64 = h.sim.sim().counters().values().sum();
    assert_eq!(total, 0, "no OVH request at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_shows_a_condition_at_once() {
    let h = Harness::start(HOUR).await;
    h.sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![FaultRule::new(FaultKind::Timeout)],
    });
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    // Long before the client's timeout (5 s here, 30 s by default).
    wait_for("a Reconciling condition", Duration::from_secs(2), || {
        let obj = h.object::<SendConnector>("relay");
        obj["status"]["conditions"].as_array().is_some_and(|a| {
            a.iter().any(|c| {
                c["type"] == "Reconciling"
                    && c["status"] == "True"
                    && c["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("waiting for OVH")
            })
        })
    })
    .await;
    h.sim.sim().set_faults(Faults::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_deleted_out_of_band_is_waited_for_not_a_stall() {
    let h = Harness::start(Duration::from_secs(2)).await;
    let old = bound_pair(&h).await;
    h.sim.sim().delete_connector(ORG, ORG, old).unwrap();
    // The binding notices at its next resync; it must wait for the new id, never stall.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mb = h.object::<sendconnector_operator::crd::MailboxBinding>("newsletter");
        let stalled = mb["status"]["conditions"].as_array().is_some_and(|a| {
            a.iter()
                .any(|c| c["type"] == "Stalled" && c["status"] == "True")
        });
        assert!(!stalled, "{:#}", mb["status"]);
        let sc = h.object::<SendConnector>("relay");
        let new = sc["status"]["connectorId"].as_i64();
        let account = h
            .sim
            .sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap();
        if new.is_some_and(|n| n != old)
            && account["sendConnectorId"].as_i64() == new
            && ready(&mb).as_deref() == Some("True")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:#}", mb["status"]);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_error_costs_at_most_three_requests_per_safety_period() {
    // The safety timer (1 h by default) shortened to 1 s: a stalled resource may cost at
    // most 3 OVH requests per period, so at most 3 an hour with the default.
    let period = Duration::from_secs(1);
    let h = Harness::start_with(HOUR, move |c| c.stalled_retry = period).await;
    let mut denied = connector_manifest("denied");
    denied.spec.credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "ovh-read-only"})).unwrap());
    h.connectors()
        .create(&PostParams::default(), &denied)
        .await
        .unwrap();
    h.wait_condition::<SendConnector>("denied", "False", "OvhError")
        .await;
    let before: u64 = h.sim.sim().counters().values().sum();
    let periods: u32 = 6;
    tokio::time::sleep(period * periods).await;
    let after: u64 = h.sim.sim().counters().values().sum();
    assert!(
        after - before <= 3 * u64::from(periods),
        "{} requests in {periods} periods: {:?}",
        after - before,
        h.sim.sim().counters()
    );
    assert!(after > before, "the safety timer does retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_is_refused_without_an_ovh_write() {
    // On the in-memory API only, whatever the backend asked for: a real API server refuses
    // the corpus at apply time (tests/crd.rs), so the operator never sees it there.
    let mut h = Harness::start_idle_unvalidated().await;
    // A real cluster refuses these at apply time (tests/crd.rs); here they are stored the way
    // a cluster without the CRD's rules would, and the operator must hold its ground.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let field = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# expect: ")
            .to_owned();
        let object: Value = serde_saphyr::from_str(&text).unwrap();
        corpus.push((field, object));
    }
    assert!(corpus.len() >= 40);
    for (_, object) in &corpus {
        if object["kind"] == "SendConnector" {
            create_raw::<SendConnector>(&h, object.clone()).await;
        } else {
            create_raw::<sendconnector_operator::crd::MailboxBinding>(&h, object.clone()).await;
        }
    }
    h.start_controller(HOUR);
    for (field, object) in &corpus {
        let name = object["metadata"]["name"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let leaf = field.rsplit('.').next().unwrap().split('[').next().unwrap();
        let names_field = |text: &str| text.contains(field.as_str()) || text.contains(leaf);
        wait_for(
            &format!("{kind} {name} refused naming {field}"),
            Duration::from_secs(20),
            || {
                let obj = if kind == "SendConnector" {
                    h.object::<SendConnector>(name)
                } else {
                    h.object::<sendconnector_operator::crd::MailboxBinding>(name)
                };
                let stalled = obj["status"]["conditions"].as_array().is_some_and(|a| {
                    a.iter().any(|c| {
                        c["type"] == "Ready"
                            && c["reason"] == "InvalidSpec"
                            && names_field(c["message"].as_str().unwrap_or(""))
                    })
                });
                stalled
                    || h.events_for(name)
                        .iter()
                        .any(|(r, n)| r == "InvalidSpec" && names_field(n))
            },
        )
        .await;
    }
    assert_eq!(h.ovh_writes(), 0, "not one OVH write for bad input");
}

/// One request matching `method` and `path` answered 2.5 s late.
fn one_slow_answer(h: &Harness, method: &str, path: &str) {
    h.sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![
            FaultRule::new(FaultKind::Latency { ms: 2500 })
                .method(method)
                .path_contains(path)
                .times(1),
        ],
    });
}

/// Watches `name` until it is Ready; once `on_record` holds for its status, it must hold for
/// every later status (the history is in the failure message).
async fn stays_on_record<K: kube::Resource<DynamicType = ()>>(
    h: &Harness,
    name: &str,
    on_record: impl Fn(&Value) -> bool,
) {
    let mut recorded = false;
    let mut statuses = Vec::new();
    wait_for(&format!("{name} Ready"), Duration::from_secs(20), || {
        let obj = h.object::<K>(name);
        let status = &obj["status"];
        if statuses.last() != Some(status) {
            statuses.push(status.clone());
        }
        let now = on_record(status);
        assert!(
            now || !recorded,
            "the record left the status: {statuses:#?}"
        );
        recorded |= now;
        ready(&obj).as_deref() == Some("True")
    })
    .await;
    assert!(recorded, "never on record: {statuses:#?}");
}

/// A create whose POST is slow to answer: the reconcile says it waits for OVH only if it has
/// said nothing yet. The intent recorded before the POST stays in status throughout, so a
/// crash at any moment leaves it on record (an announcement written over it would have erased
/// it, and with it the guard against a second POST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creation_intent_stays_on_record_while_a_slow_post_is_answered() {
    let h = Harness::start(HOUR).await;
    one_slow_answer(&h, "POST", "/sendConnector");
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    stays_on_record::<SendConnector>(&h, "relay", |status| {
        !status["creation"].is_null() || !status["connectorId"].is_null()
    })
    .await;
    assert_eq!(connectors_named(&h, "relay").len(), 1);
}

/// The binding's twin: the mailboxes recorded before its first PUT (what it may attach) stay
/// in status while that PUT is slow to answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bindings_targets_stay_on_record_while_a_slow_put_is_answered() {
    let h = Harness::start(HOUR).await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("relay").await;
    one_slow_answer(&h, "PUT", "/account/");
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    stays_on_record::<MailboxBinding>(&h, "newsletter", |status| {
        status["mailboxes"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
}
