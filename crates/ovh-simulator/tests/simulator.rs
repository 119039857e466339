//! The OVH API simulator driven over real HTTP with hand-signed requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use reqwest::{Method, StatusCode};

use ovh_simulator::{
    FaultKind, FaultRule, Faults, RunningSimulator, Seed, Settings, Simulator, SimulatorConfig,
    StaleTimestampError, signature,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ORG: &str = "private-zz111111-1";
const P: &str = "/email/exchange/private-zz111111-1/service/private-zz111111-1";
const AS: &str = "app-secret-9ufkBmLa";
const CK: &str = "consumer-key-5mBuy6SU";
const CLIENT_SECRET: &str = "client-secret-Qw3rty";
const RELAY_PASSWORD: &str = "relay-password-Zx9";

const SEED: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: app-secret-9ufkBmLa
    consumerKey: consumer-key-5mBuy6SU
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}, {method: PUT, path: "/*"}, {method: DELETE, path: "/*"}]
  - applicationKey: ak
    applicationSecret: app-secret-9ufkBmLa
    consumerKey: ck-read-only
    accessRules: [{method: GET, path: "/email/exchange/*"}]
  - clientId: sa-client
    clientSecret: client-secret-Qw3rty
  - clientId: sa-read-only
    clientSecret: ro-secret
    accessRules: [{method: GET, path: "/*"}]
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]
  - organization: hosted-org
    service: hosted-svc
    domains: [other.ovh]
tasks: {todoSeconds: 0.05, doingSeconds: 0.1}
"#;

fn config(settings: Settings) -> SimulatorConfig {
    init_logs();
    let seed = Seed::from_yaml(SEED).unwrap();
    let mut config = SimulatorConfig {
        seed,
        settings,
        state_file: None,
    };
    // Seed timings win over settings: keep them short.
    config.seed.tasks = None;
    config.settings.task_todo_seconds = 0.05;
    config.settings.task_doing_seconds = 0.1;
    config
}

async fn start() -> RunningSimulator {
    start_with(Settings::default()).await
}

