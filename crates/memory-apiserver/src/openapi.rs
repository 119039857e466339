//! OpenAPI v3 as kube-apiserver publishes it, for `kubectl explain` and for kubectl's check
//! that the server validates fields itself: `/openapi/v3` lists one document per API group
//! version, and each custom group version's document carries its kinds' schemas, named as
//! upstream names them (`io.sendconnector.v1alpha1.SendConnector`, with
//! `x-kubernetes-group-version-kind`), and their paths with the `fieldValidation` parameter.
//! Built-in groups get paths only, so kubectl falls back to its own knowledge of their types.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use serde_json::{Map, Value, json};

use super::resources::{Registry, ResourceKind};

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation \
of an object. Servers should convert recognized schemas to the latest internal value, and may \
reject unrecognized values. More info: \
https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object \
represents. Servers may infer this from the endpoint the client submits requests to. Cannot be \
updated. In CamelCase. More info: \
https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: \
https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// `GET /openapi/v3`: every non-core group version with the URL of its document.
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(registry) {
        let Some(document) = group_version(registry, &group, &version) else {
            continue;
        };
        let mut hasher = DefaultHasher::new();
        document.to_string().hash(&mut hasher);
        paths.insert(
            format!("apis/{group}/{version}"),
            json!({"serverRelativeURL": format!(
                "/openapi/v3/apis/{group}/{version}?hash={:016X}",
                hasher.finish()
            )}),
        );
    }
    json!({ "paths": paths })
}

fn group_versions(registry: &Registry) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for kind in registry.kinds().iter().filter(|k| !k.group.is_empty()) {
        let pair = (kind.group.clone(), kind.version.clone());
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

/// `GET /openapi/v3/apis/{group}/{version}`; `None` when nothing is served there.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&ResourceKind> = registry
        .kinds()
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for kind in kinds {
        let with_schema = kind.custom && kind.schema.is_some();
        let name = schema_name(kind);
        if let Some(schema) = kind.schema.as_ref().filter(|_| with_schema) {
            schemas.insert(name.clone(), object_schema(kind, schema));
            schemas.insert(format!("{name}List"), list_schema(kind, &name));
        }
        add_paths(&mut paths, kind, with_schema.then_some(name.as_str()));
    }
    if !schemas.is_empty() {
        schemas.insert(
            OBJECT_META.to_owned(),
            json!({"description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.", "type": "object"}),
        );
        schemas.insert(
            LIST_META.to_owned(),
            json!({"description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.", "type": "object"}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `io.sendconnector.v1alpha1.SendConnector`: the group reversed, the version, the kind.
fn schema_name(kind: &ResourceKind) -> String {
    let reversed: Vec<&str> = kind.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), kind.version, kind.kind)
}

fn gvk(kind: &ResourceKind, name: &str) -> Value {
    json!({"group": kind.group, "version": kind.version, "kind": name})
}

/// Whole numbers as integers (`maximum: 65535`), as upstream publishes them.
fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15) {
                // Checked whole and well inside i64 just above.
                #[allow(clippy::cast_possible_truncation)]
                let whole = f as i64;
                *value = json!(whole);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

fn object_schema(kind: &ResourceKind, schema: &Value) -> Value {
    let mut schema = schema.clone();
    integral_numbers(&mut schema);
    if let Some(map) = schema.as_object_mut() {
        let properties = map
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "apiVersion".to_owned(),
                json!({"description": API_VERSION_DOC, "type": "string"}),
            );
            properties.insert(
                "kind".to_owned(),
                json!({"description": KIND_DOC, "type": "string"}),
            );
            properties.insert(
                "metadata".to_owned(),
                json!({"description": METADATA_DOC, "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]}),
            );
        }
        map.insert(
            "x-kubernetes-group-version-kind".to_owned(),
            json!([gvk(kind, &kind.kind)]),
        );
    }
    schema
}

fn list_schema(kind: &ResourceKind, name: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}", kind.kind, kind.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.plural),
                "type": "array",
                "items": {"$ref": format!("#/components/schemas/{name}")},
            },
            "kind": {"description": KIND_DOC, "type": "string"},
            "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "allOf": [{"$ref": format!("#/components/schemas/{LIST_META}")}]},
        },
        "x-kubernetes-group-version-kind": [gvk(kind, &format!("{}List", kind.kind))],
    })
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// One operation; writes take `dryRun`, `fieldManager` and `fieldValidation`, which kubectl
/// looks for before leaving field validation to the server.
fn operation(kind: &ResourceKind, action: &str, schema: Option<&str>, list: bool) -> Value {
    let writes = matches!(action, "post" | "put" | "patch");
    let parameters: Vec<Value> = if writes {
        vec![
            query("dryRun"),
            query("fieldManager"),
            query("fieldValidation"),
        ]
    } else {
        Vec::new()
    };
    let mut operation = json!({
        "operationId": format!("{action}{}", kind.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(kind, &kind.kind),
    });
    if let Some(schema) = schema {
        let target = if list {
            format!("#/components/schemas/{schema}List")
        } else {
            format!("#/components/schemas/{schema}")
        };
        operation["responses"]["200"]["content"] =
            json!({"application/json": {"schema": {"$ref": target}}});
    }
    if action == "patch" {
        let patch = json!({"schema": {"type": "object"}});
        let mut types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if !kind.custom {
            types.push("application/strategic-merge-patch+json");
        }
        let content: Map<String, Value> = types
            .into_iter()
            .map(|t| (t.to_owned(), patch.clone()))
            .collect();
        operation["requestBody"] = json!({"content": content, "required": true});
    }
    operation
}

fn add_paths(paths: &mut Map<String, Value>, kind: &ResourceKind, schema: Option<&str>) {
    let base = format!("/apis/{}/{}", kind.group, kind.version);
    let scoped = if kind.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", kind.plural)
    } else {
        format!("{base}/{}", kind.plural)
    };
    let op = |action: &str, list: bool| operation(kind, action, schema, list);
    paths.insert(
        scoped.clone(),
        json!({"get": op("list", true), "post": op("post", false), "delete": op("deletecollection", false)}),
    );
    let item = format!("{scoped}/{{name}}");
    paths.insert(
        item.clone(),
        json!({"get": op("get", false), "put": op("put", false), "patch": op("patch", false), "delete": op("delete", false)}),
    );
    if kind.status_subresource {
        paths.insert(
            format!("{item}/status"),
            json!({"get": op("get", false), "put": op("put", false), "patch": op("patch", false)}),
        );
    }
    if kind.namespaced {
        paths.insert(
            format!("{base}/{}", kind.plural),
            json!({"get": op("list", true)}),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_root_lists_every_group_version_and_documents_answer() {
        let registry = Registry::default();
        let root = root(&registry);
        let url = root["paths"]["apis/apiextensions.k8s.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("/openapi/v3/apis/apiextensions.k8s.io/v1?hash="),
            "{url}"
        );
        let document = group_version(&registry, "apiextensions.k8s.io", "v1").unwrap();
        let patch = &document["paths"]["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"]
            ["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "CustomResourceDefinition"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version(&registry, "nowhere.example.com", "v1").is_none());
    }
}
