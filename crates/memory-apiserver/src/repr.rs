//! How stored objects are shown to clients: full objects, or `PartialObjectMetadata` when the
//! `Accept` header asks for it (kube-rs' `metadata_watcher` and `Api::get_metadata` do).

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use serde_json::{Value, json};

use super::resources::ResourceKind;

/// The `apiVersion` of metadata-only answers.
const META_API_VERSION: &str = "meta.k8s.io/v1";

/// Whether the client asked for `PartialObjectMetadata` (or its list).
pub fn wants_metadata_only(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=PartialObjectMetadata"))
}

/// One object as the client should see it: always with `apiVersion` and `kind` of the version
/// it was requested through.
pub fn present(kind: &ResourceKind, object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        return json!({
            "apiVersion": META_API_VERSION,
            "kind": "PartialObjectMetadata",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        });
    }
    let mut shown = object.clone();
    if let Some(map) = shown.as_object_mut() {
        map.insert("apiVersion".to_owned(), json!(kind.api_version()));
        map.insert("kind".to_owned(), json!(kind.kind));
    }
    shown
}

/// A list answer.
pub fn list(
    kind: &ResourceKind,
    items: Vec<Value>,
    resource_version: u64,
    continue_token: Option<String>,
    metadata_only: bool,
) -> Value {
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let (api_version, list_kind) = if metadata_only {
        (
            META_API_VERSION.to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (kind.api_version(), format!("{}List", kind.kind))
    };
    json!({
        "apiVersion": api_version,
        "kind": list_kind,
        "metadata": metadata,
        "items": Value::Array(items),
    })
}

/// A watch bookmark; kube-rs needs `apiVersion` and `kind` on it to decode it at all.
pub fn bookmark(
    kind: &ResourceKind,
    resource_version: u64,
    initial_events_end: bool,
    metadata_only: bool,
) -> Value {
    let (api_version, kind_name) = if metadata_only {
        (
            META_API_VERSION.to_owned(),
            "PartialObjectMetadata".to_owned(),
        )
    } else {
        (kind.api_version(), kind.kind.clone())
    };
    let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
    if initial_events_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "apiVersion": api_version, "kind": kind_name, "metadata": metadata })
}
