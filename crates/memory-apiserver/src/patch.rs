//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Server-side apply lives in `apply`.
//!
//! The JSON patch applier is hand-written because kube-rs's `finalizer()` helper opens with
//! `{"op":"test","path":"/metadata/finalizers","value":null}` when an object has no finalizers,
//! and the real API server accepts a `null` test against a missing member; off-the-shelf
//! appliers reject it.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A failed JSON patch operation, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError(pub String);

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6902, applied atomically to a copy: `doc` is only replaced when every operation succeeds.
pub fn json_patch(doc: &mut Value, operations: &Value) -> Result<(), PatchError> {
    let operations = operations
        .as_array()
        .ok_or_else(|| PatchError("a JSON patch must be an array of operations".to_owned()))?;
    let mut working = doc.clone();
    for operation in operations {
        apply_operation(&mut working, operation)?;
    }
    *doc = working;
    Ok(())
}

fn apply_operation(doc: &mut Value, operation: &Value) -> Result<(), PatchError> {
    let field = |name: &str| {
        operation
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError(format!("operation {operation} lacks a string {name:?}")))
    };
    let value = || {
        operation
            .get("value")
            .cloned()
            .ok_or_else(|| PatchError(format!("operation {operation} lacks \"value\"")))
    };
    let path = parse_pointer(field("path")?)?;
    match field("op")? {
        "add" => add(doc, &path, value()?),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            let target = get_mut(doc, &path)
                .ok_or_else(|| PatchError(format!("replace: missing path {}", show(&path))))?;
            *target = value()?;
            Ok(())
        }
        "move" => {
            let from = parse_pointer(field("from")?)?;
            let moved = remove(doc, &from)?;
            add(doc, &path, moved)
        }
        "copy" => {
            let from = parse_pointer(field("from")?)?;
            let copied = get_mut(doc, &from)
                .map(|v| v.clone())
                .ok_or_else(|| PatchError(format!("copy: missing path {}", show(&from))))?;
            add(doc, &path, copied)
        }
        "test" => {
            let expected = value()?;
            // A missing member tests equal to `null`, as upstream's applier decides.
            let actual = get_mut(doc, &path).map_or(Value::Null, |v| v.clone());
            if actual == expected {
                Ok(())
            } else {
                Err(PatchError(format!(
                    "test failed: {} is {actual}, not {expected}",
                    show(&path)
                )))
            }
        }
        other => Err(PatchError(format!(
            "unknown JSON patch operation {other:?}"
        ))),
    }
}

fn parse_pointer(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| PatchError(format!("invalid JSON pointer {pointer:?}")))?;
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn show(path: &[String]) -> String {
    path.iter().fold(String::new(), |mut shown, token| {
        let _ = write!(shown, "/{token}");
        shown
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |current, token| match current {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    let Some((last, parent_path)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let parent = get_mut(doc, parent_path)
        .ok_or_else(|| PatchError(format!("add: missing parent of {}", show(path))))?;
    match parent {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| PatchError(format!("add: bad index in {}", show(path))))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(PatchError(format!(
            "add: parent of {} is not a container",
            show(path)
        ))),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let missing = || PatchError(format!("remove: missing path {}", show(path)));
    let (last, parent_path) = path.split_last().ok_or_else(missing)?;
    match get_mut(doc, parent_path).ok_or_else(missing)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(missing)?;
            Ok(items.remove(index))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_and_deletes() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn finalizer_helper_patches_apply() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let add = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        json_patch(&mut doc, &add).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        // The same patch again must fail: the test no longer holds.
        assert!(json_patch(&mut doc, &add).is_err());
        let append = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["f"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "g"}
        ]);
        json_patch(&mut doc, &append).unwrap();
        let remove = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "f"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ]);
        json_patch(&mut doc, &remove).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["g"]));
    }

    #[test]
    fn failed_json_patch_leaves_document_untouched() {
        let mut doc = json!({"a": 1});
        let ops = json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "remove", "path": "/missing"}
        ]);
        assert!(json_patch(&mut doc, &ops).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn move_copy_and_escaped_pointers() {
        let mut doc = json!({"m": {"a/b": 1, "c~d": 2}});
        let ops = json!([
            {"op": "move", "from": "/m/a~1b", "path": "/x"},
            {"op": "copy", "from": "/m/c~0d", "path": "/y"}
        ]);
        json_patch(&mut doc, &ops).unwrap();
        assert_eq!(doc, json!({"m": {"c~d": 2}, "x": 1, "y": 2}));
    }
}
