//! HTTP front: turns request paths, query strings and bodies into store operations.
//!
//! One fallback handler parses the path itself because resource URLs have too many shapes for
//! static routes (`/api/v1/namespaces/{name}` is an object, `/api/v1/namespaces/{ns}/secrets` a
//! collection).

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::resources::{Registry, ResourceKind};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::{self, ApiError};
use super::table::{self, IncludeObject};
use super::watch::{self, WatchRequest};
use super::writes::{self, FieldValidation, PatchKind, Subresource, Target, WriteOptions};
use super::{ApiServer, deletion, discovery, events, openapi, protobuf, repr};

/// Watches without `timeoutSeconds` end after this long, like upstream's 30–60 minutes.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Entry point for every request.
pub async fn dispatch(
    AxumState(server): AxumState<ApiServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        method: &method,
        path: uri.path(),
        query: parse_query(uri.query()),
        headers: &headers,
        body: &body,
    };
    match handle(&server, &request) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    query: HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            field_validation: FieldValidation::parse(self.param("fieldValidation")),
            dry_run: self.param("dryRun").is_some_and(|v| !v.is_empty()),
            field_manager: self.param("fieldManager").map(str::to_owned),
        }
    }

    /// A create or update body: JSON, or protobuf for the built-in kinds kubectl sends that way.
    fn object_body(&self, kind: &ResourceKind) -> Result<Value, ApiError> {
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if protobuf::is_protobuf(content_type) {
            return protobuf::decode(kind, self.body);
        }
        self.json_body()
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(self.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
    }
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A resource URL, resolved against the registry.
struct Route {
    kind: ResourceKind,
    /// Namespace from the path (`None`: all namespaces, or a cluster-scoped kind).
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn handle(server: &ApiServer, request: &Request<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = request
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(ok(&discovery::version())),
        ["api" | "apis"] if discovery::wants_aggregated(request.headers) => {
            let core = segments == ["api"];
            let document = discovery::aggregated(&server.shared.lock().registry, core);
            return Ok(respond_as(
                200,
                discovery::AGGREGATED_CONTENT_TYPE,
                &document,
            ));
        }
        ["api"] => return Ok(ok(&discovery::core_versions())),
        ["apis"] => return Ok(ok(&discovery::groups(&server.shared.lock().registry))),
        // An empty OpenAPI v2 document: kubectl then validates nothing itself and leaves
        // field validation to the server (`fieldValidation=Strict`), and uses JSON merge
        // patches for custom resources.
        ["openapi", "v2"] => {
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "",
            )
                .into_response());
        }
        ["openapi", "v3"] => return Ok(ok(&openapi::root(&server.shared.lock().registry))),
        ["openapi", "v3", "apis", group, version] => {
            let document = openapi::group_version(&server.shared.lock().registry, group, version);
            return document
                .map(|doc| ok(&doc))
                .ok_or_else(|| ApiError::unknown_path(request.path));
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::unknown_path(request.path)),
    };
    if rest.is_empty() {
        let registry = &server.shared.lock().registry;
        return discovery::resources(registry, group, version)
            .map(|doc| ok(&doc))
            .ok_or_else(|| ApiError::unknown_path(request.path));
    }
    let route = resolve(&server.shared.lock().registry, group, version, rest)
        .ok_or_else(|| ApiError::unknown_path(request.path))?;
    match (&route.name, route.subresource.as_deref()) {
        (None, _) => collection(server, request, &route),
        (Some(_), None | Some("status")) => object(server, request, &route),
        (Some(_), Some(_)) => Err(ApiError::unknown_path(request.path)),
    }
}

