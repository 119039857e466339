//! Server-side apply with field ownership, approximated.
//!
//! The applied configuration is merged into the live object (maps recursively; lists and
//! scalars replaced wholesale, which suits `conditions`). Each manager's applied fields are
//! recorded in `metadata.managedFields` (one `Apply` entry per manager and subresource, in the
//! `FieldsV1` shape), so that when a manager stops sending a field it owned alone, the field is
//! removed, as the real server does. A status writer that drops `status.lastError` from its
//! apply configuration therefore sees the field disappear. Ownership taken through non-apply
//! writes is not tracked.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::object::{as_map, metadata_mut, now};
use super::patch::merge_patch;
use super::resources::ResourceKind;
use super::writes::Subresource;

/// A field path, one segment per map key.
type FieldPath = Vec<String>;

/// Metadata fields the applier may own; the rest of `metadata` belongs to the server.
const APPLIED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Applies `applied` to `object` for `manager`, updating `metadata.managedFields`.
pub fn apply(
    kind: &ResourceKind,
    object: &mut Value,
    applied: &Value,
    manager: &str,
    subresource: Subresource,
) {
    let owned_now = applied_fields(kind, applied, subresource);
    let subresource_name = match subresource {
        Subresource::Main => None,
        Subresource::Status => Some("status"),
    };
    let mut entries: Vec<Value> = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_mine = |entry: &Value| {
        entry.get("manager").and_then(Value::as_str) == Some(manager)
            && entry.get("operation").and_then(Value::as_str) == Some("Apply")
            && entry.get("subresource").and_then(Value::as_str) == subresource_name
    };
    let owned_before = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| fields_of(e.get("fieldsV1").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let owned_by_others: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| fields_of(e.get("fieldsV1").unwrap_or(&Value::Null)))
        .collect();

    merge_patch(object, &strip_unowned(kind, applied, subresource));
    for path in owned_before.difference(&owned_now) {
        if !owned_by_others.contains(path) {
            remove_path(object, path);
            // A map whose last owned field went goes too, as on a real server: an empty
            // `{}` left behind would not read back as the type that was applied.
            for depth in (1..path.len()).rev() {
                let prefix = &path[..depth];
                let still_used = owned_now
                    .iter()
                    .chain(owned_by_others.iter())
                    .any(|p| p.starts_with(prefix));
                let empty = pointer_to(object, prefix)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty);
                if still_used || !empty {
                    break;
                }
                remove_path(object, prefix);
            }
        }
    }

    if owned_before != owned_now || !entries.iter().any(is_mine) {
        entries.retain(|e| !is_mine(e));
        let mut entry = json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": kind.api_version(),
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(&owned_now),
        });
        if let Some(name) = subresource_name {
            entry["subresource"] = json!(name);
        }
        entries.push(entry);
    }
    metadata_mut(object).insert("managedFields".to_owned(), Value::Array(entries));
}

/// The part of `applied` this apply may write: `status` only on `/status`, everything but
/// `status` (when it is a subresource) and server-owned metadata otherwise.
fn strip_unowned(kind: &ResourceKind, applied: &Value, subresource: Subresource) -> Value {
    let mut kept = Map::new();
    let Some(applied) = applied.as_object() else {
        return Value::Object(kept);
    };
    for (key, value) in applied {
        let keep = match (subresource, key.as_str()) {
            (Subresource::Status, field) => field == "status",
            (Subresource::Main, "status") => !kind.status_subresource,
            (Subresource::Main, "apiVersion" | "kind") => false,
            _ => true,
        };
        if !keep {
            continue;
        }
        if key == "metadata" {
            let metadata: Map<String, Value> = value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| APPLIED_METADATA.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            kept.insert(key.clone(), Value::Object(metadata));
        } else {
            kept.insert(key.clone(), value.clone());
        }
    }
    Value::Object(kept)
}

/// Leaf paths set (non-null) by an apply configuration.
fn applied_fields(
    kind: &ResourceKind,
    applied: &Value,
    subresource: Subresource,
) -> BTreeSet<FieldPath> {
    let mut fields = BTreeSet::new();
    collect_leaves(
        &strip_unowned(kind, applied, subresource),
        &mut Vec::new(),
        &mut fields,
    );
    fields
}

fn collect_leaves(value: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(key.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

/// `FieldsV1` for a set of leaf paths: `{"f:spec": {"f:size": {}}}`.
fn fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let mut node = &mut root;
        for segment in path {
            node = as_map(node)
                .entry(format!("f:{segment}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// Leaf paths recorded in a `FieldsV1` value written by [`fields_v1`].
fn fields_of(fields: &Value) -> BTreeSet<FieldPath> {
    fn walk(node: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<(&String, &Value)> = node
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("f:"))
            .collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (key, child) in children {
            path.push(key.trim_start_matches("f:").to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

fn pointer_to<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |node, segment| node.get(segment))
}

fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for segment in parents {
        match node.get_mut(segment) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn kind() -> ResourceKind {
        let mut kind = Registry::default()
            .lookup("", "v1", "configmaps")
            .unwrap()
            .clone();
        kind.status_subresource = true;
        kind
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed() {
        let mut object = json!({"metadata": {"name": "x"}, "status": {"kept": 1}});
        let first =
            json!({"status": {"observed": 1, "lastError": "boom", "conditions": [{"type": "A"}]}});
        apply(&kind(), &mut object, &first, "op", Subresource::Status);
        assert_eq!(object["status"]["lastError"], "boom");
        let second = json!({"status": {"observed": 2, "conditions": []}});
        apply(&kind(), &mut object, &second, "op", Subresource::Status);
        assert_eq!(
            object["status"],
            json!({"kept": 1, "observed": 2, "conditions": []})
        );
        let entries = object["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["subresource"], "status");
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:status": {"f:observed": {}, "f:conditions": {}}})
        );
    }

    #[test]
    fn a_map_whose_fields_all_go_goes_too() {
        let kind = kind();
        let mut object = json!({"metadata": {"name": "x"}, "status": {}});
        let first =
            json!({"status": {"creation": {"displayName": "a", "taskId": 1}, "connectorId": 29}});
        apply(&kind, &mut object, &first, "op", Subresource::Status);
        apply(
            &kind,
            &mut object,
            &json!({"status": {"connectorId": 29}}),
            "op",
            Subresource::Status,
        );
        assert_eq!(object["status"], json!({"connectorId": 29}));
    }

    #[test]
    fn fields_shared_with_another_manager_survive() {
        let mut object = json!({"metadata": {"name": "x"}});
        apply(
            &kind(),
            &mut object,
            &json!({"data": {"a": "1", "b": "2"}}),
            "one",
            Subresource::Main,
        );
        apply(
            &kind(),
            &mut object,
            &json!({"data": {"a": "1"}}),
            "two",
            Subresource::Main,
        );
        apply(
            &kind(),
            &mut object,
            &json!({"data": {}}),
            "one",
            Subresource::Main,
        );
        assert_eq!(object["data"], json!({"a": "1"}));
    }

    #[test]
    fn reapplying_the_same_configuration_changes_nothing() {
        let mut object = json!({"metadata": {"name": "x"}});
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"l": "v"}}, "data": {"a": "1"}});
        apply(&kind(), &mut object, &config, "one", Subresource::Main);
        let once = object.clone();
        apply(&kind(), &mut object, &config, "one", Subresource::Main);
        assert_eq!(object, once);
        assert_eq!(
            once["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:l": {}}}})
        );
    }
}
