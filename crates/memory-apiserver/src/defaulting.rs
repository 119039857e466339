//! Structural defaulting of custom resources, as upstream applies it to every write before
//! validation: a `null` in a field that is not `nullable` is dropped, or replaced by the
//! field's `default` when it has one; a missing field with a `default` gets it; defaults are
//! applied inside defaults too.

use serde_json::Value;

/// Applies the defaults and null pruning of `schema` to `value`, in place.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child_schema) in properties {
                    let nullable = is_nullable(child_schema);
                    let default = child_schema.get("default");
                    match (map.get(key), default) {
                        (None, Some(default)) => {
                            map.insert(key.clone(), default.clone());
                        }
                        (Some(Value::Null), Some(default)) if !nullable => {
                            map.insert(key.clone(), default.clone());
                        }
                        (Some(Value::Null), None) if !nullable => {
                            map.remove(key);
                        }
                        _ => {}
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(child, child_schema);
                    }
                }
            } else if let Some(item_schema) =
                schema.get("additionalProperties").filter(|s| s.is_object())
            {
                let nullable = is_nullable(item_schema);
                let default = item_schema.get("default");
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if map.get(&key).is_some_and(Value::is_null) && !nullable {
                        match default {
                            Some(default) => {
                                map.insert(key.clone(), default.clone());
                            }
                            None => {
                                map.remove(&key);
                            }
                        }
                    }
                    if let Some(child) = map.get_mut(&key) {
                        apply_defaults(child, item_schema);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    if item.is_null()
                        && !is_nullable(item_schema)
                        && let Some(default) = item_schema.get("default")
                    {
                        *item = default.clone();
                    }
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn is_nullable(schema: &Value) -> bool {
    schema
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_missing_and_non_nullable_null_fields() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "port": {"type": "integer", "default": 587},
            "list": {"type": "array", "default": [], "items": {"type": "string"}},
            "auth": {"type": "object", "nullable": true, "properties": {"mechanism": {"type": "string", "default": "none"}}},
            "name": {"type": "string"},
            "free": {"type": "string", "nullable": true}
        }}}});
        let mut object = json!({"spec": {"port": null, "name": null, "free": null, "auth": {}}});
        apply_defaults(&mut object, &schema);
        assert_eq!(
            object,
            json!({"spec": {"port": 587, "list": [], "free": null, "auth": {"mechanism": "none"}}})
        );
        let mut absent = json!({"spec": {"auth": null}});
        apply_defaults(&mut absent, &schema);
        assert_eq!(absent["spec"]["auth"], Value::Null, "a nullable null stays");
    }
}
