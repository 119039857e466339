//! The OVH client against the simulator over real HTTP: every typed call of the guide, the
//! bulk reads and their fallbacks, retries, the clock offset, OAuth2 and error classification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ovh_simulator::{
    FaultKind, FaultRule, Faults, RunningSimulator, Seed, Simulator, SimulatorConfig,
};
use sendconnector_operator::ovh::model::{
    AuthMechanism, ChangeAuthentication, NewSendConnector, SendConnectorUpdate, TaskStatus,
};
use sendconnector_operator::ovh::retry::RetryPolicy;
use sendconnector_operator::ovh::{
    Budget, BudgetSettings, ClientOptions, Credentials, ExchangeApi, ExchangeClient, OvhClient,
    OvhError,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORG: &str = "private-zz111111-1";

const SEED: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: as-secret-value
    consumerKey: ck-secret-value
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}, {method: PUT, path: "/*"}, {method: DELETE, path: "/*"}]
  - applicationKey: ak-ro
    applicationSecret: as-ro-secret
    consumerKey: ck-ro-secret
    accessRules: [{method: GET, path: "/*"}]
  - clientId: sa-client
    clientSecret: sa-client-secret
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh, sales@mydomain.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

async fn simulator() -> RunningSimulator {
    let config = SimulatorConfig {
        seed: Seed::from_yaml(SEED).unwrap(),
        ..SimulatorConfig::default()
    };
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn credentials(sim: &RunningSimulator, pairs: &[(&str, &str)]) -> Credentials {
    let mut map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert("endpoint".into(), sim.base_url());
    Credentials::from_map(&map).unwrap()
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(20),
            max_delay: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    }
}

fn unlimited() -> Arc<Budget> {
    Arc::new(Budget::new(BudgetSettings {
        rate: 1000.0,
        burst: 1000,
    }))
}

fn client_with(
    sim: &RunningSimulator,
    pairs: &[(&str, &str)],
    options: ClientOptions,
) -> OvhClient {
    OvhClient::new(credentials(sim, pairs), unlimited(), options).unwrap()
}

fn classic(sim: &RunningSimulator) -> OvhClient {
    client_with(
        sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "ck-secret-value"),
        ],
        fast_options(),
    )
}

fn api(client: &OvhClient) -> ExchangeApi {
    ExchangeClient::new(client.clone()).service(ORG, ORG)
}

fn counter(sim: &RunningSimulator, key: &str) -> u64 {
    sim.sim().counters().get(key).copied().unwrap_or(0)
}

const P: &str = "/email/exchange/{organizationName}/service/{exchangeService}";

async fn wait_task(api: &ExchangeApi, id: i64) -> TaskStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let task = api.get_task(id).await.unwrap();
        if task.status.is_finished() {
            return task.status;
        }
        assert!(Instant::now() < deadline, "task {id} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn new_connector(name: &str) -> NewSendConnector {
    NewSendConnector {
        display_name: name.into(),
        smart_host: "smtp-relay.example.com".into(),
        port: 587,
        require_tls: true,
        max_send_size: 100,
        smart_host_auth_mechanism: AuthMechanism::BasicAuthRequireTls,
        user: Some("relay-user".into()),
        password: Some("relay-password-value".into()),
    }
}

async fn create(api: &ExchangeApi, name: &str) -> i64 {
    let task = api
        .create_send_connector(&new_connector(name))
        .await
        .unwrap();
    assert_eq!(task.function, "addSendConnector");
    assert_eq!(wait_task(api, task.id).await, TaskStatus::Done);
    api.list_send_connectors()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.display_name == name)
        .expect("created connector is listed")
        .id
}

