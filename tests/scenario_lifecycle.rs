//! Deletion, failure and recovery scenarios: finalizers that stay exactly as long as OVH is
//! not done, tasks that fail or vanish, terminal and retryable OVH errors, missing mailboxes,
//! and a namespace deleted with its credentials first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::{Value, json};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

async fn gone<K: kube::Resource<DynamicType = ()>>(h: &Harness, name: &str) {
    wait_for(
        &format!("{name} to be gone"),
        Duration::from_secs(30),
        || h.object::<K>(name).is_null(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_puts_mailboxes_back_then_deletes_the_connector_once_unused() {
    let h = Harness::start(HOUR).await;
    let id = bound_pair(&h).await;

    // The connector is still used: its deletion waits, naming the binding, and OVH keeps it.
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "DeletionBlocked")
        .await;
    assert!(
        ready_message(&sc).contains("newsletter"),
        "{}",
        ready_message(&sc)
    );
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);
    assert_eq!(h.count("DELETE", "/sendConnector/{id}"), 0);

    // The binding goes first, putting everything back to 0.
    h.bindings()
        .delete("newsletter", &DeleteParams::default())
        .await
        .unwrap();
    gone::<MailboxBinding>(&h, "newsletter").await;
    for address in ["newsletter@mydomain.ovh", "contact@mydomain.ovh"] {
        assert_eq!(
            h.sim.sim().account(ORG, ORG, address).unwrap()["sendConnectorId"],
            0,
            "{address}"
        );
    }
    assert_eq!(
        h.sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"],
        0
    );

    // Then the connector: one DELETE, its task followed to the end, then the finalizer goes.
    gone::<SendConnector>(&h, "relay").await;
    assert!(h.sim.sim().connector(ORG, ORG, id).is_none());
    assert_eq!(h.count("DELETE", "/sendConnector/{id}"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_leaves_ovh_untouched() {
    let h = Harness::start(HOUR).await;
    let id = bound_pair(&h).await;
    h.patch_binding("newsletter", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    h.patch_connector("relay", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ready::<MailboxBinding>("newsletter").await;
    h.sim.sim().reset_counters();
    h.bindings()
        .delete("newsletter", &DeleteParams::default())
        .await
        .unwrap();
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    gone::<MailboxBinding>(&h, "newsletter").await;
    gone::<SendConnector>(&h, "relay").await;
    assert_eq!(h.ovh_writes(), 0);
    assert!(h.sim.sim().connector(ORG, ORG, id).is_some());
    assert_eq!(
        h.sim
            .sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap()["sendConnectorId"],
        id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_stays_until_ovh_confirms_the_delete() {
    let h = Harness::start(HOUR).await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let id = h.wait_ready::<SendConnector>("relay").await["status"]["connectorId"]
        .as_i64()
        .unwrap();
    h.wait_ovh_settled().await;
    h.sim.sim().set_faults(Faults {
        rules: vec![FaultRule::new(FaultKind::Status500).method("DELETE")],
        ..Faults::default()
    });
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("several refused deletes", Duration::from_secs(30), || {
        h.count("DELETE", "/sendConnector/{id}") >= 4
    })
    .await;
    let sc = h.object::<SendConnector>("relay");
    assert!(
        sc["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "sendconnector.io/cleanup")),
        "the finalizer stays while OVH refuses"
    );
    assert_eq!(
        condition(&sc, "Reconciling")["status"],
        "True",
        "{:#}",
        sc["status"]
    );
    assert!(h.sim.sim().connector(ORG, ORG, id).is_some());
    h.sim.sim().set_faults(Faults::default());
    gone::<SendConnector>(&h, "relay").await;
    assert!(h.sim.sim().connector(ORG, ORG, id).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_reported_with_its_id_then_retried() {
    let h = Harness::start_with(HOUR, |c| c.backoff_base = Duration::from_secs(3)).await;
    h.sim.sim().fail_next_task(Some("addSendConnector"));
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "TaskFailed")
        .await;
    let task = sc["status"]["lastTask"].clone();
    assert_eq!(
        (task["function"].as_str(), task["status"].as_str()),
        (Some("addSendConnector"), Some("error"))
    );
    let id = task["id"].as_i64().unwrap();
    assert!(
        ready_message(&sc).contains(&id.to_string())
            && ready_message(&sc).contains("addSendConnector"),
        "{}",
        ready_message(&sc)
    );
    // After the backoff it tries again and gets there.
    h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_tasks_are_judged_from_the_object() {
    let h = Harness::start(HOUR).await;
    h.sim.sim().update_settings(|s| s.vanishing_tasks = true);
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(sc["status"]["lastTask"]["function"], "addSendConnector");
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_stalls_without_a_hot_loop() {
    let h = Harness::start(Duration::from_millis(300)).await;
    let mut denied = connector_manifest("denied");
    denied.spec.credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "ovh-read-only"})).unwrap());
    h.connectors()
        .create(&PostParams::default(), &denied)
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("denied", "False", "OvhError")
        .await;
    let stalled = condition(&sc, "Stalled");
    assert_eq!(stalled["status"], "True", "{:#}", sc["status"]);
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains("This call has not been granted") && message.contains("X-Ovh-QueryID"),
        "{message}"
    );
    let posts = h.count("POST", "/sendConnector");
    // A healthy pair goes through many resyncs meanwhile; the stalled one does not retry.
    bound_pair(&h).await;
    let reads = h.count("GET", "/account");
    wait_for(
        "resyncs of the healthy binding",
        Duration::from_secs(20),
        || h.count("GET", "/account") >= reads + 4,
    )
    .await;
    assert_eq!(
        h.count("POST", "/sendConnector"),
        posts + 1,
        "only the healthy connector's create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_back_off_then_recover() {
    let h = Harness::start(HOUR).await;
    h.sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::TooManyRequests {
                retry_after_seconds: 0,
            })
            .method("GET")
            .path_contains("/sendConnector")
            .times(4),
            FaultRule::new(FaultKind::Status500)
                .method("GET")
                .path_contains("/sendConnector")
                .times(4),
        ],
        ..Faults::default()
    });
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "OvhError")
        .await;
    assert_eq!(condition(&sc, "Reconciling")["status"], "True");
    assert_eq!(condition(&sc, "Stalled")["status"], "False");
    h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_mailbox_is_reported_and_bound_once_created() {
    let h = Harness::start(HOUR).await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let id = h.wait_ready::<SendConnector>("relay").await["status"]["connectorId"]
        .as_i64()
        .unwrap();
    let mut b = binding_manifest("newsletter", "relay");
    b.spec.mailboxes = vec![
        "newsletter@mydomain.ovh".into(),
        "later@mydomain.ovh".into(),
    ];
    h.bindings()
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
    let mb = h
        .wait_condition::<MailboxBinding>("newsletter", "False", "MailboxNotFound")
        .await;
    assert!(
        ready_message(&mb).contains("later@mydomain.ovh"),
        "{}",
        ready_message(&mb)
    );
    let phases: Vec<(String, String)> = mb["status"]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_owned(),
                m["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        phases.contains(&("later@mydomain.ovh".into(), "NotFound".into())),
        "{phases:?}"
    );
    wait_for("the other mailbox bound", Duration::from_secs(20), || {
        h.sim
            .sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap()["sendConnectorId"]
            == id
    })
    .await;

    h.sim
        .sim()
        .create_account(ORG, ORG, "later@mydomain.ovh")
        .unwrap();
    let mb = h.wait_ready::<MailboxBinding>("newsletter").await;
    assert_eq!(mb["status"]["bound"], "3/3");
    assert_eq!(
        h.sim.sim().account(ORG, ORG, "later@mydomain.ovh").unwrap()["sendConnectorId"],
        id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_credentials_first_says_how_to_let_go() {
    let mut h = Harness::start_idle().await;
    // The cluster-wide rules in both RBAC modes: the namespace controller deletes the Roles
    // of a namespace being deleted too, and with them the rights of an operator limited to
    // Roles (the chart's watchNamespaces) to finish its finalizers there.
    h.rbac = backend::Rbac::Cluster;
    h.start_controller(HOUR);
    let id = bound_pair(&h).await;
    // The credentials first, then the namespace: a real namespace controller deletes kinds
    // in an order of its own.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client.clone(), &h.ns);
    for secret in ["ovh-api", "relay-password", "ovh-read-only"] {
        secrets
            .delete(secret, &DeleteParams::default())
            .await
            .unwrap();
    }
    let namespaces: Api<Namespace> = Api::all(h.client.clone());
    namespaces
        .delete(&h.ns, &DeleteParams::default())
        .await
        .unwrap();
    // The Secrets are gone at once; the resources wait, and say why and what to do.
    let mb = h
        .wait_condition::<MailboxBinding>("newsletter", "False", "DeletionBlocked")
        .await;
    assert!(
        ready_message(&mb).contains("deletionPolicy: Orphan"),
        "{}",
        ready_message(&mb)
    );
    assert_eq!(condition(&mb, "Stalled")["status"], "True");
    h.patch_binding("newsletter", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    gone::<MailboxBinding>(&h, "newsletter").await;
    wait_for(
        "the connector to name the way out",
        Duration::from_secs(30),
        || ready_message(&h.object::<SendConnector>("relay")).contains("deletionPolicy: Orphan"),
    )
    .await;
    let sc = h.object::<SendConnector>("relay");
    assert_eq!(condition(&sc, "Ready")["reason"], "DeletionBlocked");
    h.patch_connector("relay", json!({"spec": {"deletionPolicy": "Orphan"}}))
        .await;
    gone::<SendConnector>(&h, "relay").await;
    assert!(
        h.sim.sim().connector(ORG, ORG, id).is_some(),
        "Orphan leaves OVH as it is"
    );
}

/// A SendConnector named `name` in `namespace` whose OVH credentials are that namespace's
/// Secret `ovh-api`.
async fn connector_in(h: &Harness, namespace: &str, name: &str) {
    let mut sc = connector_manifest(name);
    sc.metadata.namespace = Some(namespace.to_owned());
    sc.spec.authentication = None;
    Api::<SendConnector>::namespaced(h.client.clone(), namespace)
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_application_secret_spoils_only_its_own_secret_and_a_fix_needs_no_restart() {
    let mut h = Harness::start_idle().await;
    let team_a = h.namespace("team-a").await;
    let team_b = h.namespace("team-b").await;
    h.start_controller(HOUR);
    let good = h.credentials_data();
    let mut wrong = good.clone();
    wrong["applicationSecret"] = json!("not-the-application-secret");
    h.create_secret(&team_b, "ovh-api", wrong).await;
    h.create_secret(&team_a, "ovh-api", good).await;

    // The wrong Secret is used first, so its client is the first one built for these keys.
    connector_in(&h, &team_b, "relay-b").await;
    let b = h
        .wait_condition_in::<SendConnector>(&team_b, "relay-b", "False", "OvhError")
        .await;
    let stalled = condition(&b, "Stalled");
    assert_eq!(stalled["status"], "True", "{:#}", b["status"]);
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("Invalid signature"),
        "{stalled:#}"
    );

    // Same application key and consumer key, the right secret: unaffected by the wrong one.
    connector_in(&h, &team_a, "relay-a").await;
    h.wait_condition_in::<SendConnector>(&team_a, "relay-a", "True", "Ready")
        .await;

    // Fixing the Secret is enough: no restart.
    h.set_secret_in(
        &team_b,
        "ovh-api",
        json!({"applicationSecret": "as-secret"}),
    )
    .await;
    h.wait_condition_in::<SendConnector>(&team_b, "relay-b", "True", "Ready")
        .await;
    assert_eq!(h.sim.sim().connectors(ORG, ORG).len(), 2);

    // And the other way round: a good client already built does not vouch for a wrong secret.
    h.set_secret_in(
        &team_b,
        "ovh-api",
        json!({"applicationSecret": "wrong-again"}),
    )
    .await;
    h.wait_condition_in::<SendConnector>(&team_b, "relay-b", "False", "OvhError")
        .await;
    h.wait_condition_in::<SendConnector>(&team_a, "relay-a", "True", "Ready")
        .await;
}

/// The most a condition message may hold, in bytes.
const CONDITION_MESSAGE_LIMIT: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ovh_error_message_leaves_a_bounded_condition() {
    let h = Harness::start(HOUR).await;
    h.sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::Status400 {
                message_bytes: 3 << 20,
            })
            .method("POST")
            .path_contains("/sendConnector"),
        ],
        ..Faults::default()
    });
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("relay", "False", "OvhError")
        .await;
    for type_ in ["Ready", "Stalled"] {
        let message = condition(&sc, type_)["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.len() <= CONDITION_MESSAGE_LIMIT,
            "{type_}: {} bytes",
            message.len()
        );
        assert!(
            message.contains("HTTP 400") && message.contains("Invalid parameter: xxx"),
            "{message}"
        );
        assert!(message.contains("more characters)"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_of_many_missing_mailboxes_has_a_bounded_message() {
    let h = Harness::start(HOUR).await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("relay").await;
    // As many as the schema allows (100), none on OVH.
    let mut b = binding_manifest("many", "relay");
    b.spec.mailboxes = (0..100)
        .map(|i| format!("missing-mailbox-{i:03}@mydomain.ovh"))
        .collect();
    b.spec.default_for_domains = Vec::new();
    h.bindings()
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
    let mb = h
        .wait_condition::<MailboxBinding>("many", "False", "MailboxNotFound")
        .await;
    let message = ready_message(&mb);
    assert!(
        message.len() <= CONDITION_MESSAGE_LIMIT,
        "{} bytes: {message}",
        message.len()
    );
    assert!(
        message.contains("missing-mailbox-000@mydomain.ovh") && message.contains("more"),
        "{message}"
    );
    assert!(message.contains("0/100"), "{message}");
    assert_eq!(mb["status"]["mailboxes"].as_array().unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_names_the_real_service_path() {
    let h = Harness::start(HOUR).await;
    let mut denied = connector_manifest("denied");
    denied.spec.credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "ovh-read-only"})).unwrap());
    h.connectors()
        .create(&PostParams::default(), &denied)
        .await
        .unwrap();
    let sc = h
        .wait_condition::<SendConnector>("denied", "False", "OvhError")
        .await;
    let message = ready_message(&sc);
    assert!(
        message.contains(&format!(
            "POST /email/exchange/{ORG}/service/{ORG}/sendConnector"
        )),
        "{message}"
    );
    assert!(!message.contains("{organizationName}"), "{message}");
    assert!(!message.contains("{exchangeService}"), "{message}");
}
