//! A whole life cycle (create, bind, rotate the password, a refused call, a lost answer,
//! delete) with every log line at debug level captured: no password or OVH API secret may
//! appear in a log line, an Event, a resource's status or an error message.
//!
//! One test in its own binary, so the global log subscriber it installs sees only this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::*;
use kube::api::{DeleteParams, PostParams};
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_events_status_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let h = Harness::start(Duration::from_millis(500)).await;
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
    let id = h.wait_ready::<SendConnector>("relay").await["status"]["connectorId"]
        .as_i64()
        .unwrap();
    h.wait_ready::<MailboxBinding>("newsletter").await;

    // Rotate the password: pushed once through changeAuthentication.
    h.set_secret("relay-password", json!({"password": "relay-password-2"}))
        .await;
    wait_for("the rotated password", Duration::from_secs(20), || {
        h.sim.sim().connector_password(ORG, ORG, id).as_deref() == Some("relay-password-2")
    })
    .await;

    // A refused call (read-only credentials) and a create whose answer is lost.
    let mut denied = connector_manifest("denied");
    denied.spec.display_name = Some("denied-relay".into());
    denied.spec.credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "ovh-read-only"})).unwrap());
    h.connectors()
        .create(&PostParams::default(), &denied)
        .await
        .unwrap();
    h.wait_condition::<SendConnector>("denied", "False", "OvhError")
        .await;
    h.sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .times(1),
        ],
        ..Faults::default()
    });
    let mut lost = connector_manifest("lost");
    lost.spec.display_name = Some("lost-relay".into());
    h.connectors()
        .create(&PostParams::default(), &lost)
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("lost").await;

    // Everything goes.
    h.bindings()
        .delete("newsletter", &DeleteParams::default())
        .await
        .unwrap();
    h.connectors()
        .delete("relay", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "the connector to be deleted",
        Duration::from_secs(30),
        || h.object::<SendConnector>("relay").is_null(),
    )
    .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("OVH request") && logs.contains("sendconnector_operator::controller"),
        "debug logs were captured"
    );
    let mut seen = vec![logs];
    seen.push(serde_json::to_string(&h.events()).unwrap());
    for name in ["relay", "denied", "lost"] {
        seen.push(h.object::<SendConnector>(name).to_string());
    }
    seen.push(h.object::<MailboxBinding>("newsletter").to_string());
    seen.push(h.sim.sim().state().to_string());
    let everything = seen.join("\n");
    assert!(
        everything.contains("This call has not been granted"),
        "the refused call's error was captured"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [
        "relay-password-1",
        "relay-password-2",
        "as-secret",
        "ck-secret",
        "as-ro-secret",
        "ck-ro-secret",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
        assert!(
            !everything.contains(&b64.encode(secret)),
            "{secret} leaked in base64"
        );
    }
    assert!(!everything.contains("$1$"), "a request signature leaked");
}