/// Waits until no object of the service has a pending task (PUTs run tasks too).
async fn settle(api: &ExchangeApi) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api.pending_tasks(None).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "tasks never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_guide_end_to_end() {
    let sim = simulator().await;
    let api = api(&classic(&sim));

    assert!(api.list_send_connector_ids().await.unwrap().is_empty());
    let id = create(&api, "newsletter-relay").await;
    let c = api.get_send_connector(id).await.unwrap();
    assert_eq!(
        (c.port, c.require_tls, c.smart_host_auth_mechanism),
        (587, true, AuthMechanism::BasicAuthRequireTls)
    );
    assert_eq!(
        sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("relay-password-value")
    );

    api.update_send_connector(
        id,
        &SendConnectorUpdate {
            port: Some(2525),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    settle(&api).await;
    assert_eq!(api.get_send_connector(id).await.unwrap().port, 2525);

    let task = api
        .change_authentication(
            id,
            &ChangeAuthentication {
                smart_host_auth_mechanism: AuthMechanism::BasicAuth,
                user: Some("u2".into()),
                password: Some("second-password".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(wait_task(&api, task.id).await, TaskStatus::Done);
    assert_eq!(
        api.get_send_connector(id)
            .await
            .unwrap()
            .smart_host_auth_mechanism,
        AuthMechanism::BasicAuth
    );
    assert_eq!(
        sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("second-password")
    );

    api.set_account_connector("newsletter@mydomain.ovh", id)
        .await
        .unwrap();
    settle(&api).await;
    assert_eq!(
        api.get_account("newsletter@mydomain.ovh")
            .await
            .unwrap()
            .connector_id(),
        id
    );

    api.change_default_sbr("mydomain.ovh", id).await.unwrap();
    settle(&api).await;
    assert_eq!(
        api.get_domain("mydomain.ovh")
            .await
            .unwrap()
            .default_connector_id(),
        id
    );
    sim.sim()
        .create_account(ORG, ORG, "later@mydomain.ovh")
        .unwrap();
    assert_eq!(
        api.get_account("later@mydomain.ovh")
            .await
            .unwrap()
            .connector_id(),
        id,
        "new accounts inherit the domain default"
    );

    let accounts = api
        .get_accounts(&[
            "newsletter@mydomain.ovh".into(),
            "contact@mydomain.ovh".into(),
            "ghost@mydomain.ovh".into(),
        ])
        .await
        .unwrap();
    assert_eq!(
        accounts["newsletter@mydomain.ovh"]
            .as_ref()
            .unwrap()
            .connector_id(),
        id
    );
    assert_eq!(
        accounts["contact@mydomain.ovh"]
            .as_ref()
            .unwrap()
            .connector_id(),
        0
    );
    assert!(accounts["ghost@mydomain.ovh"].is_none());

    api.set_account_connector("newsletter@mydomain.ovh", 0)
        .await
        .unwrap();
    api.change_default_sbr("mydomain.ovh", 0).await.unwrap();
    settle(&api).await;
    assert_eq!(
        api.get_account("newsletter@mydomain.ovh")
            .await
            .unwrap()
            .connector_id(),
        0
    );

    let task = api.delete_send_connector(id).await.unwrap();
    assert_eq!(task.function, "deleteSendConnector");
    assert_eq!(wait_task(&api, task.id).await, TaskStatus::Done);
    let gone = api.get_send_connector(id).await.unwrap_err();
    assert!(gone.is_not_found() && !gone.is_retryable(), "{gone}");
    assert!(api.list_send_connectors().await.unwrap().is_empty());
}

#[tokio::test]
async fn bulk_reads_use_one_request_and_fall_back_when_ignored() {
    let sim = simulator().await;
    let api1 = api(&classic(&sim));
    let ids = [
        create(&api1, "a").await,
        create(&api1, "b").await,
        create(&api1, "c").await,
    ];

    // Expanded list: one GET on the list route, no per-object GET.
    sim.sim().reset_counters();
    let all = api(&classic(&sim)).list_send_connectors().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 1);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector/{{id}}")), 0);

    // Batch GET: one request for three objects.
    sim.sim().reset_counters();
    let found = api(&classic(&sim)).get_send_connectors(&ids).await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector/{{id}}")), 1);

    // Both switched off: the same answers from plain keys and one GET per object.
    sim.sim().update_settings(|s| {
        s.batch = false;
        s.iceberg = false;
    });
    sim.sim().reset_counters();
    let fresh = api(&classic(&sim));
    let mut names: Vec<String> = fresh
        .list_send_connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.display_name)
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    let accounts = fresh
        .get_accounts(&[
            "newsletter@mydomain.ovh".into(),
            "ghost@mydomain.ovh".into(),
        ])
        .await
        .unwrap();
    assert!(
        accounts["newsletter@mydomain.ovh"].is_some() && accounts["ghost@mydomain.ovh"].is_none()
    );
    // Once the fallback is learnt, the client stops trying the bulk form.
    let before = counter(&sim, &format!("GET {P}/sendConnector/{{id}}"));
    fresh.get_send_connectors(&ids).await.unwrap();
    assert_eq!(
        counter(&sim, &format!("GET {P}/sendConnector/{{id}}")) - before,
        3
    );
}

#[tokio::test]
async fn partial_account_put_falls_back_to_the_full_form_with_delete_virus() {
    let sim = simulator().await;
    sim.sim()
        .update_settings(|s| s.reject_partial_account_put = true);
    sim.sim().edit_account(ORG, ORG, "sales@mydomain.ovh", serde_json::json!({"spamAndVirusConfiguration": {"checkDKIM": true, "checkSPF": false, "deleteSpam": false, "deleteVirus": false, "putInJunk": false, "tagSpam": true, "tagVirus": false}})).unwrap();
    let api = api(&classic(&sim));
    let id = create(&api, "relay").await;
    api.set_account_connector("sales@mydomain.ovh", id)
        .await
        .unwrap();
    settle(&api).await;
    let account = sim.sim().account(ORG, ORG, "sales@mydomain.ovh").unwrap();
    assert_eq!(account["sendConnectorId"], id);
    assert_eq!(
        account["spamAndVirusConfiguration"]["deleteVirus"], true,
        "deleteVirus forced on"
    );
    assert_eq!(
        account["spamAndVirusConfiguration"]["tagSpam"], true,
        "other settings kept"
    );
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let sim = simulator().await;
    let api = api(&classic(&sim));
    api.list_send_connector_ids().await.unwrap();
    sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::TooManyRequests {
                retry_after_seconds: 1,
            })
            .method("GET")
            .path_contains("/sendConnector")
            .times(1),
        ],
        ..Faults::default()
    });
    sim.sim().reset_counters();
    let started = Instant::now();
    api.list_send_connector_ids().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 2);

    // Without retries left, the error says it is throttled and retryable, with the delay.
    let no_retry = client_with(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "ck-secret-value"),
        ],
        ClientOptions {
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            ..fast_options()
        },
    );
    sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::TooManyRequests {
                retry_after_seconds: 7,
            })
            .times(1),
        ],
        ..Faults::default()
    });
    let e = ExchangeClient::new(no_retry)
        .service(ORG, ORG)
        .list_send_connector_ids()
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.category(), e.is_retryable()),
        (Some(429), "throttled", true)
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn server_errors_and_overload_symptoms_are_retried_for_reads_and_puts() {
    let sim = simulator().await;
    let api = api(&classic(&sim));
    let id = create(&api, "relay").await;
    for kind in [
        FaultKind::Status500,
        FaultKind::Html408,
        FaultKind::ConnectionReset,
    ] {
        sim.sim().set_faults(Faults {
            rules: vec![FaultRule::new(kind.clone()).method("PUT").times(1)],
            ..Faults::default()
        });
        sim.sim().reset_counters();
        api.update_send_connector(
            id,
            &SendConnectorUpdate {
                max_send_size: Some(50),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            counter(&sim, &format!("PUT {P}/sendConnector/{{id}}")),
            2,
            "{kind:?}: one failure, one retry"
        );
        settle(&api).await;
    }
    // A request that never gets an answer times out and is retried.
    let short = client_with(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "ck-secret-value"),
        ],
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..fast_options()
        },
    );
    sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::Timeout)
                .method("GET")
                .path_contains("/sendConnector")
                .times(1),
        ],
        ..Faults::default()
    });
    assert_eq!(
        ExchangeClient::new(short)
            .service(ORG, ORG)
            .get_send_connector(id)
            .await
            .unwrap()
            .max_send_size,
        50
    );

    // The HTML 408 page becomes a readable message once retries run out.
    let once = client_with(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "ck-secret-value"),
        ],
        ClientOptions {
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            ..fast_options()
        },
    );
    sim.sim().set_faults(Faults {
        rules: vec![FaultRule::new(FaultKind::Html408).times(1)],
        ..Faults::default()
    });
    let e = ExchangeClient::new(once)
        .service(ORG, ORG)
        .get_send_connector(id)
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert!(e.to_string().contains("408 Request Time-out"), "{e}");
}