fn resolve(registry: &Registry, group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let namespaced_path = match rest {
        ["namespaces", _, plural, ..] => registry
            .lookup(group, version, plural)
            .is_some_and(|k| k.namespaced),
        _ => false,
    };
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let kind = registry.lookup(group, version, plural)?.clone();
    // Named objects of namespaced kinds only exist under a namespace.
    if kind.namespaced && namespace.is_none() && name.is_some() {
        return None;
    }
    Some(Route {
        kind,
        namespace,
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

fn ok(body: &Value) -> Response {
    respond(200, body)
}

fn respond(code: u16, body: &Value) -> Response {
    respond_as(code, "application/json", body)
}

fn respond_as(code: u16, content_type: &'static str, body: &Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (
        code,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

fn selectors(request: &Request<'_>) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(request.param("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(request.param("fieldSelector").unwrap_or_default())?,
    })
}

fn collection(
    server: &ApiServer,
    request: &Request<'_>,
    route: &Route,
) -> Result<Response, ApiError> {
    let kind = &route.kind;
    let metadata_only = repr::wants_metadata_only(request.headers);
    match *request.method {
        Method::GET if request.flag("watch") => {
            let timeout = request
                .param("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
            watch::respond(
                server.shared.clone(),
                WatchRequest {
                    kind: kind.clone(),
                    namespace: route.namespace.clone(),
                    selectors: selectors(request)?,
                    resource_version: request.param("resourceVersion").map(str::to_owned),
                    send_initial_events: request.flag("sendInitialEvents"),
                    allow_bookmarks: request.flag("allowWatchBookmarks"),
                    timeout,
                    metadata_only,
                    table: table::wants_table(request.headers)
                        .then(|| IncludeObject::parse(request.param("includeObject"))),
                },
            )
        }
        Method::GET => list(server, request, route, metadata_only),
        Method::POST => {
            let namespace = match (&route.namespace, kind.namespaced) {
                (Some(ns), true) => ns.clone(),
                (None, false) => String::new(),
                _ => return Err(ApiError::method_not_allowed("POST")),
            };
            let body = request.object_body(kind)?;
            let options = request.write_options();
            let written =
                server.write(|state| writes::create(state, kind, &namespace, body, &options))?;
            Ok(respond(
                written.code,
                &repr::present(kind, &written.object, metadata_only),
            ))
        }
        Method::DELETE => {
            let selectors = selectors(request)?;
            let targets: Vec<(String, String)> = {
                let state = server.shared.lock();
                state
                    .store
                    .list(&kind.key(), route.namespace.as_deref())
                    .filter(|(_, object)| selectors.matches(object))
                    .map(|(key, _)| key.clone())
                    .collect()
            };
            let mut items = Vec::new();
            for (namespace, name) in &targets {
                let target = Target {
                    kind,
                    namespace,
                    name,
                    subresource: Subresource::Main,
                };
                if let Ok(written) = server.write(|state| deletion::delete(state, target, None)) {
                    items.push(repr::present(kind, &written.object, metadata_only));
                }
            }
            let rv = server.resource_version();
            Ok(ok(&repr::list(kind, items, rv, None, metadata_only)))
        }
        ref other => Err(ApiError::method_not_allowed(other.as_str())),
    }
}

/// Continue tokens carry the resourceVersion of the first page and the last key served.
fn encode_continue(resource_version: u64, namespace: &str, name: &str) -> String {
    let raw = json!([resource_version, namespace, name]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    serde_json::from_slice::<(u64, String, String)>(&raw).map_err(|_| invalid())
}

fn list(
    server: &ApiServer,
    request: &Request<'_>,
    route: &Route,
    metadata_only: bool,
) -> Result<Response, ApiError> {
    let kind = &route.kind;
    let selectors = selectors(request)?;
    let limit = request
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let after = request
        .param("continue")
        .filter(|t| !t.is_empty())
        .map(decode_continue)
        .transpose()?;
    let state = server.shared.lock();
    let resource_version = after
        .as_ref()
        .map_or_else(|| state.store.resource_version(), |(rv, _, _)| *rv);
    let mut candidates: Vec<(&(String, String), Cow<'_, Value>)> = state
        .store
        .list(&kind.key(), route.namespace.as_deref())
        .map(|(key, object)| (key, Cow::Borrowed(object)))
        .collect();
    // One Event storage, two APIs: each lists the other's Events too, in its own form.
    if events::is_core(&kind.key()) {
        candidates.extend(
            state
                .store
                .list(&events::new_api_key(), route.namespace.as_deref())
                .map(|(key, object)| (key, Cow::Owned(events::to_core(object)))),
        );
        candidates.sort_by_key(|(key, _)| *key);
    } else if kind.key() == events::new_api_key() {
        candidates.extend(
            state
                .store
                .list(&events::core_key(), route.namespace.as_deref())
                .map(|(key, object)| (key, Cow::Owned(events::from_core(object)))),
        );
        candidates.sort_by_key(|(key, _)| *key);
    }
    let mut matching = candidates
        .into_iter()
        .filter(|((ns, name), _)| {
            after
                .as_ref()
                .is_none_or(|(_, after_ns, after_name)| (ns, name) > (after_ns, after_name))
        })
        .filter(|(_, object)| selectors.matches(object))
        .peekable();
    let mut items = Vec::new();
    let mut last_key = None;
    for (key, object) in matching.by_ref() {
        items.push(repr::present(kind, &object, metadata_only));
        last_key = Some(key);
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    let continue_token = match (matching.peek(), last_key) {
        (Some(_), Some((ns, name))) => Some(encode_continue(resource_version, ns, name)),
        _ => None,
    };
    if table::wants_table(request.headers) {
        let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
        if let Some(token) = continue_token {
            metadata["continue"] = json!(token);
        }
        let include = IncludeObject::parse(request.param("includeObject"));
        return Ok(ok(&table::table(kind, &items, &metadata, include)));
    }
    Ok(ok(&repr::list(
        kind,
        items,
        resource_version,
        continue_token,
        metadata_only,
    )))
}

fn object(server: &ApiServer, request: &Request<'_>, route: &Route) -> Result<Response, ApiError> {
    let kind = &route.kind;
    let name = route.name.as_deref().unwrap_or_default();
    let namespace = route.namespace.as_deref().unwrap_or_default();
    let subresource = match route.subresource.as_deref() {
        Some("status") => Subresource::Status,
        _ => Subresource::Main,
    };
    if subresource == Subresource::Status && !kind.status_subresource {
        return Err(ApiError::unknown_path(request.path));
    }
    let target = Target {
        kind,
        namespace,
        name,
        subresource,
    };
    let metadata_only = repr::wants_metadata_only(request.headers);
    let options = request.write_options();
    let written = match *request.method {
        Method::GET => {
            let state = server.shared.lock();
            let object = match state.store.get(&kind.key(), namespace, name) {
                Some(object) => object.clone(),
                None if kind.is_namespace() && subresource == Subresource::Main => {
                    implicit_namespace(&state, name)
                        .ok_or_else(|| ApiError::not_found(kind, name))?
                }
                None => return Err(ApiError::not_found(kind, name)),
            };
            let shown = repr::present(kind, &object, metadata_only);
            if table::wants_table(request.headers) {
                let metadata = json!({
                    "resourceVersion": state.store.resource_version().to_string()
                });
                let include = IncludeObject::parse(request.param("includeObject"));
                return Ok(ok(&table::table(kind, &[shown], &metadata, include)));
            }
            return Ok(ok(&shown));
        }
        Method::PUT => {
            let body = request.object_body(kind)?;
            server.write(|state| writes::update(state, target, body, &options))?
        }
        Method::PATCH => {
            let content_type = request
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_kind = PatchKind::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            server
                .write(|state| writes::patch(state, target, patch_kind, request.body, &options))?
        }
        Method::DELETE if subresource == Subresource::Main => {
            let preconditions = if request.body.is_empty() {
                None
            } else {
                request.json_body()?.get("preconditions").cloned()
            };
            let written =
                server.write(|state| deletion::delete(state, target, preconditions.as_ref()))?;
            let gone = server
                .shared
                .lock()
                .store
                .get(&kind.key(), namespace, name)
                .is_none();
            if gone && !kind.custom && !kind.is_namespace() {
                let uid = written
                    .object
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str);
                return Ok(ok(&status::success(kind, name, uid)));
            }
            written
        }
        ref other => return Err(ApiError::method_not_allowed(other.as_str())),
    };
    Ok(respond(
        written.code,
        &repr::present(kind, &written.object, metadata_only),
    ))
}

/// A Namespace that has objects but no Namespace object (tests often skip creating one) reads
/// as an active namespace, as it would on a real cluster, where it must exist.
fn implicit_namespace(state: &super::State, name: &str) -> Option<Value> {
    if state.store.resources_with_objects_in(name).is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The route of `path` as `plural namespace name subresource`, `-` for absent parts.
    fn route(path: &str) -> Option<String> {
        let registry = Registry::default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        resolve(&registry, group, version, rest).map(|r| {
            let part = |p: Option<String>| p.unwrap_or_else(|| "-".to_owned());
            format!(
                "{} {} {} {}",
                r.kind.plural,
                part(r.namespace),
                part(r.name),
                part(r.subresource)
            )
        })
    }

    #[test]
    fn resolves_namespace_objects_and_namespaced_collections() {
        assert_eq!(
            route("/api/v1/namespaces"),
            Some("namespaces - - -".to_owned())
        );
        assert_eq!(
            route("/api/v1/namespaces/prod"),
            Some("namespaces - prod -".to_owned())
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/status"),
            Some("namespaces - prod status".to_owned())
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/secrets"),
            Some("secrets prod - -".to_owned())
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/secrets/s1"),
            Some("secrets prod s1 -".to_owned())
        );
        assert_eq!(
            route("/apis/coordination.k8s.io/v1/namespaces/prod/leases/l"),
            Some("leases prod l -".to_owned())
        );
        assert_eq!(
            route("/apis/events.k8s.io/v1/events"),
            Some("events - - -".to_owned())
        );
    }

    #[test]
    fn rejects_unknown_or_misscoped_paths() {
        assert_eq!(route("/api/v1/pods"), None);
        assert_eq!(route("/api/v1/secrets/s1"), None);
        assert_eq!(route("/apis/unknown.example.com/v1/things"), None);
        assert_eq!(
            route("/api/v1/namespaces/prod/secrets/s1/status/extra"),
            None
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "ns", "name");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "ns".to_owned(), "name".to_owned())
        );
        assert_eq!(decode_continue("garbage!").unwrap_err().code, 400);
    }
}
