//! The HTTP front: `/1.0/…` and `/v1/…` (route table, counters, faults, authentication,
//! access rules, then the Exchange handlers), `POST /auth/oauth2/token`, the admin API, and
//! on every answer an `X-Ovh-QueryID` and a debug log line (method, route, status, query id;
//! never a header or a body).
use super::Simulator;
use super::auth::{self, SignedRequest};
use super::errors::{self, ApiError};
use super::exchange::{self, ApiRequest, Reply};
use super::faults::{self, DropConnection};
use super::routes::{self, Match, Op, percent_decode};
use super::settings::FaultKind;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// The route a response answered, for the log line.
#[derive(Clone, Debug)]
struct RouteName(String);

const BODY_LIMIT: usize = 1 << 20;
const HOLD_TIMEOUT: Duration = Duration::from_secs(600);

pub fn router(sim: Simulator) -> Router {
    Router::new()
        .nest("/_simulator", super::admin::router(sim.clone()))
        .fallback(entry)
        .layer(middleware::from_fn_with_state(sim.clone(), stamp))
        .with_state(sim)
}

/// Adds `X-Ovh-QueryID` and logs the request.
async fn stamp(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query_id = sim.next_query_id();
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&query_id) {
        response.headers_mut().insert("x-ovh-queryid", v);
    }
    let route = response
        .extensions()
        .get::<RouteName>()
        .map_or(path, |r| r.0.clone());
    let dropped = response.extensions().get::<DropConnection>().is_some();
    tracing::debug!(
        %method,
        route,
        status = response.status().as_u16(),
        query_id,
        dropped,
        "simulator request"
    );
    response
}

fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

async fn entry(State(sim): State<Simulator>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let api_path = ["/1.0", "/v1"].iter().find_map(|prefix| {
        path.strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if req.method() == Method::POST && path == "/auth/oauth2/token" {
        let key = "POST /auth/oauth2/token".to_owned();
        return with_faults(&sim, req, key, |sim, parts, body| {
            let mut core = sim.core();
            let core = &mut *core;
            let now = super::tasks::now_ms();
            match auth::issue_token(
                &core.credentials,
                &mut core.tokens,
                &core.settings,
                now,
                &parts.headers,
                body,
            ) {
                Ok(v) => axum::Json(v).into_response(),
                Err(e) => e.into_response(),
            }
        })
        .await;
    }
    let Some(api_path) = api_path else {
        return ApiError::invalid_url().into_response();
    };
    let api_path = api_path.to_owned();
    match routes::find(req.method().as_str(), &api_path) {
        Match::NotFound => ApiError::invalid_url().into_response(),
        Match::WrongMethod => ApiError::method_not_allowed().into_response(),
        Match::Found(route, params) => {
            let key = format!("{} {}", route.method, route.template);
            with_faults(&sim, req, key, move |sim, parts, body| {
                call(sim, route, &params, &api_path, parts, body)
            })
            .await
        }
    }
}

/// Counts the request, applies faults, reads the body, then runs `handler`.
async fn with_faults(
    sim: &Simulator,
    req: Request,
    key: String,
    handler: impl FnOnce(&Simulator, &axum::http::request::Parts, &[u8]) -> Response,
) -> Response {
    let (latency, fault) = {
        let mut core = sim.core();
        *core.counters.entry(key.clone()).or_insert(0) += 1;
        faults::pick(&mut core, req.method().as_str(), req.uri().path())
    };
    let spike = match fault {
        Some(FaultKind::Latency { ms }) => ms,
        _ => 0,
    };
    if latency + spike > 0 {
        tokio::time::sleep(Duration::from_millis(latency + spike)).await;
    }
    let mut lose_response = false;
    let early = match fault {
        None | Some(FaultKind::Latency { .. }) => None,
        Some(FaultKind::Status500) => Some(ApiError::internal().into_response()),
        Some(FaultKind::TooManyRequests {
            retry_after_seconds,
        }) => Some(ApiError::too_many_requests(retry_after_seconds).into_response()),
        Some(FaultKind::Status400 { message_bytes }) => {
            Some(ApiError::bad_request(&errors::long_message(message_bytes)).into_response())
        }
        Some(FaultKind::Html408) => Some(errors::html_408()),
        Some(FaultKind::ConnectionReset) => Some(dropped()),
        Some(FaultKind::Timeout) => {
            tokio::time::sleep(HOLD_TIMEOUT).await;
            Some(dropped())
        }
        Some(FaultKind::LoseResponse) => {
            lose_response = true;
            None
        }
    };
    let mut response = if let Some(r) = early {
        r
    } else {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(Body::new(body), BODY_LIMIT).await {
            Ok(bytes) => handler(sim, &parts, &bytes),
            Err(_) => ApiError::bad_request("Invalid input body").into_response(),
        }
    };
    if lose_response {
        response.extensions_mut().insert(DropConnection);
    }
    response.extensions_mut().insert(RouteName(key));
    response
}

fn call(
    sim: &Simulator,
    route: &'static routes::Route,
    params: &[String],
    api_path: &str,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Response {
    let mut core = sim.core_now();
    let core = &mut *core;
    match route.op {
        Op::AuthTime => return axum::Json(json!(core.server_now_s())).into_response(),
        Op::AuthCredential => {
            let host = host(parts);
            return match auth::create_credential(&mut core.credentials, &parts.headers, &host, body)
            {
                Ok(v) => axum::Json(v).into_response(),
                Err(e) => e.into_response(),
            };
        }
        _ => {}
    }
    let host = host(parts);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let now_ms = super::tasks::now_ms();
    let identity = match auth::authenticate(
        &core.credentials,
        &core.tokens,
        &core.settings,
        core.server_now_s(),
        now_ms,
        &SignedRequest {
            method: parts.method.as_str(),
            headers: &parts.headers,
            host: &host,
            path_and_query,
            body,
        },
    ) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let star = core.settings.access_rule_star_matches_slash;
    let method = parts.method.as_str();
    let decoded = percent_decode(api_path);
    if !auth::granted(&identity.rules, method, api_path, star)
        && !auth::granted(&identity.rules, method, &decoded, star)
    {
        return if identity.bearer {
            ApiError::iam_not_granted(route.iam_action).into_response()
        } else {
            ApiError::not_granted().into_response()
        };
    }
    if matches!(parts.method, Method::GET | Method::DELETE)
        && !body.iter().all(u8::is_ascii_whitespace)
    {
        return ApiError::unexpected_body().into_response();
    }
    if matches!(parts.method, Method::POST | Method::PUT | Method::DELETE) {
        core.write_count += 1;
    }
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let req = ApiRequest {
        headers: &parts.headers,
        query,
        body,
    };
    match exchange::handle(core, route.op, params, &req) {
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Void) => axum::Json(serde_json::Value::Null).into_response(),
        Ok(Reply::Raw(r)) => r,
        Err(e) => e.into_response(),
    }
}

fn host(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(ToString::to_string))
        .unwrap_or_default()
}