#[tokio::test]
async fn a_post_is_never_retried_and_a_lost_create_is_applied() {
    let sim = simulator().await;
    let api = api(&classic(&sim));
    sim.sim().set_faults(Faults {
        rules: vec![FaultRule::new(FaultKind::Status500).method("POST").times(1)],
        ..Faults::default()
    });
    let e = api
        .create_send_connector(&new_connector("x"))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.is_retryable()), (Some(500), true));
    assert_eq!(
        counter(&sim, &format!("POST {P}/sendConnector")),
        1,
        "no blind retry of a POST"
    );
    assert!(sim.sim().connectors(ORG, ORG).is_empty());

    sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .times(1),
        ],
        ..Faults::default()
    });
    let e = api
        .create_send_connector(&new_connector("lost"))
        .await
        .unwrap_err();
    assert!(matches!(e, OvhError::Transport { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(counter(&sim, &format!("POST {P}/sendConnector")), 2);
    let on_ovh = sim.sim().connectors(ORG, ORG);
    assert_eq!(
        on_ovh.len(),
        1,
        "the change was applied although the answer was lost"
    );
    assert_eq!(on_ovh[0]["displayName"], "lost");
}

#[tokio::test]
async fn clock_skew_is_corrected_through_auth_time() {
    let sim = simulator().await;
    let api = api(&classic(&sim));
    api.list_send_connector_ids().await.unwrap();
    assert_eq!(
        counter(&sim, "GET /auth/time"),
        1,
        "the offset is read once"
    );
    api.list_send_connector_ids().await.unwrap();
    assert_eq!(counter(&sim, "GET /auth/time"), 1);

    // OVH's clock moves away by an hour: the next call is refused, the client re-reads the
    // time once and the call then succeeds.
    sim.sim().set_clock_skew(3600);
    api.list_send_connector_ids().await.unwrap();
    assert_eq!(counter(&sim, "GET /auth/time"), 2);

    // A client whose clock is off from the start never sends a stale request.
    sim.sim().reset_counters();
    let fresh = api_fresh(&sim);
    fresh.list_send_connector_ids().await.unwrap();
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 1);
}

fn api_fresh(sim: &RunningSimulator) -> ExchangeApi {
    api(&classic(sim))
}

#[tokio::test]
async fn errors_are_classified_with_ovh_details() {
    let sim = simulator().await;
    let ok = api(&classic(&sim));
    let id = create(&ok, "relay").await;

    let missing_service = ExchangeClient::new(classic(&sim))
        .service("nope", "nope")
        .list_send_connector_ids()
        .await
        .unwrap_err();
    let a = missing_service.api().unwrap();
    assert_eq!(
        (a.status, a.message.as_str()),
        (404, "This service does not exist")
    );
    assert!(a.query_id.as_deref().is_some_and(|q| !q.is_empty()));
    assert!(!missing_service.is_retryable());

    let ro = client_with(
        &sim,
        &[
            ("applicationKey", "ak-ro"),
            ("applicationSecret", "as-ro-secret"),
            ("consumerKey", "ck-ro-secret"),
        ],
        fast_options(),
    );
    let denied = api(&ro)
        .update_send_connector(
            id,
            &SendConnectorUpdate {
                port: Some(25),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let a = denied.api().unwrap();
    assert_eq!(
        (a.status, a.message.as_str(), a.error_code.as_deref()),
        (
            403,
            "This call has not been granted",
            Some("NOT_GRANTED_CALL")
        )
    );
    assert_eq!(
        (denied.category(), denied.is_retryable()),
        ("forbidden", false)
    );

    sim.sim().reset_counters();
    let wrong = client_with(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "wrong"),
            ("consumerKey", "ck-secret-value"),
        ],
        fast_options(),
    );
    let bad_sig = api(&wrong).list_send_connector_ids().await.unwrap_err();
    assert_eq!(bad_sig.status(), Some(400));
    assert!(!bad_sig.is_retryable());
    assert_eq!(
        counter(&sim, &format!("GET {P}/sendConnector")),
        2,
        "one re-read of the clock, one retry, then give up"
    );
    assert_eq!(counter(&sim, "GET /auth/time"), 2);

    let unknown_ck = client_with(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "nope"),
        ],
        fast_options(),
    );
    let e = api(&unknown_ck)
        .list_send_connector_ids()
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.category(), e.is_retryable()),
        (Some(403), "forbidden", false)
    );
    assert_eq!(e.api().unwrap().message, "This credential is not valid");
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_and_renewed() {
    let sim = simulator().await;
    sim.sim()
        .update_settings(|s| s.oauth2_token_expires_in_seconds = 2);
    let client = client_with(
        &sim,
        &[
            ("clientId", "sa-client"),
            ("clientSecret", "sa-client-secret"),
        ],
        fast_options(),
    );
    let api = api(&client);
    let id = create(&api, "via-oauth2").await;
    assert_eq!(counter(&sim, "POST /auth/oauth2/token"), 1);
    // Past the token's lifetime the client renews it before calling.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        api.get_send_connector(id).await.unwrap().display_name,
        "via-oauth2"
    );
    assert_eq!(counter(&sim, "POST /auth/oauth2/token"), 2);

    let bad = client_with(
        &sim,
        &[("clientId", "sa-client"), ("clientSecret", "wrong-secret")],
        fast_options(),
    );
    let e = ExchangeClient::new(bad)
        .service(ORG, ORG)
        .list_send_connector_ids()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            OvhError::Token {
                status: Some(400 | 401),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn clients_with_the_same_credentials_share_one_budget() {
    let sim = simulator().await;
    let registry = sendconnector_operator::ovh::BudgetRegistry::new(BudgetSettings {
        rate: 5.0,
        burst: 2,
    });
    let creds = credentials(
        &sim,
        &[
            ("applicationKey", "ak"),
            ("applicationSecret", "as-secret-value"),
            ("consumerKey", "ck-secret-value"),
        ],
    );
    let a = OvhClient::new(
        creds.clone(),
        registry.budget_for(&creds.identity()),
        fast_options(),
    )
    .unwrap();
    let b = OvhClient::new(
        creds.clone(),
        registry.budget_for(&creds.identity()),
        fast_options(),
    )
    .unwrap();
    let started = Instant::now();
    // 2 burst + 4 at 5/s (plus the one /auth/time read per client): about 0.8-1.2 s together.
    let (ra, rb) = tokio::join!(
        async {
            for _ in 0..3 {
                api(&a).list_send_connector_ids().await.unwrap();
            }
        },
        async {
            for _ in 0..3 {
                api(&b).list_send_connector_ids().await.unwrap();
            }
        },
    );
    let _ = (ra, rb);
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "budget not shared: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn vanished_tasks_answer_not_found() {
    let sim = simulator().await;
    sim.sim().update_settings(|s| s.vanishing_tasks = true);
    let api = api(&classic(&sim));
    let task = api
        .create_send_connector(&new_connector("v"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match api.get_task(task.id).await {
            Ok(t) => assert!(
                !t.status.is_finished(),
                "a finished task should have vanished"
            ),
            Err(e) => {
                assert!(e.is_not_found(), "{e}");
                break;
            }
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = api.list_send_connectors().await.unwrap();
    assert_eq!(
        (c.len(), c[0].pending_task()),
        (1, None),
        "the object tells the outcome"
    );
}

#[tokio::test]
async fn callers_of_one_client_share_a_recent_connector_list_and_a_writer_sees_its_write() {
    let sim = simulator().await;
    let id = create(&api(&classic(&sim)), "relay").await;
    let client = ExchangeClient::new(classic(&sim));
    let (first, second) = (client.service(ORG, ORG), client.service(ORG, ORG));
    sim.sim().reset_counters();
    let lists = tokio::join!(
        first.list_send_connectors(),
        second.list_send_connectors(),
        first.list_send_connectors()
    );
    assert_eq!(
        (
            lists.0.unwrap().len(),
            lists.1.unwrap().len(),
            lists.2.unwrap().len()
        ),
        (1, 1, 1)
    );
    assert_eq!(
        counter(&sim, &format!("GET {P}/sendConnector")),
        1,
        "one read served three callers"
    );
    // A write through the client: other readers that need nothing newer keep the shared
    // list; the writer's own lists are read after its write, and serve everybody.
    second
        .update_send_connector(
            id,
            &SendConnectorUpdate {
                port: Some(2525),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let written = tokio::time::Instant::now();
    assert_eq!(first.list_send_connectors().await.unwrap()[0].port, 587);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 1);
    let after = second.list_send_connectors_since(None).await.unwrap();
    assert_eq!(after.connectors[0].port, 2525, "the writer sees its write");
    assert!(after.read_at >= written);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 2);
    assert_eq!(first.list_send_connectors().await.unwrap()[0].port, 2525);
    assert_eq!(counter(&sim, &format!("GET {P}/sendConnector")), 2);
    // Another service of the same client is read on its own.
    let other = ExchangeClient::with_shared_reads(classic(&sim), Duration::ZERO).service(ORG, ORG);
    other.list_send_connectors().await.unwrap();
    other.list_send_connectors().await.unwrap();
    assert_eq!(
        counter(&sim, &format!("GET {P}/sendConnector")),
        4,
        "no sharing with a zero lifetime"
    );
}

// ---- hostile servers of the test's own ----------------------------------------------

use axum::response::IntoResponse;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a server of the test's own saw: requests (other than `GET /1.0/auth/time`), and the
/// body bytes it handed to the connection.
#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Seen {
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Starts a server on 127.0.0.1 that answers `GET /1.0/auth/time` with the time and every
/// other request with `answer`; returns its base URL and what it saw.
async fn own_server<F>(answer: F) -> (String, Seen)
where
    F: Fn(&axum::extract::Request, &Seen) -> axum::response::Response
        + Clone
        + Send
        + Sync
        + 'static,
{
    let seen = Seen::default();
    let counted = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (answer, seen) = (answer.clone(), counted.clone());
        async move {
            if let Some(time) = server_time(&req) {
                return time;
            }
            seen.requests.fetch_add(1, Ordering::SeqCst);
            answer(&req, &seen)
        }
    });
    (serve(app).await, seen)
}

/// The answer to `GET /1.0/auth/time` (the current time), if `req` asks for it.
fn server_time(req: &axum::extract::Request) -> Option<axum::response::Response> {
    (req.uri().path() == "/1.0/auth/time").then(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        axum::Json(now).into_response()
    })
}

/// Serves `app` on 127.0.0.1; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A body of `chunks` chunks of `size` bytes (then nothing more, ever, when `hang`), each
/// counted in `seen.sent` when handed to the connection.
fn counted_body(seen: &Seen, size: usize, chunks: usize, hang: bool) -> axum::body::Body {
    let sent = seen.sent.clone();
    let chunk = bytes::Bytes::from(vec![b' '; size]);
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        sent.fetch_add(size as u64, Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    });
    if hang {
        axum::body::Body::from_stream(stream.chain(futures::stream::pending()))
    } else {
        axum::body::Body::from_stream(stream)
    }
}

