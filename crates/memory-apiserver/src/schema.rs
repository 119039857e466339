//! Unknown-field handling for custom resources, driven by the CRD's structural schema.
//!
//! The real API server prunes fields its schema does not declare, or rejects them with 400 when
//! the client asks for `fieldValidation=Strict` (kubectl does by default). Both come down to the
//! same walk over `properties`, `additionalProperties` and `items`, honouring
//! `x-kubernetes-preserve-unknown-fields`. A typed node that declares no fields keeps none, as
//! upstream; an untyped one is left alone so that a construct this walk does not know never
//! loses data.

use serde_json::Value;

/// Removes fields `schema` does not declare from `object` and returns their dotted paths.
/// `apiVersion`, `kind` and `metadata` are always allowed at the root.
pub fn prune_unknown_fields(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Value::Object(map) = object {
        let properties = schema.get("properties").and_then(Value::as_object);
        let preserve = preserves_unknown(schema);
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match properties.and_then(|p| p.get(&key)) {
                Some(child_schema) => {
                    if let Some(child) = map.get_mut(&key) {
                        walk(child, child_schema, &key, &mut unknown);
                    }
                }
                None if preserve || properties.is_none() => {}
                None => {
                    map.remove(&key);
                    unknown.push(key);
                }
            }
        }
    }
    unknown
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn walk(value: &mut Value, schema: &Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = preserves_unknown(schema);
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let child_path = format!("{path}.{key}");
                    if let Some(child_schema) = properties.get(&key) {
                        if let Some(child) = map.get_mut(&key) {
                            walk(child, child_schema, &child_path, unknown);
                        }
                    } else if !preserve {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                }
            } else if let Some(item_schema) =
                schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for (key, child) in map.iter_mut() {
                    walk(child, item_schema, &format!("{path}.{key}"), unknown);
                }
            } else if schema.get("type").is_some() && !preserve {
                // A typed node that declares no fields (`type: integer` given an object, or a
                // bare `type: object`) keeps none, as upstream prunes them.
                let mut keys: Vec<String> = map.keys().cloned().collect();
                keys.sort();
                for key in keys {
                    map.remove(&key);
                    unknown.push(format!("{path}.{key}"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer"},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                },
                "status": {"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true},
                "bare": {"type": "object"}
            }
        })
    }

    #[test]
    fn declared_fields_survive() {
        let mut object = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "whatever": 1},
            "spec": {"size": 1, "items": [{"a": "x"}], "labels": {"k": "v"}, "free": {"any": {"thing": 1}}},
            "status": {"anything": true}
        });
        let before = object.clone();
        assert!(prune_unknown_fields(&mut object, &schema()).is_empty());
        assert_eq!(object, before);
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut object = json!({
            "spec": {"size": 1, "bogus": 2, "items": [{"a": "x", "b": "y"}]},
            "extra": true,
            "bare": {"x": 1}
        });
        let mut unknown = prune_unknown_fields(&mut object, &schema());
        unknown.sort();
        assert_eq!(
            unknown,
            ["bare.x", "extra", "spec.bogus", "spec.items[0].b"]
        );
        assert_eq!(
            object,
            json!({"spec": {"size": 1, "items": [{"a": "x"}]}, "bare": {}})
        );
    }
}
