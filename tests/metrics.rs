//! Metrics and health endpoints over HTTP, on a real scenario: the controllers, the in-memory
//! Kubernetes API and the OVH simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kube::api::PostParams;
use ovh_simulator::{FaultKind, FaultRule, Faults};
use sendconnector_operator::crd::SendConnector;
use sendconnector_operator::telemetry::{Telemetry, health};
use serde_json::json;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// The health server of `telemetry` on a free local port; its base URL.
async fn serve(telemetry: &Telemetry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let telemetry = telemetry.clone();
    tokio::spawn(health::serve(listener, telemetry, std::future::pending()));
    format!("http://{addr}")
}

async fn get(url: &str) -> (u16, String, String) {
    sendconnector_operator::ovh::client::install_crypto_provider();
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// Waits until `GET url` answers `status`.
async fn wait_status(url: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (got, _, body) = get(url).await;
        if got == status {
            return;
        }
        assert!(Instant::now() < deadline, "{url}: {got} {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of the sample `name{labels}` in an OpenMetrics text, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// Waits until the metrics satisfy `check`; returns the text.
async fn wait_metrics(base: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, text) = get(&format!("{base}/metrics")).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_moves_the_metrics_and_an_ovh_outage_keeps_the_operator_alive() {
    let telemetry = Telemetry::default();
    let base = serve(&telemetry).await;
    // Before any controller runs: alive, not ready.
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.0, 503);

    let t = telemetry.clone();
    let h = Harness::start_with(HOUR, move |c| c.telemetry = t.clone()).await;
    wait_status(&format!("{base}/readyz"), 200).await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);

    h.connectors()
        .create(
            &PostParams::default(),
            &connector_manifest("newsletter-relay"),
        )
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("newsletter-relay").await;
    h.wait_ovh_settled().await;

    let text = wait_metrics(&base, "one ready SendConnector", |text| {
        sample(
            text,
            r#"sendconnector_resources{kind="SendConnector",condition="ready"}"#,
        ) == Some(1.0)
    })
    .await;
    let (status, content_type, _) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    for condition in ["reconciling", "stalled", "paused", "unknown"] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"sendconnector_resources{{kind="SendConnector",condition="{condition}"}}"#
                )
            ),
            Some(0.0),
            "{condition}: {text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"sendconnector_resources{kind="MailboxBinding",condition="ready"}"#
        ),
        Some(0.0)
    );
    // The create went out once, counted under its route template.
    let create = format!(
        r#"sendconnector_ovh_requests_total{{method="POST",route="{P}/sendConnector",status="200"}}"#
    );
    assert_eq!(sample(&text, &create), Some(1.0), "{text}");
    let reads = text
        .lines()
        .filter(|l| l.starts_with(r#"sendconnector_ovh_requests_total{method="GET""#))
        .count();
    assert!(reads > 0, "{text}");
    assert!(
        sample(
            &text,
            &format!(
                r#"sendconnector_ovh_request_duration_seconds_count{{method="POST",route="{P}/sendConnector"}}"#
            )
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "sendconnector_ovh_budget_wait_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sendconnector_ovh_throttled_total"),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            r#"sendconnector_reconciles_total{kind="SendConnector"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"sendconnector_reconcile_duration_seconds_count{kind="SendConnector"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "sendconnector_leader"), Some(1.0));
    // No label names a resource, a namespace, an organization or an id.
    for private in ["newsletter-relay", ORG, "relay-user", "namespace=", "name="] {
        assert!(!text.contains(private), "{private} in:\n{text}");
    }
    let id = h.object::<SendConnector>("newsletter-relay")["status"]["connectorId"]
        .as_i64()
        .unwrap();
    assert!(!text.contains(&format!("/{id}")), "{text}");

    // OVH answers 500 to everything: reconciles fail and are counted, the operator stays
    // alive and ready (restarting it would not bring OVH back).
    h.sim.sim().set_faults(Faults {
        rules: vec![FaultRule::new(FaultKind::Status500)],
        ..Faults::default()
    });
    h.patch_connector("newsletter-relay", json!({"spec": {"port": 2525}}))
        .await;
    let refused = |text: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("sendconnector_ovh_requests_total{") && l.contains(r#"status="500""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    wait_metrics(
        &base,
        "refused requests and a reconciling connector",
        |text| {
            refused(text) >= 2.0
                && sample(
                    text,
                    r#"sendconnector_resources{kind="SendConnector",condition="reconciling"}"#,
                ) == Some(1.0)
        },
    )
    .await;
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    h.sim.sim().set_faults(Faults::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_reports_and_the_end_of_the_controllers() {
    let telemetry = Telemetry::default();
    let base = serve(&telemetry).await;
    telemetry.metrics().drift_corrected("SendConnector");
    telemetry.metrics().drift_corrected("SendConnector");
    telemetry
        .metrics()
        .task_finished("addSendConnector", "done", Duration::from_secs(3));
    telemetry
        .metrics()
        .reconciled("MailboxBinding", Duration::from_millis(30), Some("server"));
    telemetry
        .metrics()
        .reconcile_failed("MailboxBinding", "throttled");
    let (_, _, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(
            &text,
            r#"sendconnector_drift_corrections_total{kind="SendConnector"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"sendconnector_ovh_task_duration_seconds_count{function="addSendConnector",result="done"}"#
        ),
        Some(1.0),
        "{text}"
    );
    for (series, value) in [
        (
            r#"sendconnector_reconciles_total{kind="MailboxBinding"}"#,
            1.0,
        ),
        (
            r#"sendconnector_reconcile_errors_total{kind="MailboxBinding",category="server"}"#,
            1.0,
        ),
        (
            r#"sendconnector_reconcile_errors_total{kind="MailboxBinding",category="throttled"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}: {text}");
    }
    // No controller ran: no resource gauge, not leading.
    assert!(!text.contains("sendconnector_resources{"), "{text}");
    assert_eq!(sample(&text, "sendconnector_leader"), Some(0.0));

    // Controllers that stop on their own fail liveness; a requested stop only readiness.
    let mut h = Harness::start_with(HOUR, {
        let t = telemetry.clone();
        move |c| c.telemetry = t.clone()
    })
    .await;
    wait_status(&format!("{base}/readyz"), 200).await;
    h.stop_controller().await;
    assert_eq!(get(&format!("{base}/readyz")).await.0, 503);
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    telemetry.health().set_dead("the watch streams ended");
    let (status, _, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 503);
    assert!(body.contains("the watch streams ended"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_waiting_for_its_connector_counts_no_reconcile_error() {
    let telemetry = Telemetry::default();
    let base = serve(&telemetry).await;
    let t = telemetry.clone();
    let h = Harness::start_with(HOUR, move |c| c.telemetry = t.clone()).await;
    h.bindings()
        .create(
            &PostParams::default(),
            &binding_manifest("newsletter", "relay"),
        )
        .await
        .unwrap();
    h.wait_condition::<sendconnector_operator::crd::MailboxBinding>(
        "newsletter",
        "False",
        "ConnectorNotReady",
    )
    .await;
    h.connectors()
        .create(&PostParams::default(), &connector_manifest("relay"))
        .await
        .unwrap();
    h.wait_ready::<SendConnector>("relay").await;
    h.wait_ready::<sendconnector_operator::crd::MailboxBinding>("newsletter")
        .await;
    let text = wait_metrics(&base, "the binding counted ready", |text| {
        sample(
            text,
            r#"sendconnector_resources{kind="MailboxBinding",condition="ready"}"#,
        ) == Some(1.0)
    })
    .await;
    // A wait for another resource is not a failure: the error counter is for alerts.
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sendconnector_reconcile_errors_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