use futures::StreamExt;

fn own_client(base: &str, options: ClientOptions) -> ExchangeApi {
    let map: BTreeMap<String, String> = [
        ("endpoint", base),
        ("applicationKey", "ak"),
        ("applicationSecret", "as-secret-value"),
        ("consumerKey", "ck-secret-value"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let client =
        OvhClient::new(Credentials::from_map(&map).unwrap(), unlimited(), options).unwrap();
    ExchangeClient::new(client).service(ORG, ORG)
}

const MIB: usize = 1 << 20;
const CONNECTORS_PATH: &str =
    "/email/exchange/private-zz111111-1/service/private-zz111111-1/sendConnector";

#[tokio::test]
async fn an_answer_declared_larger_than_the_cap_is_refused_unread() {
    // Declares 10 MiB, sends 64 KiB, then nothing: a client reading it would wait.
    let (base, seen) = own_server(|_, seen| {
        (
            [(axum::http::header::CONTENT_LENGTH, (10 * MIB).to_string())],
            counted_body(seen, 64 << 10, 1, true),
        )
            .into_response()
    })
    .await;
    let api = own_client(&base, fast_options());
    let started = Instant::now();
    let e = api.list_send_connector_ids().await.unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "OVH answer larger than 4 MiB on GET {CONNECTORS_PATH}"
        )),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.category(), "too_large");
    assert!(
        e.is_retryable(),
        "a server fault, retried later with backoff"
    );
    assert_eq!(seen.requests(), 1, "not retried at once");
    assert!(seen.sent() <= 64 << 10);
}

