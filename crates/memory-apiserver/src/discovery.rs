//! `/version`, the legacy discovery documents (`/api`, `/apis`, `/api/v1`,
//! `/apis/{group}/{version}`) and aggregated discovery (`/api`, `/apis` as
//! `APIGroupDiscoveryList`), which kubectl reads before anything else.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use serde_json::{Value, json};

use super::resources::{Registry, ResourceKind};

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

/// `GET /apis`: every non-core group with its versions.
pub fn groups(registry: &Registry) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for kind in registry.kinds().iter().filter(|k| !k.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == kind.group) {
            Some((_, versions)) if !versions.contains(&kind.version) => {
                versions.push(kind.version.clone());
            }
            Some(_) => {}
            None => groups.push((kind.group.clone(), vec![kind.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or(Value::Null);
            json!({"name": name, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/{group}/{version}`; `None` when nothing is served there.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&ResourceKind> = registry
        .kinds()
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for kind in kinds {
        resources.push(json!({
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": VERBS,
            "shortNames": kind.short_names,
            "categories": kind.categories,
        }));
        if kind.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", kind.plural),
                "singularName": "",
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// The media type of aggregated discovery documents; kubectl ignores them under any other.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the `Accept` header asks for aggregated discovery (`apidiscovery.k8s.io/v2`).
pub fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
        })
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Aggregated discovery (`APIGroupDiscoveryList`) for the core group (`core: true`, `GET /api`)
/// or every other group (`GET /apis`).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let kinds: Vec<&ResourceKind> = registry
        .kinds()
        .iter()
        .filter(|k| k.group.is_empty() == core)
        .collect();
    let mut group_names: Vec<&str> = Vec::new();
    for kind in &kinds {
        if !group_names.contains(&kind.group.as_str()) {
            group_names.push(&kind.group);
        }
    }
    let items: Vec<Value> = group_names
        .into_iter()
        .map(|group| {
            let mut version_names: Vec<&str> = Vec::new();
            for kind in kinds.iter().filter(|k| k.group == group) {
                if !version_names.contains(&kind.version.as_str()) {
                    version_names.push(&kind.version);
                }
            }
            let versions: Vec<Value> = version_names
                .into_iter()
                .map(|version| {
                    let resources: Vec<Value> = kinds
                        .iter()
                        .filter(|k| k.group == group && k.version == version)
                        .map(|k| aggregated_resource(k))
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            // Upstream leaves the core group's empty name out.
            let metadata = if group.is_empty() {
                json!({})
            } else {
                json!({"name": group})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "apiVersion": "apidiscovery.k8s.io/v2",
        "kind": "APIGroupDiscoveryList",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(kind: &ResourceKind) -> Value {
    let response_kind = json!({"group": kind.group, "version": kind.version, "kind": kind.kind});
    let mut resource = json!({
        "resource": kind.plural,
        "responseKind": response_kind,
        "scope": if kind.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": kind.singular,
        "verbs": VERBS,
        "shortNames": kind.short_names,
        "subresources": [],
    });
    if !kind.categories.is_empty() {
        resource["categories"] = json!(kind.categories);
    }
    if kind.status_subresource {
        resource["subresources"] = json!([{
            "subresource": "status",
            "responseKind": response_kind,
            "verbs": ["get", "patch", "update"],
        }]);
    }
    resource
}
