//! SendConnector scenarios: diff-then-write, authentication, drift, restarts, lost answers,
//! adoption and conflicts. Real controllers, the in-memory Kubernetes API and the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::PostParams;
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use sendconnector_operator::ovh::model::{AuthMechanism, NewSendConnector};
use sendconnector_operator::ovh::{
    Budget, BudgetSettings, ClientOptions, Credentials, ExchangeClient, OvhClient,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

async fn ready_connector(h: &Harness, name: &str) -> i64 {
    h.connectors()
        .create(&PostParams::default(), &connector_manifest(name))
        .await
        .unwrap();
    let sc = h.wait_ready::<SendConnector>(name).await;
    h.wait_ovh_settled().await;
    sc["status"]["connectorId"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_is_one_put_of_the_changed_fields() {
    let h = Harness::start(HOUR).await;
    let id = ready_connector(&h, "relay").await;
    h.sim.sim().reset_counters();
    h.patch_connector("relay", json!({"spec": {"port": 2525, "maxSendSize": 50}}))
        .await;
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    assert_eq!(h.count("PUT", "/sendConnector/{id}"), 1);
    assert_eq!(h.ovh_writes(), 1, "nothing but the PUT");
    let c = h.sim.sim().connector(ORG, ORG, id).unwrap();
    assert_eq!(
        (c["port"].as_i64(), c["maxSendSize"].as_i64()),
        (Some(2525), Some(50))
    );
    let events = h.events_for("relay");
    assert!(
        events.iter().any(|(r, n)| r == "Updated"
            && n.contains("port")
            && n.contains("maxSendSize")
            && !n.contains("smartHost")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_password_changes_are_one_change_authentication_each() {
    let h = Harness::start(HOUR).await;
    let id = ready_connector(&h, "relay").await;

    h.sim.sim().reset_counters();
    h.patch_connector(
        "relay",
        json!({"spec": {"authentication": {"user": "other-user"}}}),
    )
    .await;
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    assert_eq!(
        h.count("POST", "/sendConnector/{id}/changeAuthentication"),
        1
    );
    assert_eq!(h.ovh_writes(), 1);
    assert_eq!(
        h.sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("relay-password-1")
    );

    // The Secret changes: the metadata-only watch reconciles at once and pushes it once.
    h.sim.sim().reset_counters();
    h.set_secret("relay-password", json!({"password": "relay-password-2"}))
        .await;
    wait_for("the new password on OVH", Duration::from_secs(20), || {
        h.sim.sim().connector_password(ORG, ORG, id).as_deref() == Some("relay-password-2")
    })
    .await;
    let sc = h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    assert_eq!(
        h.count("POST", "/sendConnector/{id}/changeAuthentication"),
        1
    );
    assert_eq!(h.ovh_writes(), 1);
    let applied = &sc["status"]["appliedAuthentication"]["passwordSecret"];
    assert!(
        applied["uid"].as_str().is_some_and(|u| !u.is_empty())
            && applied["resourceVersion"].as_str().is_some()
    );
    assert!(
        !sc.to_string().contains("relay-password-2"),
        "the password never goes into status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_edits_are_put_back_within_a_resync() {
    let h = Harness::start(Duration::from_millis(400)).await;
    let id = ready_connector(&h, "relay").await;
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("newsletter").await;
    h.wait_ovh_settled().await;

    h.sim
        .sim()
        .edit_connector(ORG, ORG, id, json!({"port": 25}))
        .unwrap();
    h.sim
        .sim()
        .edit_account(
            ORG,
            ORG,
            "contact@mydomain.ovh",
            json!({"sendConnectorId": 0}),
        )
        .unwrap();
    wait_for("the port put back", Duration::from_secs(20), || {
        h.sim.sim().connector(ORG, ORG, id).unwrap()["port"] == 587
    })
    .await;
    wait_for("the mailbox put back", Duration::from_secs(20), || {
        h.sim
            .sim()
            .account(ORG, ORG, "contact@mydomain.ovh")
            .unwrap()["sendConnectorId"]
            == id
    })
    .await;
    // The Events are stored a moment after the OVH writes they report.
    wait_for(
        "the connector's DriftCorrected Event",
        Duration::from_secs(10),
        || {
            h.events_for("relay")
                .iter()
                .any(|(r, n)| r == "DriftCorrected" && n.contains("port"))
        },
    )
    .await;
    wait_for(
        "the binding's DriftCorrected Event",
        Duration::from_secs(10),
        || {
            h.events_for("newsletter")
                .iter()
                .any(|(r, n)| r == "DriftCorrected" && n.contains("contact@mydomain.ovh"))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_nothing_changed_writes_nothing() {
    let mut h = Harness::start(Duration::from_millis(300)).await;
    ready_connector(&h, "relay").await;
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("newsletter").await;
    h.wait_ovh_settled().await;
    h.stop_controller().await;
    h.sim.sim().reset_counters();
    let k8s_writes = h.k8s_revision();
    h.start_controller(Duration::from_millis(300));
    // Both resources are read from OVH again, several times...
    wait_for(
        "reconciles after the restart",
        Duration::from_secs(20),
        || h.count("GET", "/sendConnector") >= 3 && h.count("GET", "/account") >= 3,
    )
    .await;
    // ...and nothing is written, neither to OVH nor to Kubernetes.
    assert_eq!(h.ovh_writes(), 0, "{:#?}", h.sim.sim().counters());
    assert_eq!(h.k8s_revision(), k8s_writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_and_a_restart_still_make_one_connector() {
    let mut h = Harness::start(HOUR).await;
    h.sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .path_contains("/sendConnector")
                .times(1),
        ],
        ..Faults::default()
    });
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    wait_for("the create applied on OVH", Duration::from_secs(20), || {
        h.sim.sim().connectors(ORG, ORG).len() == 1
    })
    .await;
    h.restart_controller().await;
    let sc = h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    let on_ovh = h.sim.sim().connectors(ORG, ORG);
    assert_eq!(on_ovh.len(), 1, "exactly one connector");
    assert_eq!(sc["status"]["connectorId"], on_ovh[0]["id"]);
    assert_eq!(h.count("POST", "/sendConnector"), 1, "never created twice");
    assert_eq!(
        h.count("POST", "/sendConnector/{id}/changeAuthentication"),
        0,
        "the lost POST carried the password: {:?} {:#}",
        h.events_for("relay"),
        sc["status"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_connector_is_adopted_not_duplicated() {
    let h = Harness::start(HOUR).await;
    let mut creds = BTreeMap::new();
    for (k, v) in [
        ("endpoint", h.sim.base_url()),
        ("applicationKey", "ak".into()),
        ("applicationSecret", "as-secret".into()),
        ("consumerKey", "ck-secret".into()),
    ] {
        creds.insert(k.to_owned(), v);
    }
    let client = OvhClient::new(
        Credentials::from_map(&creds).unwrap(),
        Arc::new(Budget::new(BudgetSettings {
            rate: 100.0,
            burst: 100,
        })),
        ClientOptions::default(),
    )
    .unwrap();
    let api = ExchangeClient::new(client).service(ORG, ORG);
    api.create_send_connector(&NewSendConnector {
        display_name: "relay".into(),
        smart_host: "smtp-relay.example.com".into(),
        port: 587,
        require_tls: true,
        max_send_size: 100,
        smart_host_auth_mechanism: AuthMechanism::BasicAuthRequireTls,
        user: Some("relay-user".into()),
        password: Some("set-by-hand".into()),
    })
    .await
    .unwrap();
    h.wait_ovh_settled().await;
    let existing = h.sim.sim().connectors(ORG, ORG)[0]["id"].as_i64().unwrap();
    h.sim.sim().reset_counters();

    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(sc["status"]["connectorId"], existing);
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);
    assert_eq!(h.count("POST", "/sendConnector"), 0);
    // The password is write-only on OVH: it is set once, from the Secret.
    assert_eq!(
        h.count("POST", "/sendConnector/{id}/changeAuthentication"),
        1
    );
    assert_eq!(
        h.sim
            .sim()
            .connector_password(ORG, ORG, existing)
            .as_deref(),
        Some("relay-password-1")
    );
    let events = h.events_for("relay");
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "Adopted" && n.contains("Delete")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claims_on_one_connector_or_mailbox_leave_the_second_in_conflict() {
    let h = Harness::start(Duration::from_millis(400)).await;
    let id = ready_connector(&h, "first").await;
    let mut second = connector_manifest("second");
    second.spec.display_name = Some("first".into());
    h.connectors()
        .create(&PostParams::default(), &second)
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("second", "False", "Conflict")
        .await;
    let message = ready_message(&sc);
    assert!(message.contains(&format!("{}/first", h.ns)), "{message}");
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);

    // Two bindings claim contact@: the second, on another connector, must not flip it.
    let other = ready_connector(&h, "other").await;
    h.bindings()
        .create(&PostParams::default(), &binding_manifest("a", "first"))
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("a").await;
    let mut b = binding_manifest("b", "other");
    b.spec.mailboxes = vec!["contact@mydomain.ovh".into()];
    b.spec.default_for_domains = vec![];
    h.bindings()
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
    let mb = h
        .wait_condition::<MailboxBinding>("b", "False", "Conflict")
        .await;
    assert!(
        mb["status"]["conditions"]
            .to_string()
            .contains(&format!("{}/a", h.ns)),
        "{:#}",
        mb["status"]
    );
    // Several resyncs later the mailbox still sends through the first binding's connector.
    let lists = h.count("GET", "/account");
    wait_for("resyncs", Duration::from_secs(20), || {
        h.count("GET", "/account") >= lists + 4
    })
    .await;
    assert_eq!(
        h.sim
            .sim()
            .account(ORG, ORG, "contact@mydomain.ovh")
            .unwrap()["sendConnectorId"],
        id
    );
    assert_ne!(id, other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_resources_write_nothing_and_a_requested_reconcile_is_echoed() {
    let h = Harness::start(HOUR).await;
    let id = ready_connector(&h, "relay").await;
    h.patch_connector("relay", json!({"metadata": {"annotations": {"sendconnector.io/paused": "true"}}, "spec": {"port": 2525}})).await;
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "Paused")
        .await;
    let conditions = sc["status"]["conditions"].as_array().unwrap();
    for type_ in ["Reconciling", "Stalled"] {
        assert_eq!(
            conditions.iter().find(|c| c["type"] == type_).unwrap()["status"],
            "False",
            "{type_}"
        );
    }
    h.sim.sim().reset_counters();
    h.patch_connector(
        "relay",
        json!({"metadata": {"annotations": {"sendconnector.io/reconcile-requested-at": "first"}}}),
    )
    .await;
    wait_for("the request echoed", Duration::from_secs(20), || {
        h.object::<SendConnector>("relay")["status"]["lastHandledReconcileAt"] == "first"
    })
    .await;
    assert_eq!(h.ovh_writes(), 0, "paused: no OVH write");
    assert_eq!(h.sim.sim().connector(ORG, ORG, id).unwrap()["port"], 587);

    h.patch_connector(
        "relay",
        json!({"metadata": {"annotations": {"sendconnector.io/paused": null}}}),
    )
    .await;
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ovh_settled().await;
    assert_eq!(h.sim.sim().connector(ORG, ORG, id).unwrap()["port"], 2525);

    // A new request value makes a reconcile happen now (OVH is read again) and is echoed.
    let reads = h.count("GET", "/sendConnector");
    h.patch_connector(
        "relay",
        json!({"metadata": {"annotations": {"sendconnector.io/reconcile-requested-at": "second"}}}),
    )
    .await;
    wait_for("the second request echoed", Duration::from_secs(20), || {
        h.object::<SendConnector>("relay")["status"]["lastHandledReconcileAt"] == "second"
    })
    .await;
    assert!(h.count("GET", "/sendConnector") > reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_plan_in_status_and_events_and_writes_nothing() {
    let h = Harness::start_with(HOUR, |c| c.dry_run = true).await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "DryRun")
        .await;
    let mb = h
        .wait_condition::<MailboxBinding>("newsletter", "False", "DryRun")
        .await;
    assert_eq!(h.ovh_writes(), 0);
    let plan = sc["status"]["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(plan[0]["method"], "POST");
    assert!(
        plan[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("/sendConnector")
    );
    let body = plan[0]["body"].as_str().unwrap();
    assert!(
        body.contains("**********") && !body.contains("relay-password-1"),
        "{body}"
    );
    assert_eq!(
        mb["status"]["plan"].as_array().unwrap().len(),
        3,
        "two mailboxes and a domain"
    );
    assert!(
        h.events_for("relay")
            .iter()
            .any(|(r, n)| r == "Planned" && n.contains("POST")),
        "{:?}",
        h.events_for("relay")
    );
    assert!(
        !serde_json::to_string(&h.events())
            .unwrap()
            .contains("relay-password-1")
    );
}
