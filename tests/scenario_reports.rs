//! What the resources report while OVH works and after: every task in status, Events that
//! each stay readable and true, and conflicts that end with their cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::{DeleteParams, PostParams};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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

fn binding(name: &str, connector: &str, mailboxes: &[&str]) -> MailboxBinding {
    serde_json::from_value(json!({
        "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
        "metadata": {"name": name},
        "spec": {"connectorRef": {"name": connector}, "mailboxes": mailboxes, "deletionPolicy": "Delete"}
    }))
    .unwrap()
}

/// Polls the object until `check` holds, and returns it.
async fn poll<K: kube::Resource<DynamicType = ()>>(
    h: &Harness,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let obj = h.object::<K>(name);
        if check(&obj) {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#}",
            obj["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn slow_tasks(h: &Harness) {
    h.sim.sim().update_settings(|s| {
        s.task_todo_seconds = 1.0;
        s.task_doing_seconds = 0.5;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_update_task_is_pending_then_last_in_status() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    slow_tasks(&h);
    h.patch_connector("relay", json!({"spec": {"port": 2525, "maxSendSize": 50}}))
        .await;
    let sc = poll::<SendConnector>(
        &h,
        "relay",
        "the setSendConnector task in status.pendingTask",
        Duration::from_secs(10),
        |o| o["status"]["pendingTask"]["function"] == "setSendConnector",
    )
    .await;
    let task = sc["status"]["pendingTask"]["id"].as_i64().unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(
        sc["status"]["lastTask"]["id"].as_i64(),
        Some(task),
        "{sc:#}"
    );
    assert_eq!(sc["status"]["lastTask"]["function"], "setSendConnector");
    assert_eq!(sc["status"]["lastTask"]["status"], "done");
    assert!(sc["status"]["pendingTask"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_task_is_pending_then_last_in_status() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    slow_tasks(&h);
    h.patch_connector(
        "relay",
        json!({"spec": {"authentication": {"user": "other-user"}}}),
    )
    .await;
    let sc = poll::<SendConnector>(
        &h,
        "relay",
        "the changeAuthentication task in status.pendingTask",
        Duration::from_secs(10),
        |o| o["status"]["pendingTask"]["function"] == "changeAuthentication",
    )
    .await;
    let task = sc["status"]["pendingTask"]["id"].as_i64().unwrap();
    let sc = h.wait_ready::<SendConnector>("relay").await;
    assert_eq!(
        sc["status"]["lastTask"]["id"].as_i64(),
        Some(task),
        "{sc:#}"
    );
    assert_ne!(sc["status"]["lastTask"]["function"], "addSendConnector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_attach_task_is_in_the_mailbox_entry_while_it_runs() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    slow_tasks(&h);
    h.bindings()
        .create(
            &PostParams::default(),
            &binding("newsletter", "relay", &["newsletter@mydomain.ovh"]),
        )
        .await
        .unwrap();
    let mb = poll::<MailboxBinding>(
        &h,
        "newsletter",
        "the setAccount task in status.mailboxes[].taskId",
        Duration::from_secs(10),
        |o| o["status"]["mailboxes"][0]["taskId"].as_i64().is_some(),
    )
    .await;
    let entry = &mb["status"]["mailboxes"][0];
    assert_eq!(entry["phase"], "Pending", "{entry:#}");
    let task = entry["taskId"].as_i64().unwrap();
    let account = h
        .sim
        .sim()
        .account(ORG, ORG, "newsletter@mydomain.ovh")
        .unwrap();
    assert!(
        account["taskPendingId"].as_i64() == Some(task)
            || h.sim.sim().task(ORG, ORG, task).unwrap()["function"] == "setAccount",
        "{account:#}"
    );
    let mb = h.wait_ready::<MailboxBinding>("newsletter").await;
    let entry = &mb["status"]["mailboxes"][0];
    assert_eq!(entry["phase"], "Bound");
    assert!(entry["taskId"].is_null(), "cleared once done: {entry:#}");
}

/// The stored Events about `name`, raw.
fn raw_events(h: &Harness, name: &str) -> Vec<Value> {
    h.events()
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name)
        .collect()
}

fn count(e: &Value) -> i64 {
    e["series"]["count"].as_i64().unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binding_event_stays_readable_and_true() {
    let h = Harness::start(HOUR).await;
    let id = ready_connector(&h, "relay").await;
    let (a, b) = ("newsletter@mydomain.ovh", "contact@mydomain.ovh");
    h.bindings()
        .create(&PostParams::default(), &binding("mb", "relay", &[a, b]))
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("mb").await;
    h.wait_ovh_settled().await;
    h.patch_binding("mb", json!({"spec": {"mailboxes": [a]}}))
        .await;
    wait_for("contact back to 0", Duration::from_secs(20), || {
        h.sim.sim().account(ORG, ORG, b).unwrap()["sendConnectorId"] == 0
    })
    .await;
    h.wait_ready::<MailboxBinding>("mb").await;
    h.wait_ovh_settled().await;
    h.patch_binding(
        "mb",
        json!({"spec": {"defaultForDomains": ["mydomain.ovh"]}}),
    )
    .await;
    h.wait_ready::<MailboxBinding>("mb").await;
    h.wait_ovh_settled().await;
    h.patch_binding("mb", json!({"spec": {"defaultForDomains": []}}))
        .await;
    wait_for(
        "the domain default back to 0",
        Duration::from_secs(20),
        || h.sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"] == 0,
    )
    .await;
    h.wait_ready::<MailboxBinding>("mb").await;
    let events = raw_events(&h, "mb");
    let notes: Vec<(String, String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
                count(e),
            )
        })
        .collect();
    // Both attachments are readable, each naming the connector.
    let attached: Vec<&(String, String, i64)> =
        notes.iter().filter(|(r, _, _)| r == "Attached").collect();
    for address in [a, b] {
        assert!(
            attached
                .iter()
                .any(|(_, n, _)| n.contains(address) && n.contains(&format!("connector {id}"))),
            "{address} attached: {notes:#?}"
        );
    }
    // The detach names contact, and only contact.
    let detached: Vec<&(String, String, i64)> =
        notes.iter().filter(|(r, _, _)| r == "Detached").collect();
    assert!(detached.iter().any(|(_, n, _)| n.contains(b)), "{notes:#?}");
    assert!(
        detached.iter().all(|(_, n, _)| !n.contains(a)),
        "{notes:#?}"
    );
    // The domain default set, and cleared, each readable and true.
    let set: Vec<&(String, String, i64)> = notes
        .iter()
        .filter(|(r, n, _)| r == "DomainDefaultSet" && n.contains("mydomain.ovh"))
        .collect();
    assert!(
        set.iter()
            .any(|(_, n, _)| n.contains(&format!("connector {id}"))),
        "{notes:#?}"
    );
    assert!(
        set.iter().all(|(_, _, c)| *c == 1),
        "the set happened once: {notes:#?}"
    );
    assert!(
        notes.iter().any(|(r, n, _)| r == "DomainDefaultCleared"
            && n.contains("mydomain.ovh")
            && !n.contains(&format!("connector {id}"))),
        "the cleared default has its own Event: {notes:#?}"
    );
    // A note counted more than once stands for that many identical facts: none here.
    for (reason, note, c) in &notes {
        assert_eq!(*c, 1, "{reason} {note:?} counted {c}: {notes:#?}");
    }
}

/// Waits up to `timeout` for Ready=True.
async fn ready_within<K: kube::Resource<DynamicType = ()>>(
    h: &Harness,
    name: &str,
    timeout: Duration,
) -> Value {
    poll::<K>(h, name, &format!("{name} Ready"), timeout, |o| {
        o["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && c["observedGeneration"] == o["metadata"]["generation"]
            })
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_conflict_ends_as_soon_as_the_winner_is_deleted() {
    let h = Harness::start(HOUR).await;
    let id = ready_connector(&h, "relay").await;
    let address = "newsletter@mydomain.ovh";
    h.bindings()
        .create(
            &PostParams::default(),
            &binding("first", "relay", &[address]),
        )
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("first").await;
    h.wait_ovh_settled().await;
    h.bindings()
        .create(
            &PostParams::default(),
            &binding("second", "relay", &[address]),
        )
        .await
        .unwrap();
    h.wait_condition::<MailboxBinding>("second", "False", "Conflict")
        .await;
    h.bindings()
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    ready_within::<MailboxBinding>(&h, "second", Duration::from_secs(5)).await;
    eprintln!("second Ready {:?} after the delete", started.elapsed());
    wait_for("first gone", Duration::from_secs(10), || {
        h.object::<MailboxBinding>("first").is_null()
    })
    .await;
    h.wait_ovh_settled().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.wait_ovh_settled().await;
    assert_eq!(
        h.sim.sim().account(ORG, ORG, address).unwrap()["sendConnectorId"].as_i64(),
        Some(id),
        "the winner's release left the mailbox the loser now holds"
    );
    let second = h.wait_ready::<MailboxBinding>("second").await;
    assert_eq!(second["status"]["mailboxes"][0]["phase"], "Bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_conflict_ends_when_the_winner_drops_the_mailbox() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    let (a, b) = ("newsletter@mydomain.ovh", "contact@mydomain.ovh");
    h.bindings()
        .create(&PostParams::default(), &binding("first", "relay", &[a, b]))
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("first").await;
    h.wait_ovh_settled().await;
    h.bindings()
        .create(&PostParams::default(), &binding("second", "relay", &[a]))
        .await
        .unwrap();
    h.wait_condition::<MailboxBinding>("second", "False", "Conflict")
        .await;
    h.patch_binding("first", json!({"spec": {"mailboxes": [b]}}))
        .await;
    ready_within::<MailboxBinding>(&h, "second", Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mailbox_is_attached_to_a_connector_being_deleted() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    h.bindings()
        .create(
            &PostParams::default(),
            &binding("first", "relay", &["newsletter@mydomain.ovh"]),
        )
        .await
        .unwrap();
    h.wait_ready::<MailboxBinding>("first").await;
    h.wait_ovh_settled().await;
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_condition::<SendConnector>("relay", "False", "DeletionBlocked")
        .await;
    let writes = h.ovh_writes();
    h.bindings()
        .create(
            &PostParams::default(),
            &binding("late", "relay", &["contact@mydomain.ovh"]),
        )
        .await
        .unwrap();
    let late = h
        .wait_condition::<MailboxBinding>("late", "False", "ConnectorDeleting")
        .await;
    let message = ready_message(&late);
    assert!(message.contains("relay"), "{message}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.ovh_writes(), writes, "no OVH write");
    assert_eq!(
        h.sim
            .sim()
            .account(ORG, ORG, "contact@mydomain.ovh")
            .unwrap()["sendConnectorId"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_conflict_ends_as_soon_as_the_winner_is_deleted() {
    let h = Harness::start(HOUR).await;
    ready_connector(&h, "relay").await;
    let mut twin = connector_manifest("twin");
    twin.spec.display_name = Some("relay".into());
    h.connectors()
        .create(&PostParams::default(), &twin)
        .await
        .unwrap();
    h.wait_condition::<SendConnector>("twin", "False", "Conflict")
        .await;
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    let twin = ready_within::<SendConnector>(&h, "twin", Duration::from_secs(10)).await;
    assert!(twin["status"]["connectorId"].as_i64().is_some());
}
