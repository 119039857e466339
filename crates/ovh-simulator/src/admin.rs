//! The admin API under `/_simulator/` (unsigned, loopback peers only): the whole state,
//! out-of-band edits the way a person uses the OVHcloud control panel, settings, faults,
//! failure injection, the clock and request counters.
use super::settings::{Faults, Settings};
use super::{Core, Simulator, SimulatorError};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};
use std::net::SocketAddr;

pub fn router(sim: Simulator) -> Router<Simulator> {
    Router::new()
        .route("/state", get(state))
        .route(
            "/services/{org}/{svc}/sendConnector/{id}",
            delete(delete_connector_route).patch(patch_connector),
        )
        .route(
            "/services/{org}/{svc}/account/{email}",
            axum::routing::patch(patch_account),
        )
        .route("/services/{org}/{svc}/account", post(post_account))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/tasks/fail-next", post(fail_next))
        .route("/clock", put(put_clock).get(get_clock))
        .route("/counters", get(get_counters).delete(reset_counters))
        .layer(middleware::from_fn_with_state(sim, loopback_only))
}

async fn loopback_only(State(_): State<Simulator>, req: Request, next: Next) -> Response {
    let loopback = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback());
    if !loopback {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"class": "Client::Forbidden", "message": "The simulator admin API only answers loopback peers"})),
        )
            .into_response();
    }
    next.run(req).await
}

fn error(e: &SimulatorError) -> Response {
    let status = match e {
        SimulatorError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, axum::Json(json!({"message": e.to_string()}))).into_response()
}

fn done(result: Result<(), SimulatorError>) -> Response {
    match result {
        Ok(()) => axum::Json(Value::Null).into_response(),
        Err(e) => error(&e),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(&SimulatorError::Invalid(e.to_string()))))
}

async fn state(State(sim): State<Simulator>) -> Response {
    axum::Json(sim.state()).into_response()
}

async fn patch_connector(
    State(sim): State<Simulator>,
    Path((org, svc, id)): Path<(String, String, i64)>,
    body: axum::body::Bytes,
) -> Response {
    match parse::<Value>(&body) {
        Ok(patch) => done(sim.edit_connector(&org, &svc, id, patch)),
        Err(r) => *r,
    }
}

async fn delete_connector_route(
    State(sim): State<Simulator>,
    Path((org, svc, id)): Path<(String, String, i64)>,
) -> Response {
    done(sim.delete_connector(&org, &svc, id))
}

