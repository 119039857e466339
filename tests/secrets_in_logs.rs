//! Everything the OVH client and the simulator log at debug level, and every error they
//! return, is searched for every secret they handled: none may appear.
//!
//! One test in its own binary, so the global log subscriber it installs sees only this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ovh_simulator::{FaultKind, FaultRule, Faults, Seed, Simulator, SimulatorConfig};
use sendconnector_operator::ovh::model::{AuthMechanism, ChangeAuthentication, NewSendConnector};
use sendconnector_operator::ovh::{
    Budget, BudgetSettings, ClientOptions, Credentials, ExchangeClient, OvhClient,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APPLICATION_SECRET: &str = "AS-8c1f0e6b2d7a4e93";
const CONSUMER_KEY: &str = "CK-57d2b9a04f1c6e38";
const CLIENT_SECRET: &str = "CS-a9e47b13c6d2f805";
const PASSWORD_1: &str = "PW1-3b8e1f7c92d04a6e";
const PASSWORD_2: &str = "PW2-e40c7a95b1f2d863";
const WRONG_SECRET: &str = "WRONG-f13a9c7e5b2d";

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

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_is_ever_logged_or_returned() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let seed = format!(
        r#"
credentials:
  - applicationKey: ak
    applicationSecret: {APPLICATION_SECRET}
    consumerKey: {CONSUMER_KEY}
    accessRules: [{{method: GET, path: "/*"}}, {{method: POST, path: "/*"}}, {{method: PUT, path: "/*"}}, {{method: DELETE, path: "/*"}}]
  - clientId: sa
    clientSecret: {CLIENT_SECRET}
services:
  - organization: org
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh]
tasks: {{todoSeconds: 0.01, doingSeconds: 0.01}}
"#
    );
    let config = SimulatorConfig {
        seed: Seed::from_yaml(&seed).unwrap(),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let budget = Arc::new(Budget::new(BudgetSettings {
        rate: 1000.0,
        burst: 1000,
    }));
    let creds = |pairs: &[(&str, &str)]| {
        let mut map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.insert("endpoint".into(), sim.base_url());
        Credentials::from_map(&map).unwrap()
    };
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let classic = OvhClient::new(
        creds(&[
            ("applicationKey", "ak"),
            ("applicationSecret", APPLICATION_SECRET),
            ("consumerKey", CONSUMER_KEY),
        ]),
        budget.clone(),
        options.clone(),
    )
    .unwrap();
    let oauth = OvhClient::new(
        creds(&[("clientId", "sa"), ("clientSecret", CLIENT_SECRET)]),
        budget.clone(),
        options.clone(),
    )
    .unwrap();
    let wrong = OvhClient::new(
        creds(&[
            ("applicationKey", "ak"),
            ("applicationSecret", WRONG_SECRET),
            ("consumerKey", CONSUMER_KEY),
        ]),
        budget.clone(),
        options.clone(),
    )
    .unwrap();
    let mut printed = vec![format!("{classic:?} {oauth:?} {wrong:?}")];

    let api = ExchangeClient::new(classic.clone()).service("org", "org");
    let body = NewSendConnector {
        display_name: "relay".into(),
        smart_host: "smtp-relay.example.com".into(),
        port: 587,
        require_tls: true,
        max_send_size: 100,
        smart_host_auth_mechanism: AuthMechanism::BasicAuth,
        user: Some("relay-user".into()),
        password: Some(PASSWORD_1.into()),
    };
    printed.push(format!("{body:?}"));
    api.create_send_connector(&body).await.unwrap();
    // A create whose answer is lost, and one refused by the server: error paths log too.
    sim.sim().set_faults(Faults {
        rules: vec![
            FaultRule::new(FaultKind::LoseResponse)
                .method("POST")
                .times(1),
        ],
        ..Faults::default()
    });
    printed.push(format!(
        "{:?}",
        api.create_send_connector(&body).await.unwrap_err()
    ));
    sim.sim().set_faults(Faults {
        rules: vec![FaultRule::new(FaultKind::Status500).method("POST").times(1)],
        ..Faults::default()
    });
    printed.push(
        api.create_send_connector(&body)
            .await
            .unwrap_err()
            .to_string(),
    );

    let id = loop {
        let all = api.list_send_connectors().await.unwrap();
        if let Some(c) = all.iter().find(|c| c.pending_task().is_none()) {
            break c.id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let change = ChangeAuthentication {
        smart_host_auth_mechanism: AuthMechanism::BasicAuth,
        user: Some("u".into()),
        password: Some(PASSWORD_2.into()),
    };
    printed.push(format!("{change:?}"));
    api.change_authentication(id, &change).await.unwrap();
    ExchangeClient::new(oauth)
        .service("org", "org")
        .list_send_connector_ids()
        .await
        .unwrap();
    let e = ExchangeClient::new(wrong)
        .service("org", "org")
        .list_send_connector_ids()
        .await
        .unwrap_err();
    printed.push(format!("{e} {e:?}"));
    printed.push(sim.sim().state().to_string());

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("OVH request"),
        "the client logged at debug level: {logs}"
    );
    assert!(logs.lines().count() > 20, "the capture saw the traffic");
    let everything = format!("{logs}\n{}", printed.join("\n"));
    for secret in [
        APPLICATION_SECRET,
        CONSUMER_KEY,
        CLIENT_SECRET,
        PASSWORD_1,
        PASSWORD_2,
        WRONG_SECRET,
    ] {
        assert!(
            !everything.contains(secret),
            "secret {secret} leaked:\n{everything}"
        );
    }
    assert!(!everything.contains("$1$"), "a request signature leaked");
    assert!(
        !everything.to_ascii_lowercase().contains("bearer "),
        "a bearer token leaked"
    );
}