#[tokio::test]
async fn a_streamed_answer_is_cut_at_the_cap() {
    // 64 MiB without a length, as fast as the connection takes it.
    let (base, seen) = own_server(|_, seen| {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            counted_body(seen, 64 << 10, 1024, false),
        )
            .into_response()
    })
    .await;
    let api = own_client(&base, fast_options());
    let e = api.list_send_connector_ids().await.unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "OVH answer larger than 4 MiB on GET {CONNECTORS_PATH}"
        )),
        "{message}"
    );
    assert_eq!((e.category(), seen.requests()), ("too_large", 1));
    // What the server could hand over: the cap, a chunk, and what the two sockets buffer
    // (about 5 MiB on loopback); far from the 64 MiB a client reading it all takes.
    let sent = usize::try_from(seen.sent()).unwrap();
    assert!(sent <= 4 * MIB + 12 * MIB, "{sent} bytes sent");
}

#[tokio::test]
async fn a_slow_drip_answer_times_out() {
    let (base, _seen) = own_server(|_, _| {
        let drip = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
        });
        axum::body::Body::from_stream(drip).into_response()
    })
    .await;
    let api = own_client(
        &base,
        ClientOptions {
            timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            ..fast_options()
        },
    );
    let started = Instant::now();
    let e = api.list_send_connector_ids().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((e.category(), e.is_retryable()), ("timeout", true), "{e}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_carry_nothing_away() {
    let (elsewhere, taken) =
        own_server(|_, _| axum::Json(serde_json::json!([])).into_response()).await;
    let target = elsewhere.clone();
    let (base, seen) = own_server(move |req, _| {
        let location = format!("{target}{}?token=hunter2", req.uri().path());
        (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response()
    })
    .await;
    let host = elsewhere.trim_start_matches("http://").to_owned();

    // A signed POST whose body holds the relay password.
    let api = own_client(&base, fast_options());
    let e = api
        .create_send_connector(&new_connector("relay"))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert_eq!(taken.requests(), 0, "nothing reached the other server");
    assert!(
        message.contains("HTTP 307") && message.contains("OVH does not redirect"),
        "{message}"
    );
    assert!(
        message.contains(&format!("POST {CONNECTORS_PATH}")),
        "{message}"
    );
    assert!(message.contains(&host), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!e.is_retryable());
    assert_eq!(e.category(), "redirect");

    // A read is not retried either.
    let e = api.list_send_connector_ids().await.unwrap_err();
    assert_eq!((e.category(), seen.requests()), ("redirect", 2));

    // The OAuth2 token request (client secret in its body) is not followed either.
    let map: BTreeMap<String, String> = [
        ("endpoint", base.as_str()),
        ("clientId", "sa-client"),
        ("clientSecret", "sa-client-secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let oauth = OvhClient::new(
        Credentials::from_map(&map).unwrap(),
        unlimited(),
        fast_options(),
    )
    .unwrap();
    let e = ExchangeClient::new(oauth)
        .service(ORG, ORG)
        .list_send_connector_ids()
        .await
        .unwrap_err();
    let message = e.to_string();
    assert_eq!(taken.requests(), 0, "nothing reached the other server");
    assert!(
        message.contains("HTTP 307") && message.contains("OVH does not redirect"),
        "{message}"
    );
    assert!(!message.contains("hunter2") && !message.contains("sa-client-secret"));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn unreadable_answers_are_clear_decode_errors() {
    let huge = "x".repeat(100_000);
    let cases: Vec<(&str, String)> = vec![
        (
            "an HTML page",
            "<html><head><title>Maintenance</title></head><body><h1>Service Unavailable</h1>\nBack soon.</body></html>".to_owned(),
        ),
        (
            "truncated JSON",
            r#"{"id": 1, "displayName": "relay", "smartHost": "smtp-rel"#.to_owned(),
        ),
        (
            "a wrong type",
            format!(
                r#"{{"id": 1, "displayName": "relay", "smartHost": "h", "port": "{huge}", "requireTLS": true, "maxSendSize": 100, "smartHostAuthMechanism": "none"}}"#
            ),
        ),
    ];
    for (what, body) in cases {
        let (base, _) = own_server(move |_, _| {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response()
        })
        .await;
        let e = own_client(&base, fast_options())
            .get_send_connector(1)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert_eq!(
            (e.category(), e.is_retryable()),
            ("decode", false),
            "{what}: {message}"
        );
        assert!(
            message.contains(&format!(
                "could not read OVH's answer to GET {CONNECTORS_PATH}/1 (HTTP 200)"
            )),
            "{what}: {message}"
        );
        assert!(
            message.len() <= 600,
            "{what}: {} bytes: {message}",
            message.len()
        );
        if what == "an HTML page" {
            assert!(message.contains("Service Unavailable"), "{message}");
        }
    }
}

/// A service's accounts are read in one expanded page of up to 5,000, whatever its size as
/// text (an account is about 1.3 KB of JSON: 6.5 MB here, more than any answer read whole
/// may be): the page is decoded element by element as it arrives.
#[tokio::test]
async fn five_thousand_accounts_are_listed_in_one_request() {
    let accounts: Vec<String> = (0..5000).map(|i| format!("m{i:04}@mydomain.ovh")).collect();
    let seed = serde_json::json!({
        "credentials": [{"applicationKey": "ak", "applicationSecret": "as-secret-value", "consumerKey": "ck-secret-value"}],
        "services": [{"organization": ORG, "domains": ["mydomain.ovh"], "accounts": accounts}],
    });
    let config = SimulatorConfig {
        seed: Seed::from_yaml(&seed.to_string()).unwrap(),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let api = api(&classic(&sim));
    let listed = api.accounts_since(None).await.unwrap().expect("expanded");
    assert_eq!(listed.items.len(), 5000);
    assert!(
        listed
            .items
            .iter()
            .zip(&accounts)
            .all(|(a, b)| &a.primary_email_address == b)
    );
    assert_eq!(counter(&sim, &format!("GET {P}/account")), 1);
}

/// A list answer is never held whole, but its parts are capped all the same: an element
/// larger than an answer may be, or more elements than any service has, are refused as
/// too large (and not asked for again at once).
#[tokio::test]
async fn an_endless_list_and_an_oversized_element_are_refused() {
    let element = |size: usize| format!("{{\"primaryEmailAddress\": \"{}\"}}", "x".repeat(size));
    for (what, body) in [
        ("one element of 5 MiB", format!("[{}]", element(5 * MIB))),
        (
            "65 MiB of small elements",
            format!("[{}]", vec![element(1000); 65 * 1024].join(",")),
        ),
    ] {
        let body = bytes::Bytes::from(body);
        let (base, seen) = own_server(move |_, _| {
            (
                [
                    (axum::http::header::CONTENT_TYPE, "application/json"),
                    (
                        axum::http::HeaderName::from_static("x-pagination-elements"),
                        "1",
                    ),
                ],
                axum::body::Body::from_stream(futures::stream::iter(
                    body.chunks(64 << 10)
                        .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                        .collect::<Vec<_>>(),
                )),
            )
                .into_response()
        })
        .await;
        let api = own_client(&base, fast_options());
        let e = api.accounts_since(None).await.unwrap_err();
        assert_eq!(
            (e.category(), seen.requests()),
            ("too_large", 1),
            "{what}: {e}"
        );
    }
}

/// An expanded list whose answer is not a JSON array, or an element that does not decode,
/// is a decode error naming what came.
#[tokio::test]
async fn a_list_answer_that_is_not_a_list_is_a_decode_error() {
    for (what, body, shows) in [
        ("an object", r#"{"message": "maintenance"}"#, "maintenance"),
        (
            "a cut array",
            r#"[{"primaryEmailAddress": "a@b.c"}, {"prim"#,
            "a@b.c",
        ),
        ("a bad element", r#"[{"primaryEmailAddress": 12}]"#, "12"),
        ("keys in an expanded page", r#"["a@b.c", "d@e.f"]"#, "a@b.c"),
        (
            "keys among objects",
            r#"[{"primaryEmailAddress": "a@b.c"}, "d@e.f"]"#,
            "d@e.f",
        ),
    ] {
        let (base, _) = own_server(move |_, _| {
            (
                [
                    (axum::http::header::CONTENT_TYPE, "application/json"),
                    (
                        axum::http::HeaderName::from_static("x-pagination-elements"),
                        "1",
                    ),
                ],
                body,
            )
                .into_response()
        })
        .await;
        let api = own_client(&base, fast_options());
        let e = api.accounts_since(None).await.unwrap_err();
        assert_eq!(e.category(), "decode", "{what}: {e}");
        assert!(e.to_string().contains(shows), "{what}: {e}");
    }
}

/// However many calls are made at once, one client has at most
/// `REQUESTS_IN_FLIGHT` of them on the wire (each holds a connection and its buffers); the
/// others wait their turn and all are answered.
#[tokio::test]
async fn a_client_keeps_a_bounded_number_of_requests_in_flight() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (now, most) = (n.clone(), m.clone());
        async move {
            if let Some(time) = server_time(&req) {
                return time;
            }
            let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(at_once, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            axum::Json(Vec::<i64>::new()).into_response()
        }
    });
    let api = own_client(&serve(app).await, fast_options());
    let calls = (0..200).map(|_| api.list_send_connector_ids());
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(Result::is_ok));
    let most = most.load(Ordering::SeqCst);
    let limit = sendconnector_operator::ovh::client::REQUESTS_IN_FLIGHT;
    assert!(
        (2..=limit).contains(&most),
        "{most} requests in flight at once (limit {limit})"
    );
}