async fn start_with(settings: Settings) -> RunningSimulator {
    Simulator::start(config(settings), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A hand-signing client.
struct Api {
    base: String,
    http: reqwest::Client,
    ak: String,
    secret: String,
    ck: String,
    skew: i64,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Api {
    fn new(sim: &RunningSimulator) -> Self {
        Self {
            base: sim.base_url(),
            http: http(),
            ak: "ak".into(),
            secret: AS.into(),
            ck: CK.into(),
            skew: 0,
        }
    }

    fn with(sim: &RunningSimulator, ak: &str, secret: &str, ck: &str) -> Self {
        Self {
            ak: ak.into(),
            secret: secret.into(),
            ck: ck.into(),
            ..Self::new(sim)
        }
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base);
        let ts = now() + self.skew;
        let sig = signature(&self.secret, &self.ck, method, &url, body, ts);
        let mut rb = self
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
            .header("X-Ovh-Application", &self.ak)
            .header("X-Ovh-Consumer", &self.ck)
            .header("X-Ovh-Timestamp", ts.to_string())
            .header("X-Ovh-Signature", sig);
        if !body.is_empty() {
            rb = rb
                .header("Content-Type", "application/json")
                .body(body.to_vec());
        }
        rb
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let response = rb.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(self.request(method, path, &bytes)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method, path, body).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.text);
        r.body
    }

    async fn create(&self, name: &str) -> (i64, Value) {
        let task = self
            .ok(
                "POST",
                &format!("{P}/sendConnector"),
                Some(json!({"displayName": name, "smartHost": "smtp.example.com", "port": 587,
                    "smartHostAuthMechanism": "basicAuth", "user": "relay", "password": RELAY_PASSWORD})),
            )
            .await;
        let list = self.ok("GET", &format!("{P}/sendConnector"), None).await;
        let mut id = 0;
        for candidate in list.as_array().unwrap() {
            let c = self
                .ok("GET", &format!("{P}/sendConnector/{candidate}"), None)
                .await;
            if c["displayName"] == name {
                id = c["id"].as_i64().unwrap();
            }
        }
        assert_ne!(id, 0, "connector {name} not listed");
        (id, task)
    }

    async fn wait_task(&self, id: &Value) -> Value {
        let path = format!("{P}/task/{id}");
        wait_for(|| async {
            let t = self.ok("GET", &path, None).await;
            matches!(t["status"].as_str(), Some("done" | "error")).then_some(t)
        })
        .await
    }
}

async fn wait_for<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn conn_path(id: i64) -> String {
    format!("{P}/sendConnector/{id}")
}

#[tokio::test]
async fn auth_time_query_id_and_signatures() {
    let sim = start().await;
    let api = Api::new(&sim);
    let r = api
        .send(api.http.get(format!("{}/auth/time", sim.base_url())))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!((r.body.as_i64().unwrap() - now()).abs() <= 2);
    let qid = r.headers["x-ovh-queryid"].to_str().unwrap();
    assert!(qid.starts_with("EU.ext-1."), "{qid}");

    // Good signature, on /1.0 and on /v1.
    assert_eq!(
        api.ok("GET", &format!("{P}/sendConnector"), None).await,
        json!([])
    );
    let v1 = Api {
        base: format!("http://{}/v1", sim.addr()),
        ..Api::new(&sim)
    };
    assert_eq!(
        v1.ok("GET", &format!("{P}/domain"), None).await,
        json!(["mydomain.ovh"])
    );

    // Wrong secret.
    let r = Api::with(&sim, "ak", "wrong", CK)
        .get(&format!("{P}/sendConnector"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        json!({"errorCode":"INVALID_SIGNATURE","httpCode":"400 Bad Request","message":"Invalid signature","class":"Client::BadRequest"})
    );
    // Unknown consumer key.
    let r = Api::with(&sim, "ak", AS, "nope")
        .get(&format!("{P}/sendConnector"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["errorCode"], "INVALID_CREDENTIAL");
    assert_eq!(r.body["message"], "This credential is not valid");
    // Unknown application key.
    let r = Api::with(&sim, "nope", AS, CK)
        .get(&format!("{P}/sendConnector"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"errorCode":"INVALID_KEY","httpCode":"403 Forbidden","message":"This application key is invalid","class":"Client::Forbidden"})
    );
    // Outside the access rules.
    let ro = Api::with(&sim, "ak", AS, "ck-read-only");
    assert_eq!(
        ro.get(&format!("{P}/sendConnector")).await.status,
        StatusCode::OK
    );
    let r = ro
        .call(
            "PUT",
            &format!("{P}/account/contact@mydomain.ovh"),
            Some(json!({"sendConnectorId": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"class":"Client::Forbidden","message":"This call has not been granted","errorCode":"NOT_GRANTED_CALL","httpCode":"403 Forbidden"})
    );
    // A URL other than the one signed (query added after signing).
    let rb = api
        .request("GET", &format!("{P}/account"), b"")
        .query(&[("primaryEmailAddress", "x")]);
    assert_eq!(api.send(rb).await.status, StatusCode::BAD_REQUEST);
    // No credentials at all.
    let r = api
        .send(api.http.get(format!("{}{P}/sendConnector", sim.base_url())))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, json!({"message": "You must login first"}));
    // Stale timestamp: 400 INVALID_SIGNATURE by default, 403 INVALID_KEY when switched.
    let stale = Api {
        skew: -400,
        ..Api::new(&sim)
    };
    let r = stale.get(&format!("{P}/sendConnector")).await;
    assert_eq!(
        (r.status, r.body["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_SIGNATURE"))
    );
    sim.sim()
        .update_settings(|s| s.stale_timestamp_error = StaleTimestampError::InvalidKey);
    let r = stale.get(&format!("{P}/sendConnector")).await;
    assert_eq!(
        (r.status, r.body["errorCode"].as_str()),
        (StatusCode::FORBIDDEN, Some("INVALID_KEY"))
    );
    sim.sim()
        .update_settings(|s| s.timestamp_tolerance_seconds = 600);
    assert_eq!(
        stale.get(&format!("{P}/sendConnector")).await.status,
        StatusCode::OK
    );
    // Every answer, errors included, carries a query id.
    assert!(r.headers.contains_key("x-ovh-queryid"));
}

#[tokio::test]
async fn clock_skew_moves_auth_time() {
    let sim = start().await;
    let api = Api::new(&sim);
    sim.sim().set_clock_skew(3600);
    let t = api
        .send(api.http.get(format!("{}/auth/time", sim.base_url())))
        .await
        .body
        .as_i64()
        .unwrap();
    assert!((t - now() - 3600).abs() <= 2);
    // A client that did not sync its clock is now stale...
    assert_eq!(
        api.get(&format!("{P}/task")).await.status,
        StatusCode::BAD_REQUEST
    );
    // ...and one that did is fine.
    let synced = Api {
        skew: 3600,
        ..Api::new(&sim)
    };
    assert_eq!(
        synced.get(&format!("{P}/task")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn oauth2_tokens() {
    let sim = start().await;
    let client = http();
    let token_url = format!("http://{}/auth/oauth2/token", sim.addr());
    let token = |id: &'static str, secret: &'static str| {
        client.post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "all"),
        ])
    };
    let r = token("sa-client", CLIENT_SECRET).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["token_type"].as_str(),
            body["expires_in"].as_u64(),
            body["scope"].as_str()
        ),
        (Some("Bearer"), Some(3599), Some("all"))
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    let r = client
        .get(format!("{}{P}/account", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );

    // HTTP Basic client credentials (what requests-oauthlib sends) work too.
    let r = client
        .post(&token_url)
        .basic_auth("sa-client", Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "all")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = token("sa-client", "wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error":"invalid_client","error_description":"ovhcloud oauth2 client does not exists"})
    );

    // A read-only service account cannot write.
    let ro: Value = token("sa-read-only", "ro-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .put(format!(
            "{}{P}/account/contact@mydomain.ovh",
            sim.base_url()
        ))
        .bearer_auth(ro["access_token"].as_str().unwrap())
        .json(&json!({"sendConnectorId": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "User not granted for this request");
    assert_eq!(
        body["details"]["unauthorizedActionsByIAM"],
        "emailExchange:apiovh:service/account/edit"
    );

    // Expiry is a setting.
    sim.sim()
        .update_settings(|s| s.oauth2_token_expires_in_seconds = 0);
    let short: Value = token("sa-client", CLIENT_SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(short["expires_in"], 0);
    let r = client
        .get(format!("{}{P}/account", sim.base_url()))
        .bearer_auth(short["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn send_connector_lifecycle() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (id, task) = api.create("relay-a").await;
    assert_eq!(task["function"], "addSendConnector");
    assert_eq!(task["status"], "todo");
    assert!(task["finishDate"].is_null());
    assert!(task["todoDate"].as_str().unwrap().ends_with("+00:00"));
    let c = sim.sim().connector(ORG, ORG, id).unwrap();
    // Fresh: creating with its task pending (unless the clock already finished it).
    if c["state"] == "creating" {
        assert_eq!(c["taskPendingId"], task["id"]);
    }
    let done = api.wait_task(&task["id"]).await;
    assert_eq!(done["status"], "done");
    assert!(done["finishDate"].is_string());
    let c = api.ok("GET", &conn_path(id), None).await;
    assert_eq!(c["state"], "ok");
    assert_eq!(c["taskPendingId"], 0);
    assert_eq!(c["port"], 587);
    assert_eq!(c["maxSendSize"], 100);
    assert_eq!(c["requireTLS"], false);
    assert_eq!(c["default"], false);
    assert_eq!(c["dnsRouting"], false);
    assert_eq!(c["smartHostAuthMechanism"], "basicAuth");
    assert!(c.get("password").is_none() && c.get("user").is_none());
    assert_eq!(
        sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some(RELAY_PASSWORD)
    );

    // Defaults when omitted.
    let t = api
        .ok(
            "POST",
            &format!("{P}/sendConnector"),
            Some(json!({"displayName": "bare", "smartHost": "h.example"})),
        )
        .await;
    api.wait_task(&t["id"]).await;
    let bare = sim
        .sim()
        .connectors(ORG, ORG)
        .into_iter()
        .find(|c| c["displayName"] == "bare")
        .unwrap();
    assert_eq!(
        (
            bare["port"].as_i64(),
            bare["smartHostAuthMechanism"].as_str()
        ),
        (Some(25), Some("none"))
    );

    // Partial PUT: a setSendConnector task, values merged.
    assert_eq!(
        api.ok("PUT", &conn_path(id), Some(json!({"port": 2525})))
            .await,
        Value::Null
    );
    let c = api.ok("GET", &conn_path(id), None).await;
    assert_eq!(c["port"], 2525);
    assert_eq!(c["displayName"], "relay-a");
    assert!(c["lastUpdateDate"].is_string());
    let pending = c["taskPendingId"].clone();
    if pending != 0 {
        assert_eq!(
            api.wait_task(&pending).await["function"],
            "setSendConnector"
        );
    }
    // Read-only keys are ignored by default.
    api.ok(
        "PUT",
        &conn_path(id),
        Some(json!({"state": "suspended", "id": 1, "requireTLS": true})),
    )
    .await;
    let c = api.ok("GET", &conn_path(id), None).await;
    assert_eq!(
        (
            c["state"].as_str(),
            c["id"].as_i64(),
            c["requireTLS"].as_bool()
        ),
        (Some("ok"), Some(id), Some(true))
    );

    // changeAuthentication.
    let t = api
        .ok("POST", &format!("{}/changeAuthentication", conn_path(id)),
            Some(json!({"smartHostAuthMechanism": "basicAuthRequireTLS", "user": "u2", "password": "p2-secret"})))
        .await;
    assert_eq!(t["function"], "setSendConnector");
    assert_eq!(api.wait_task(&t["id"]).await["status"], "done");
    assert_eq!(
        api.ok("GET", &conn_path(id), None).await["smartHostAuthMechanism"],
        "basicAuthRequireTLS"
    );
    assert_eq!(
        sim.sim().connector_password(ORG, ORG, id).as_deref(),
        Some("p2-secret")
    );
    assert_eq!(
        sim.sim().connector_user(ORG, ORG, id).as_deref(),
        Some("u2")
    );

    // Delete.
    let t = api.ok("DELETE", &conn_path(id), None).await;
    assert_eq!(t["function"], "deleteSendConnector");
    let during = sim.sim().connector(ORG, ORG, id);
    if let Some(c) = during {
        assert_eq!(c["state"], "deleting");
    }
    api.wait_task(&t["id"]).await;
    let r = api.get(&conn_path(id)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        json!({"class": "Client::NotFound", "message": format!("The requested object (id = {id}) does not exist")})
    );
}

#[tokio::test]
async fn validation_errors() {
    let sim = start().await;
    let api = Api::new(&sim);
    let post = |body: Value| {
        let api = &api;
        async move {
            api.call("POST", &format!("{P}/sendConnector"), Some(body))
                .await
        }
    };
    let r = post(json!({"smartHost": "h"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["message"], "[displayName] Property is mandatory");
    assert_eq!(
        post(json!({"displayName": "a"})).await.status,
        StatusCode::BAD_REQUEST
    );
    let r =
        post(json!({"displayName": "a", "smartHost": "h", "smartHostAuthMechanism": "ntlm"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["message"].as_str().unwrap().contains("ntlm"));
    assert_eq!(
        post(json!({"displayName": "a", "smartHost": "h", "port": "25"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(json!({"displayName": "a", "smartHost": "h", "port": 0}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(json!({"displayName": "a", "smartHost": "h", "port": 65536}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(json!({"displayName": "a", "smartHost": "h", "maxSendSize": 101}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r =
        post(json!({"displayName": "a", "smartHost": "h", "dnsRouting": true, "colour": "blue"}))
            .await;
    assert_eq!(
        r.body,
        json!({"class": "Client::BadRequest", "message": "Received not described parameters: (colour, dnsRouting) while calling creation handler"})
    );
    assert!(sim.sim().connectors(ORG, ORG).is_empty());

    let (id, _) = api.create("v").await;
    let r = api
        .call("PUT", &conn_path(id), Some(json!({"password": "x"})))
        .await;
    assert_eq!(
        r.body["message"],
        "Received not described parameters: (password) while calling update handler"
    );
    assert!(!r.text.contains('x') || !r.text.contains("\"x\""));
    assert_eq!(
        api.call("PUT", &conn_path(id), Some(json!({"maxSendSize": 0})))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = api.send(api.request("DELETE", &conn_path(id), b"{}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["message"],
        "You provided an input body while none was expected"
    );
    let r = api
        .get("/email/exchange/nope/service/nope/sendConnector")
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::NOT_FOUND,
            json!({"class":"Client::NotFound","message":"This service does not exist"})
        )
    );
    let r = api.get(&format!("{P}/account/ghost@mydomain.ovh")).await;
    assert_eq!(
        r.body["message"],
        "The requested object (primaryEmailAddress = ghost@mydomain.ovh) does not exist"
    );
    let r = api.get(&format!("{P}/domain/ghost.ovh")).await;
    assert_eq!(
        r.body["message"],
        "The requested object (name = ghost.ovh) does not exist"
    );
    let r = api.get(&format!("{P}/task/1")).await;
    assert_eq!(
        r.body["message"],
        "The requested object (id = 1) does not exist"
    );
    assert_eq!(api.get("/me").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn organisation_service_and_domain_reads() {
    let sim = start().await;
    let api = Api::new(&sim);
    assert_eq!(
        api.ok("GET", "/email/exchange", None).await,
        json!(["hosted-org", ORG])
    );
    assert_eq!(
        api.ok("GET", &format!("/email/exchange/{ORG}/service"), None)
            .await,
        json!([ORG])
    );
    let s = api.ok("GET", P, None).await;
    assert_eq!(s["domain"], ORG);
    assert!(s.get("defaultSmartHost").is_some());
    let d = api
        .ok("GET", &format!("{P}/domain/mydomain.ovh"), None)
        .await;
    assert_eq!(
        (
            d["name"].as_str(),
            d["sendConnectorIdDefault"].as_i64(),
            d["taskPendingId"].as_i64()
        ),
        (Some("mydomain.ovh"), Some(0), Some(0))
    );
    let a = api
        .ok("GET", &format!("{P}/account/contact%40mydomain.ovh"), None)
        .await;
    for key in [
        "SAMAccountName",
        "accountLicense",
        "spamAndVirusConfiguration",
        "sendConnectorId",
        "taskPendingId",
        "state",
        "quota",
        "login",
    ] {
        assert!(a.get(key).is_some(), "account lacks {key}");
    }
    assert_eq!(a["spamAndVirusConfiguration"]["deleteVirus"], true);
    assert_eq!(
        api.ok(
            "GET",
            &format!("{P}/account?primaryEmailAddress=news%25"),
            None
        )
        .await,
        json!(["newsletter@mydomain.ovh"])
    );
}

#[tokio::test]
async fn accounts_attach_detach_and_default_sbr() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (id, t) = api.create("acc").await;
    api.wait_task(&t["id"]).await;
    // Attach with the @ raw, detach with it percent-encoded.
    let raw = format!("{P}/account/newsletter@mydomain.ovh");
    let encoded = format!("{P}/account/newsletter%40mydomain.ovh");
    assert_eq!(
        api.ok("PUT", &raw, Some(json!({"sendConnectorId": id})))
            .await,
        Value::Null
    );
    let a = api.ok("GET", &encoded, None).await;
    assert_eq!(a["sendConnectorId"], id);
    let pending = a["taskPendingId"].clone();
    if pending != 0 {
        let t = api.wait_task(&pending).await;
        assert_eq!(t["function"], "setAccount");
        let listed = api.ok("GET", &format!("{encoded}/tasks"), None).await;
        assert!(listed.as_array().unwrap().contains(&pending));
        assert_eq!(
            api.ok("GET", &format!("{encoded}/tasks/{pending}"), None)
                .await["function"],
            "setAccount"
        );
    }
    api.ok(
        "PUT",
        &encoded,
        Some(json!({"sendConnectorId": 0, "primaryEmailAddress": "ignored@x"})),
    )
    .await;
    wait_for(|| async {
        let a = sim
            .sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap();
        (a["sendConnectorId"] == 0 && a["taskPendingId"] == 0).then_some(())
    })
    .await;
    assert_eq!(
        sim.sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap()["primaryEmailAddress"],
        "newsletter@mydomain.ovh"
    );

    // deleteVirus: false is rejected; true is accepted; unknown fields are named.
    let r = api
        .call(
            "PUT",
            &raw,
            Some(
                json!({"sendConnectorId": id, "spamAndVirusConfiguration": {"deleteVirus": false}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["class"], "Client::BadRequest");
    api.ok(
        "PUT",
        &raw,
        Some(json!({"spamAndVirusConfiguration": {"deleteVirus": true, "tagSpam": true}})),
    )
    .await;
    let a = sim
        .sim()
        .account(ORG, ORG, "newsletter@mydomain.ovh")
        .unwrap();
    assert_eq!(
        (
            a["spamAndVirusConfiguration"]["tagSpam"].as_bool(),
            a["spamAndVirusConfiguration"]["checkDKIM"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let r = api
        .call(
            "PUT",
            &raw,
            Some(json!({"sendConnectorId": id, "foo": 1, "bar": 2})),
        )
        .await;
    assert_eq!(
        r.body["message"],
        "Received not described parameters: (bar, foo) while calling update handler"
    );
    let r = api
        .call("PUT", &raw, Some(json!({"sendConnectorId": 424_242})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // changeDefaultSBR only affects mailboxes created afterwards.
    let sbr = format!("{P}/domain/mydomain.ovh/changeDefaultSBR");
    assert_eq!(
        api.ok("PUT", &sbr, Some(json!({"sendConnectorIdDefault": id})))
            .await,
        Value::Null
    );
    assert_eq!(
        sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"],
        id
    );
    assert_eq!(
        sim.sim().account(ORG, ORG, "contact@mydomain.ovh").unwrap()["sendConnectorId"],
        0
    );
    sim.sim()
        .create_account(ORG, ORG, "new@mydomain.ovh")
        .unwrap();
    assert_eq!(
        api.ok("GET", &format!("{P}/account/new@mydomain.ovh"), None)
            .await["sendConnectorId"],
        id
    );

    // Deleting the connector: references fall back to 0 once the task is done.
    api.ok("PUT", &raw, Some(json!({"sendConnectorId": id})))
        .await;
    let t = api.ok("DELETE", &conn_path(id), None).await;
    api.wait_task(&t["id"]).await;
    assert_eq!(
        sim.sim()
            .account(ORG, ORG, "newsletter@mydomain.ovh")
            .unwrap()["sendConnectorId"],
        0
    );
    assert_eq!(
        sim.sim().account(ORG, ORG, "new@mydomain.ovh").unwrap()["sendConnectorId"],
        0
    );
    assert_eq!(
        sim.sim().domain(ORG, ORG, "mydomain.ovh").unwrap()["sendConnectorIdDefault"],
        0
    );
}

#[tokio::test]
async fn switches_in_their_other_position() {
    let sim = start_with(Settings {
        put_connector_creates_task: false,
        put_account_creates_task: false,
        reject_delete_virus_false: false,
        reject_partial_account_put: true,
        reject_read_only_keys: true,
        change_authentication_function: "changeAuthentication".into(),
        ..Settings::default()
    })
    .await;
    let api = Api::new(&sim);
    let (id, t) = api.create("sw").await;
    api.wait_task(&t["id"]).await;
    // PUT without tasks.
    api.ok("PUT", &conn_path(id), Some(json!({"port": 26})))
        .await;
    assert_eq!(
        api.ok("GET", &conn_path(id), None).await["taskPendingId"],
        0
    );
    // Read-only keys rejected.
    let r = api
        .call("PUT", &conn_path(id), Some(json!({"state": "ok"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // changeAuthentication's task function.
    let t = api
        .ok(
            "POST",
            &format!("{}/changeAuthentication", conn_path(id)),
            Some(json!({"smartHostAuthMechanism": "none"})),
        )
        .await;
    assert_eq!(t["function"], "changeAuthentication");
    api.wait_task(&t["id"]).await;
    // Partial account PUT rejected; the full form with deleteVirus false accepted.
    let acc = format!("{P}/account/contact@mydomain.ovh");
    let r = api
        .call("PUT", &acc, Some(json!({"sendConnectorId": id})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    api.ok(
        "PUT",
        &acc,
        Some(json!({"sendConnectorId": id, "spamAndVirusConfiguration": {"deleteVirus": false}})),
    )
    .await;
    let a = api.ok("GET", &acc, None).await;
    assert_eq!(
        (a["sendConnectorId"].as_i64(), a["taskPendingId"].as_i64()),
        (Some(id), Some(0))
    );
    assert_eq!(a["spamAndVirusConfiguration"]["deleteVirus"], false);

    // Deleting a connector in use is rejected.
    sim.sim()
        .update_settings(|s| s.reject_delete_of_used_connector = true);
    let r = api.call("DELETE", &conn_path(id), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    sim.sim()
        .edit_account(
            ORG,
            ORG,
            "contact@mydomain.ovh",
            json!({"sendConnectorId": 0}),
        )
        .unwrap();

    // Mutations while a task runs: 409.
    sim.sim().update_settings(|s| {
        s.reject_mutation_while_pending = true;
        s.task_todo_seconds = 30.0;
    });
    let t = api.ok("DELETE", &conn_path(id), None).await;
    let r = api
        .call("PUT", &conn_path(id), Some(json!({"port": 27})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["class"], "Client::Conflict::ActionInProgress");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("please try later")
    );
    // Pending-only task list.
    sim.sim()
        .update_settings(|s| s.task_list_includes_finished = false);
    assert_eq!(
        api.ok("GET", &format!("{P}/task"), None).await,
        json!([t["id"]])
    );
    sim.sim()
        .update_settings(|s| s.task_list_includes_finished = true);
    assert!(
        api.ok("GET", &format!("{P}/task"), None)
            .await
            .as_array()
            .unwrap()
            .len()
            > 1
    );

    // New connectors listed only once created.
    sim.sim()
        .update_settings(|s| s.list_connector_when_created = true);
    let t2 = api
        .ok(
            "POST",
            &format!("{P}/sendConnector"),
            Some(json!({"displayName": "late", "smartHost": "h"})),
        )
        .await;
    let listed = api.ok("GET", &format!("{P}/sendConnector"), None).await;
    assert_eq!(listed, json!([id]), "creating connector must be hidden");
    sim.sim().update_settings(|s| s.task_todo_seconds = 0.0);
    // Task timings are fixed at creation: t2 still waits its 30 s; the listing does not show it.
    assert_eq!(
        api.ok("GET", &format!("{P}/task/{}", t2["id"]), None).await["status"],
        "todo"
    );
}

#[tokio::test]
async fn vanishing_tasks_and_access_rule_wildcards() {
    let sim = start_with(Settings {
        vanishing_tasks: true,
        ..Settings::default()
    })
    .await;
    let api = Api::new(&sim);
    let (id, t) = api.create("van").await;
    wait_for(|| async {
        (sim.sim().connector(ORG, ORG, id).unwrap()["state"] == "ok").then_some(())
    })
    .await;
    assert_eq!(
        api.get(&format!("{P}/task/{}", t["id"])).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.ok("GET", &format!("{P}/task"), None).await, json!([]));

    // `*` stops at `/` when the switch is off: the read-only key's `/email/exchange/*` then
    // no longer covers deeper paths.
    let ro = Api::with(&sim, "ak", AS, "ck-read-only");
    assert_eq!(ro.get(&format!("{P}/task")).await.status, StatusCode::OK);
    sim.sim()
        .update_settings(|s| s.access_rule_star_matches_slash = false);
    assert_eq!(
        ro.get(&format!("{P}/task")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ro.get("/email/exchange/x").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn injected_task_failures() {
    let sim = start().await;
    let api = Api::new(&sim);
    sim.sim().fail_next_task(Some("addSendConnector"));
    let t = api
        .ok(
            "POST",
            &format!("{P}/sendConnector"),
            Some(json!({"displayName": "f", "smartHost": "h"})),
        )
        .await;
    assert_eq!(api.wait_task(&t["id"]).await["status"], "error");
    assert!(sim.sim().connectors(ORG, ORG).is_empty());
    // A failed PUT restores the old values.
    let (id, t) = api.create("g").await;
    api.wait_task(&t["id"]).await;
    sim.sim().fail_next_task(None);
    api.ok("PUT", &conn_path(id), Some(json!({"port": 2600})))
        .await;
    let pending = api.ok("GET", &conn_path(id), None).await["taskPendingId"].clone();
    assert_eq!(api.wait_task(&pending).await["status"], "error");
    assert_eq!(api.ok("GET", &conn_path(id), None).await["port"], 587);
}

#[tokio::test]
async fn batch_reads_on_and_off() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (a, _) = api.create("b1").await;
    let (b, _) = api.create("b2").await;
    let path = format!("{P}/sendConnector/{a},{b},999");
    let rb = api.request("GET", &path, b"").header("X-Ovh-Batch", ",");
    let r = api.send(rb).await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["key"], a.to_string());
    assert_eq!(items[0]["value"]["displayName"], "b1");
    assert!(items[0]["error"].is_null());
    assert!(items[2]["value"].is_null());
    assert_eq!(
        items[2]["error"],
        "The requested object (id = 999) does not exist"
    );
    // Accounts with another separator.
    let rb = api
        .request(
            "GET",
            &format!("{P}/account/newsletter@mydomain.ovh|contact@mydomain.ovh"),
            b"",
        )
        .header("X-Ovh-Batch", "|");
    let r = api.send(rb).await;
    assert_eq!(
        r.body[1]["value"]["primaryEmailAddress"],
        "contact@mydomain.ovh"
    );
    // Missing key fails the whole call when switched.
    sim.sim()
        .update_settings(|s| s.batch_missing_key_fails = true);
    let r = api
        .send(api.request("GET", &path, b"").header("X-Ovh-Batch", ","))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Switched off: the header is ignored and the joined key is a missing object.
    sim.sim().update_settings(|s| s.batch = false);
    let r = api
        .send(
            api.request("GET", &format!("{P}/sendConnector/{a},{b}"), b"")
                .header("X-Ovh-Batch", ","),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn iceberg_lists_on_and_off() {
    let sim = start().await;
    let api = Api::new(&sim);
    for i in 0..3 {
        api.create(&format!("ice{i}")).await;
    }
    let iceberg = |path: String, extra: Vec<(&'static str, &'static str)>| {
        let mut rb = api
            .request("GET", &path, b"")
            .header("X-Pagination-Mode", "CachedObjectList-Pages");
        for (k, v) in extra {
            rb = rb.header(k, v);
        }
        rb
    };
    let r = api
        .send(iceberg(
            format!("{P}/sendConnector"),
            vec![
                ("X-Pagination-Size", "2"),
                ("X-Pagination-Number", "2"),
                ("X-Pagination-Sort", "displayName"),
                ("X-Pagination-Sort-Order", "DESC"),
            ],
        ))
        .await;
    assert_eq!(r.headers["x-pagination-elements"], "3");
    assert_eq!(r.headers["x-pagination-total"], "2");
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["displayName"], "ice0");
    let r = api
        .send(iceberg(
            format!("{P}/account"),
            vec![("X-Pagination-Filter", "primaryEmailAddress:like=news%25")],
        ))
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["primaryEmailAddress"], "newsletter@mydomain.ovh");
    assert!(r.body[0].get("sendConnectorId").is_some());
    let r = api.send(iceberg(format!("{P}/domain"), vec![])).await;
    assert_eq!(r.body[0]["name"], "mydomain.ovh");
    let r = api
        .send(iceberg(
            format!("{P}/task"),
            vec![(
                "X-Pagination-Filter",
                "function:eq=addSendConnector&status:in=todo,doing,done",
            )],
        ))
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    // Off: a plain key list.
    sim.sim().update_settings(|s| s.iceberg = false);
    let r = api.send(iceberg(format!("{P}/domain"), vec![])).await;
    assert_eq!(r.body, json!(["mydomain.ovh"]));
    assert!(!r.headers.contains_key("x-pagination-elements"));
}

#[tokio::test]
async fn fault_kinds() {
    let sim = start().await;
    let api = Api::new(&sim);
    let set = |rule: FaultRule| {
        sim.sim().set_faults(Faults {
            latency_ms: 0,
            seed: None,
            rules: vec![rule.times(1)],
        });
    };
    let list = format!("{P}/sendConnector");

    set(FaultRule::new(FaultKind::Html408));
    let r = api.get(&list).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.headers["content-type"], "text/html");
    assert_eq!(
        r.text,
        "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n"
    );
    assert_eq!(api.get(&list).await.status, StatusCode::OK, "one use only");

    set(FaultRule::new(FaultKind::TooManyRequests {
        retry_after_seconds: 7,
    })
    .method("GET"));
    let r = api.get(&list).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(
        r.body,
        json!({"class": "Client::TooManyRequests", "message": "Too many requests"})
    );

    set(FaultRule::new(FaultKind::Status400 {
        message_bytes: 3 << 20,
    }));
    let r = api.get(&list).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["class"], "Client::BadRequest");
    let message = r.body["message"].as_str().unwrap();
    assert_eq!(message.len(), 3 << 20);
    assert!(
        message.starts_with("Invalid parameter: xxx"),
        "{}",
        &message[..40]
    );

    set(FaultRule::new(FaultKind::Status500).path_contains("/sendConnector"));
    assert_eq!(
        api.get(&list).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // A rule for another method or path does not apply; probability 0 never does.
    set(FaultRule::new(FaultKind::Status500).method("PUT"));
    assert_eq!(api.get(&list).await.status, StatusCode::OK);
    set(FaultRule::new(FaultKind::Status500).probability(0.0));
    assert_eq!(api.get(&list).await.status, StatusCode::OK);

    set(FaultRule::new(FaultKind::ConnectionReset));
    assert!(api.request("GET", &list, b"").send().await.is_err());
    assert_eq!(api.get(&list).await.status, StatusCode::OK);

    set(FaultRule::new(FaultKind::Timeout));
    let started = Instant::now();
    let e = api
        .request("GET", &list, b"")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));

    set(FaultRule::new(FaultKind::LoseResponse).method("POST"));
    let body = json!({"displayName": "lost", "smartHost": "h"}).to_string();
    assert!(
        api.request("POST", &list, body.as_bytes())
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        sim.sim().connectors(ORG, ORG)[0]["displayName"],
        "lost",
        "the change was applied"
    );

    sim.sim().set_faults(Faults {
        latency_ms: 200,
        seed: None,
        rules: vec![],
    });
    let started = Instant::now();
    assert_eq!(api.get(&list).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn state_file_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let mut cfg = config(Settings::default());
    cfg.state_file = Some(file.clone());
    let id;
    {
        let sim = Simulator::start(cfg.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let api = Api::new(&sim);
        let (created, t) = api.create("kept").await;
        id = created;
        api.wait_task(&t["id"]).await;
        api.ok(
            "PUT",
            &format!("{P}/account/contact@mydomain.ovh"),
            Some(json!({"sendConnectorId": id})),
        )
        .await;
    }
    assert!(file.exists());
    let second = Simulator::new(cfg).unwrap();
    let c = second.connector(ORG, ORG, id).unwrap();
    assert_eq!(
        (c["displayName"].as_str(), c["state"].as_str()),
        (Some("kept"), Some("ok"))
    );
    assert_eq!(
        second.account(ORG, ORG, "contact@mydomain.ovh").unwrap()["sendConnectorId"],
        id
    );
    assert_eq!(
        second.connector_password(ORG, ORG, id).as_deref(),
        Some(RELAY_PASSWORD)
    );
    // The next connector gets a new id.
    let sim = RunningFrom::start(second).await;
    let api = Api {
        base: format!("http://{}/1.0", sim.1),
        ..Api::with_base()
    };
    let (next, _) = api.create("next").await;
    assert!(next > id);
    drop(sim);

    // A service added to the seed later appears next to the saved objects.
    let mut grown = config(Settings::default());
    grown.state_file = Some(file);
    grown.seed.services.push(
        Seed::from_yaml("services: [{organization: late-org, accounts: [a@late.ovh]}]")
            .unwrap()
            .services
            .remove(0),
    );
    let third = Simulator::new(grown).unwrap();
    assert!(
        third
            .account("late-org", "late-org", "a@late.ovh")
            .is_some()
    );
    assert!(third.connector(ORG, ORG, id).is_some());
}

#[test]
fn the_example_seed_parses() {
    // The workspace's example seed, when the crate is built inside the workspace.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !root.join("crates/ovh-simulator").is_dir() {
        return;
    }
    let text = std::fs::read_to_string(root.join("simulator/seed.yaml")).unwrap();
    let seed = Seed::from_yaml(&text).unwrap();
    assert!(!seed.credentials.is_empty() && !seed.services.is_empty());
    Simulator::new(SimulatorConfig {
        seed,
        ..SimulatorConfig::default()
    })
    .unwrap();
}

/// Serves an existing `Simulator` (the accept loop without `start`).
struct RunningFrom(tokio::task::JoinHandle<()>, std::net::SocketAddr);

impl RunningFrom {
    async fn start(sim: Simulator) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            sim.serve(listener).await.unwrap();
        });
        Self(task, addr)
    }
}

impl Drop for RunningFrom {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Api {
    fn with_base() -> Self {
        Self {
            base: String::new(),
            http: http(),
            ak: "ak".into(),
            secret: AS.into(),
            ck: CK.into(),
            skew: 0,
        }
    }
}

#[tokio::test]
#[allow(clippy::many_single_char_names)]
async fn admin_api_from_loopback() {
    let sim = start().await;
    let api = Api::new(&sim);
    let admin = |path: &str| format!("http://{}/_simulator{path}", sim.addr());
    let client = http();
    let (id, t) = api.create("adm").await;
    api.wait_task(&t["id"]).await;

    let state: Value = client
        .get(admin("/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = state.to_string();
    assert!(!text.contains(RELAY_PASSWORD));
    assert!(text.contains("<redacted>"));
    assert_eq!(state["services"][0]["organization"], ORG);

    let r = client
        .patch(admin(&format!("/services/{ORG}/{ORG}/sendConnector/{id}")))
        .json(&json!({"port": 465}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.ok("GET", &conn_path(id), None).await["port"], 465);

    api.ok(
        "PUT",
        &format!("{P}/account/contact@mydomain.ovh"),
        Some(json!({"sendConnectorId": id})),
    )
    .await;
    client
        .patch(admin(&format!(
            "/services/{ORG}/{ORG}/account/contact@mydomain.ovh"
        )))
        .json(&json!({"sendConnectorId": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sim.sim().account(ORG, ORG, "contact@mydomain.ovh").unwrap()["sendConnectorId"],
        0
    );

    let r = client
        .post(admin(&format!("/services/{ORG}/{ORG}/account")))
        .json(&json!({"primaryEmailAddress": "made@mydomain.ovh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        api.ok("GET", &format!("{P}/account"), None)
            .await
            .as_array()
            .unwrap()
            .contains(&json!("made@mydomain.ovh"))
    );

    let r = client
        .delete(admin(&format!("/services/{ORG}/{ORG}/sendConnector/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.get(&conn_path(id)).await.status, StatusCode::NOT_FOUND);
    let r = client
        .delete(admin(&format!("/services/{ORG}/{ORG}/sendConnector/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Settings: partial PUT merges.
    let s: Value = client
        .put(admin("/settings"))
        .json(&json!({"batch": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (s["batch"].as_bool(), s["iceberg"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(!sim.sim().settings().batch);
    let r = client
        .put(admin("/settings"))
        .json(&json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Faults.
    client
        .put(admin("/faults"))
        .json(&json!({"rules": [{"kind": {"tooManyRequests": {"retryAfterSeconds": 2}}, "remaining": 1}]}))
        .send()
        .await
        .unwrap();
    let f: Value = client
        .get(admin("/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["rules"][0]["remaining"], 1);
    assert_eq!(
        api.get(&format!("{P}/task")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Faults never touch the admin API.
    client
        .put(admin("/faults"))
        .json(&json!({"rules": [{"kind": "status500"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        client.get(admin("/faults")).send().await.unwrap().status(),
        StatusCode::OK
    );
    client
        .put(admin("/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    // Fail-next.
    client
        .post(admin("/tasks/fail-next"))
        .json(&json!({"function": "addSendConnector"}))
        .send()
        .await
        .unwrap();
    let t = api
        .ok(
            "POST",
            &format!("{P}/sendConnector"),
            Some(json!({"displayName": "x", "smartHost": "h"})),
        )
        .await;
    assert_eq!(api.wait_task(&t["id"]).await["status"], "error");

    // Clock.
    client
        .put(admin("/clock"))
        .json(&json!({"skewSeconds": -120}))
        .send()
        .await
        .unwrap();
    let t: i64 = client
        .get(format!("{}/auth/time", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!((t - now() + 120).abs() <= 2);

    // Counters.
    let c: Value = client
        .get(admin("/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        c["POST /email/exchange/{organizationName}/service/{exchangeService}/sendConnector"
            .to_string()]
        .as_u64()
        .unwrap()
            >= 2
    );
    client.delete(admin("/counters")).send().await.unwrap();
    assert!(sim.sim().counters().is_empty());
}

#[tokio::test]
async fn admin_api_refuses_other_peers() {
    use tower::ServiceExt;
    let sim = Simulator::new(config(Settings::default())).unwrap();
    let request = |peer: Option<&str>| {
        let mut req = axum::http::Request::get("/_simulator/state")
            .body(axum::body::Body::empty())
            .unwrap();
        if let Some(peer) = peer {
            let addr: std::net::SocketAddr = peer.parse().unwrap();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(addr));
        }
        req
    };
    let r = sim
        .router()
        .oneshot(request(Some("10.1.2.3:5555")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = sim.router().oneshot(request(None)).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = sim
        .router()
        .oneshot(request(Some("127.0.0.1:5555")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = sim
        .router()
        .oneshot(request(Some("[::1]:5555")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn counters_and_write_count() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (id, _) = api.create("cnt").await;
    api.ok("PUT", &conn_path(id), Some(json!({"port": 30})))
        .await;
    // Turned away by authentication: counted by route, not as a write.
    Api::with(&sim, "ak", "bad", CK)
        .call("PUT", &conn_path(id), Some(json!({"port": 31})))
        .await;
    let counters = sim.sim().counters();
    let key = |m: &str, rest: &str| {
        format!("{m} /email/exchange/{{organizationName}}/service/{{exchangeService}}{rest}")
    };
    assert_eq!(counters[&key("POST", "/sendConnector")], 1);
    assert_eq!(counters[&key("PUT", "/sendConnector/{id}")], 2);
    assert!(counters[&key("GET", "/sendConnector/{id}")] >= 1);
    assert_eq!(sim.sim().write_count(), 2);
    sim.sim().reset_counters();
    assert!(sim.sim().counters().is_empty());
    assert_eq!(sim.sim().write_count(), 0);
}

#[tokio::test]
async fn auth_credential_creates_a_consumer_key() {
    let sim = start().await;
    let client = http();
    let r: Value = client
        .post(format!("{}/auth/credential", sim.base_url()))
        .header("X-Ovh-Application", "ak")
        .json(&json!({"accessRules": [{"method": "GET", "path": "/email/exchange/*"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "pendingValidation");
    let ck = r["consumerKey"].as_str().unwrap();
    let api = Api::with(&sim, "ak", AS, ck);
    assert_eq!(api.get(&format!("{P}/task")).await.status, StatusCode::OK);
    assert_eq!(
        api.call("POST", &format!("{P}/sendConnector"), Some(json!({})))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// Every test's logs, at debug level, in one buffer (a process-wide subscriber, installed
/// before any request so no log call site is ever cached as disabled).
fn init_logs() -> Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(capture.clone())
                .with_ansi(false)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            capture
        })
        .clone()
}

/// A `MakeWriter` appending every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_in_logs_or_error_bodies() {
    let capture = init_logs();
    let sim = start().await;
    let api = Api::new(&sim);
    let mut bodies = String::new();
    let (id, t) = api.create("logged").await;
    api.wait_task(&t["id"]).await;
    let secrets_sent =
        json!({"smartHostAuthMechanism": "basicAuth", "user": "u", "password": RELAY_PASSWORD});
    bodies += &api
        .call(
            "POST",
            &format!("{}/changeAuthentication", conn_path(id)),
            Some(secrets_sent.clone()),
        )
        .await
        .text;
    bodies += &api
        .call("PUT", &conn_path(id), Some(secrets_sent))
        .await
        .text;
    bodies += &Api::with(&sim, "ak", "wrong", CK)
        .get(&conn_path(id))
        .await
        .text;
    bodies += &Api::with(&sim, "ak", AS, "wrong-ck")
        .get(&conn_path(id))
        .await
        .text;
    let client = http();
    let token: Value = client
        .post(format!("http://{}/auth/oauth2/token", sim.addr()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sa-client"),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    bodies += &client
        .get(format!("{}{P}/task", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    bodies += &client
        .post(format!("http://{}/auth/oauth2/token", sim.addr()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sa-client"),
            ("client_secret", "wrong-secret-x"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sim.sim().set_faults(Faults {
        latency_ms: 0,
        seed: None,
        rules: vec![FaultRule::new(FaultKind::LoseResponse).times(1)],
    });
    let _ = api.request("GET", &conn_path(id), b"").send().await;
    bodies += &sim.sim().state().to_string();
    // A signature that was sent.
    let rb = api.request("GET", &conn_path(id), b"").build().unwrap();
    let sent_signature = rb.headers()["x-ovh-signature"].to_str().unwrap().to_owned();
    api.send(api.request("GET", &conn_path(id), b"")).await;

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("simulator request"),
        "no request logged:\n{logs}"
    );
    assert!(logs.contains("/sendConnector/{id}"), "{logs}");
    assert!(logs.contains("query_id"), "{logs}");
    for secret in [
        AS,
        CK,
        CLIENT_SECRET,
        RELAY_PASSWORD,
        access.as_str(),
        "wrong-secret-x",
        sent_signature.as_str(),
        "$1$",
    ] {
        assert!(
            !logs.contains(secret),
            "a secret ({secret}) is in the logs:\n{logs}"
        );
        assert!(
            !bodies.contains(secret),
            "a secret ({secret}) is in a response body"
        );
    }
}
