//! Property tests: whatever OVH (or something in front of it) answers, decoding gives a value
//! or a clear, bounded error, and never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::client::{Call, Reply, api_error};
use super::error::OvhError;
use super::model::{Account, Domain, SendConnector, Task};
use proptest::prelude::*;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const PATH: &str = "/email/exchange/org-1/service/svc-1/sendConnector/29";

/// The most an error about an unreadable answer may print (the path here is short).
const DECODE_DISPLAY_LIMIT: usize = 600;
/// The most an OVH error (HTTP 4xx/5xx) may print.
const API_DISPLAY_LIMIT: usize = 4096 + 512;

fn call() -> Call {
    Call::new(
        Method::GET,
        "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector/{id}",
        PATH,
    )
}

fn reply(status: u16, body: &[u8]) -> Reply {
    Reply {
        status,
        headers: HeaderMap::new(),
        body: bytes::Bytes::copy_from_slice(body),
        query_id: None,
    }
}

/// Decodes `body` as `T`: a value, or a decode error that names the call and stays short.
fn check<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    match reply(status, body).json::<T>(&call()) {
        Ok(_) => Ok(()),
        Err(e @ OvhError::Decode { .. }) => {
            let shown = e.to_string();
            prop_assert!(shown.contains(PATH), "{}", shown);
            prop_assert!(shown.contains("could not read"), "{}", shown);
            prop_assert!(
                shown.len() <= DECODE_DISPLAY_LIMIT,
                "{} bytes: {}",
                shown.len(),
                shown
            );
            prop_assert_eq!(e.category(), "decode");
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("not a decode error: {e:?}"))),
    }
}

fn check_all(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    check::<SendConnector>(status, body)?;
    check::<Task>(status, body)?;
    check::<Account>(status, body)?;
    check::<Domain>(status, body)?;
    check::<Vec<i64>>(status, body)?;
    check::<i64>(status, body)?;
    check::<Option<Value>>(status, body)?;
    Ok(())
}

/// Valid answers of each model, as OVH sends them.
fn samples() -> Vec<Value> {
    vec![
        json!({"smartHost":"smtp-relay.example.com","displayName":"relay","state":"ok","maxSendSize":100,"smartHostAuthMechanism":"basicAuthRequireTLS","port":587,"lastUpdateDate":null,"creationDate":"2023-09-25T14:06:02+02:00","taskPendingId":0,"id":29,"requireTLS":true}),
        json!({"todoDate":"2023-09-25T14:06:02+02:00","id":113_924_189,"finishDate":null,"function":"addSendConnector","status":"todo"}),
        json!({"primaryEmailAddress":"newsletter@mydomain.ovh","domain":"mydomain.ovh","sendConnectorId":29,"state":"ok","taskPendingId":0,"spamAndVirusConfiguration":{"checkDKIM":false,"checkSPF":false,"deleteSpam":false,"deleteVirus":true,"putInJunk":false,"tagSpam":true,"tagVirus":true}}),
        json!({"name":"mydomain.ovh","sendConnectorIdDefault":0,"sbrDefault":null,"state":"ok","taskPendingId":0}),
        json!([29, 30, 31]),
    ]
}

/// Any JSON value of a few levels, with strings up to a few thousand characters.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        (0usize..5000).prop_map(|n| Value::from("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_decode_or_fail_clearly(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        status in prop_oneof![Just(200u16), Just(201), Just(204), 100u16..600],
    ) {
        check_all(status, &body)?;
    }

    #[test]
    fn truncated_answers_fail_clearly(sample in 0usize..5, cut in 0usize..4096) {
        let body = samples()[sample].to_string();
        let cut = cut.min(body.len());
        check_all(200, &body.as_bytes()[..cut])?;
    }

    #[test]
    fn a_wrong_type_in_any_field_fails_clearly(
        sample in 0usize..5,
        field in any::<prop::sample::Index>(),
        value in any_json(),
    ) {
        let mut answer = samples()[sample].clone();
        match &mut answer {
            Value::Object(fields) => {
                let key = fields.keys().nth(field.index(fields.len())).cloned().unwrap();
                fields.insert(key, value);
            }
            Value::Array(items) => {
                let i = field.index(items.len());
                items[i] = value;
            }
            _ => unreachable!(),
        }
        check_all(200, answer.to_string().as_bytes())?;
    }

    #[test]
    fn html_pages_fail_clearly(
        title in ".{0,80}",
        text in prop_oneof![".{0,400}", (0usize..20_000).prop_map(|n| "w ".repeat(n))],
        status in prop_oneof![Just(200u16), Just(503)],
    ) {
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1>\n<p>{text}</p></body></html>\n"
        );
        check_all(status, page.as_bytes())?;
    }

    #[test]
    fn error_answers_are_read_and_bounded(
        status in 400u16..600,
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            (any_json(), ".{0,40}").prop_map(|(v, class)| {
                json!({"class": class, "message": v}).to_string().into_bytes()
            }),
            (0usize..(1 << 20)).prop_map(|n| {
                json!({"class": "Client::BadRequest", "message": "m".repeat(n)}).to_string().into_bytes()
            }),
        ],
    ) {
        let e = OvhError::Api(Box::new(api_error(&call(), status, &HeaderMap::new(), &body, None)));
        let shown = e.to_string();
        prop_assert!(shown.contains(PATH), "{}", shown);
        prop_assert!(shown.len() <= API_DISPLAY_LIMIT, "{} bytes", shown.len());
        let _ = (e.is_retryable(), e.category());
    }
}