async fn patch_account(
    State(sim): State<Simulator>,
    Path((org, svc, email)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    match parse::<Value>(&body) {
        Ok(patch) => done(sim.edit_account(&org, &svc, &email, patch)),
        Err(r) => *r,
    }
}

async fn post_account(
    State(sim): State<Simulator>,
    Path((org, svc)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let value = match parse::<Value>(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(email) = value.get("primaryEmailAddress").and_then(Value::as_str) else {
        return error(&SimulatorError::Invalid(
            "primaryEmailAddress is required".to_owned(),
        ));
    };
    done(sim.create_account(&org, &svc, email))
}

async fn get_settings(State(sim): State<Simulator>) -> Response {
    axum::Json(sim.settings()).into_response()
}

/// Merges the given keys into the current settings.
async fn put_settings(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let patch = match parse::<Value>(&body) {
        Ok(Value::Object(p)) => p,
        Ok(_) => {
            return error(&SimulatorError::Invalid(
                "settings must be an object".to_owned(),
            ));
        }
        Err(r) => return *r,
    };
    let mut current = serde_json::to_value(sim.settings()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut current {
        map.extend(patch);
    }
    match serde_json::from_value::<Settings>(current) {
        Ok(settings) => {
            sim.update_settings(|s| *s = settings.clone());
            axum::Json(settings).into_response()
        }
        Err(e) => error(&SimulatorError::Invalid(e.to_string())),
    }
}

async fn get_faults(State(sim): State<Simulator>) -> Response {
    axum::Json(sim.faults()).into_response()
}

async fn put_faults(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    match parse::<Faults>(&body) {
        Ok(faults) => {
            sim.set_faults(faults.clone());
            axum::Json(faults).into_response()
        }
        Err(r) => *r,
    }
}

async fn fail_next(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let function = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match parse::<Value>(&body) {
            Ok(v) => v.get("function").and_then(Value::as_str).map(str::to_owned),
            Err(r) => return *r,
        }
    };
    sim.fail_next_task(function.as_deref());
    axum::Json(Value::Null).into_response()
}

async fn get_clock(State(sim): State<Simulator>) -> Response {
    let core = sim.core();
    axum::Json(json!({"skewSeconds": core.skew_seconds, "now": core.server_now_s()}))
        .into_response()
}

async fn put_clock(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    match parse::<Value>(&body) {
        Ok(v) => match v.get("skewSeconds").and_then(Value::as_i64) {
            Some(s) => {
                sim.set_clock_skew(s);
                axum::Json(json!({"skewSeconds": s})).into_response()
            }
            None => error(&SimulatorError::Invalid(
                "skewSeconds (integer) is required".to_owned(),
            )),
        },
        Err(r) => *r,
    }
}

async fn get_counters(State(sim): State<Simulator>) -> Response {
    axum::Json(sim.counters()).into_response()
}

async fn reset_counters(State(sim): State<Simulator>) -> Response {
    sim.reset_counters();
    axum::Json(Value::Null).into_response()
}

fn patch_object(patch: Value) -> Result<super::store::Object, SimulatorError> {
    match patch {
        Value::Object(map) => Ok(map),
        _ => Err(SimulatorError::Invalid(
            "the patch must be a JSON object".to_owned(),
        )),
    }
}

fn service_mut<'a>(
    core: &'a mut Core,
    org: &str,
    svc: &str,
) -> Result<&'a mut super::store::Service, SimulatorError> {
    core.store
        .service_mut(org, svc)
        .ok_or_else(|| SimulatorError::NotFound(format!("no service {org}/{svc}")))
}

/// Merges `patch` into a connector; `user` and `password` set the hidden relay credentials.
pub fn edit_connector(
    core: &mut Core,
    org: &str,
    svc: &str,
    id: i64,
    patch: Value,
) -> Result<(), SimulatorError> {
    let mut patch = patch_object(patch)?;
    let service = service_mut(core, org, svc)?;
    let connector = service
        .connectors
        .get_mut(&id)
        .ok_or_else(|| SimulatorError::NotFound(format!("no send connector {id}")))?;
    if let Some(user) = patch.remove("user") {
        connector.user = user.as_str().map(str::to_owned);
    }
    if let Some(password) = patch.remove("password") {
        connector.password = password.as_str().map(str::to_owned);
    }
    connector.fields.extend(patch);
    core.persist();
    Ok(())
}

pub fn edit_account(
    core: &mut Core,
    org: &str,
    svc: &str,
    email: &str,
    patch: Value,
) -> Result<(), SimulatorError> {
    let patch = patch_object(patch)?;
    let service = service_mut(core, org, svc)?;
    let account = service
        .accounts
        .get_mut(email)
        .ok_or_else(|| SimulatorError::NotFound(format!("no account {email}")))?;
    account.extend(patch);
    core.persist();
    Ok(())
}

pub fn create_account(
    core: &mut Core,
    org: &str,
    svc: &str,
    email: &str,
) -> Result<(), SimulatorError> {
    let now = core.now_string();
    let service = service_mut(core, org, svc)?;
    if service.accounts.contains_key(email) {
        return Err(SimulatorError::Invalid(format!(
            "account {email} already exists"
        )));
    }
    if !email.contains('@') {
        return Err(SimulatorError::Invalid(format!(
            "{email} is not an email address"
        )));
    }
    core.store.create_account(org, svc, email, &now);
    core.persist();
    Ok(())
}

/// Removes a connector at once; mailboxes and domain defaults using it fall back to 0.
pub fn delete_connector(
    core: &mut Core,
    org: &str,
    svc: &str,
    id: i64,
) -> Result<(), SimulatorError> {
    let service = service_mut(core, org, svc)?;
    if service.connectors.remove(&id).is_none() {
        return Err(SimulatorError::NotFound(format!("no send connector {id}")));
    }
    service.drop_connector_references(id);
    core.persist();
    Ok(())
}
