//! Scenario tests: the real kube-runtime controllers against the in-memory Kubernetes API and
//! the OVH simulator over HTTP, asserting both the resources' status and the simulator's state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::PostParams;
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connector_and_binding_converge_once_and_then_stay_quiet() {
    let mut h = Harness::start(Duration::from_millis(500)).await;
    h.connectors()
        .create(
            &PostParams::default(),
            &connector_manifest("newsletter-relay"),
        )
        .await
        .unwrap();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "newsletter-relay"),
        )
        .await
        .unwrap();

    wait_for("the connector to be Ready", Duration::from_secs(20), || {
        ready(&h.object::<SendConnector>("newsletter-relay")).as_deref() == Some("True")
    })
    .await;
    let sc = h.object::<SendConnector>("newsletter-relay");
    let id = sc["status"]["connectorId"]
        .as_i64()
        .expect("connectorId in status");
    assert_eq!(
        sc["status"]["lastTask"]["function"],
        "addSendConnector",
        "{:#?} {:#?}",
        h.sim.sim().counters(),
        h.events()
            .iter()
            .map(|e| e["note"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(sc["status"]["lastTask"]["status"], "done");
    assert_eq!(sc["status"]["applied_authentication"], Value::Null);
    assert_eq!(
        sc["status"]["appliedAuthentication"]["passwordSecret"]["name"],
        "relay-password"
    );
    assert!(
        sc["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "sendconnector.io/cleanup")
    );
    let on_ovh = h.sim.sim().connectors(ORG, ORG);
    assert_eq!(on_ovh.len(), 1, "created exactly once");
    assert_eq!(on_ovh[0]["displayName"], "newsletter-relay");
    assert_eq!(on_ovh[0]["port"], 587);
    assert_eq!(
        h.sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("relay-password-1")
    );
    assert_eq!(h.counter(&format!("POST {P}/sendConnector")), 1);

    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&h.object::<MailboxBinding>("newsletter")).as_deref() != Some("True") {
        assert!(
            Instant::now() < deadline,
            "binding never Ready: {:#} {:#?}",
            h.object::<MailboxBinding>("newsletter")["status"],
            h.sim.sim().counters()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mb = h.object::<MailboxBinding>("newsletter");
    assert_eq!(mb["status"]["bound"], "3/3");
    assert_eq!(mb["status"]["connectorId"], id);
    for address in ["newsletter@mydomain.ovh", "contact@mydomain.ovh"] {
        assert_eq!(
            h.sim.sim().account(ORG, ORG, address).unwrap()["sendConnectorId"],
            id,
            "{address}"
        );
    }
    assert_eq!(
        h.sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"],
        id
    );

    // The printer columns (kubectl shows their names upper-cased) carry the status.
    let crds = sendconnector_operator::crd::crds();
    let cells = |crd: usize, obj: &Value| -> std::collections::BTreeMap<String, String> {
        memory_apiserver::table::printer_cells(&crds[crd], obj)
            .into_iter()
            .collect()
    };
    let sc_cells = cells(0, &h.object::<SendConnector>("newsletter-relay"));
    assert_eq!(sc_cells["Ready"], "True");
    assert_eq!(sc_cells["Reason"], "Ready");
    assert_eq!(sc_cells["ID"], id.to_string());
    assert_eq!(sc_cells["SmartHost"], "smtp-relay.example.com");
    let mb_cells = cells(1, &h.object::<MailboxBinding>("newsletter"));
    assert_eq!(
        (
            mb_cells["Ready"].as_str(),
            mb_cells["Connector"].as_str(),
            mb_cells["Bound"].as_str(),
            mb_cells["Reason"].as_str()
        ),
        ("True", "newsletter-relay", "3/3", "Ready")
    );

    // Resyncs with nothing changed: OVH is read again, but nothing is written anywhere.
    let ovh_writes = h.sim.sim().write_count();
    let k8s_writes = h.k8s_revision();
    let lists = h.counter(&format!("GET {P}/sendConnector"));
    wait_for("two more resyncs", Duration::from_secs(20), || {
        h.counter(&format!("GET {P}/sendConnector")) >= lists + 2
    })
    .await;
    let accounts_read = h.counter(&format!("GET {P}/account"));
    wait_for("a binding resync", Duration::from_secs(20), || {
        h.counter(&format!("GET {P}/account")) > accounts_read
    })
    .await;
    assert_eq!(
        h.sim.sim().write_count(),
        ovh_writes,
        "no OVH write on resync"
    );
    assert_eq!(
        h.k8s_revision(),
        k8s_writes,
        "no Kubernetes write on resync"
    );
    h.stop.take();
}
