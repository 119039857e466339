//! OpenAPI v3 validation of custom resources with the keywords structural CRD schemas use,
//! producing the field errors kube-apiserver's validator (kube-openapi) produces, with the
//! same paths and messages: `spec.port: Invalid value: 70000: spec.port in body should be less
//! than or equal to 65535`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use regex::Regex;
use serde_json::{Value, json};

use super::field_error::{ErrorType, FieldError, go_quote};

/// Where a node is: `field` is the path in `details.causes` (`status.conditions[0]`), `name`
/// the one messages use (relative to the subtree validated: `conditions[0]`).
#[derive(Debug, Clone)]
pub struct Location {
    /// The field path reported in causes.
    pub field: String,
    /// The path inside the validated document, as messages spell it.
    pub name: String,
}

impl Location {
    /// The root of a document validated at `field` (empty for the whole object).
    pub fn root(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            name: String::new(),
        }
    }

    fn child(&self, key: &str) -> Self {
        Self {
            field: join(&self.field, key),
            name: join(&self.name, key),
        }
    }

    fn index(&self, i: usize) -> Self {
        Self {
            field: format!("{}[{i}]", self.field),
            name: format!("{}[{i}]", self.name),
        }
    }

    /// The name as messages spell it; the root of a subtree is `.` upstream, never shown here.
    fn subject(&self) -> &str {
        &self.name
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Validates `value` against `schema`, appending every error to `errors`. At the root of an
/// object (`at.name` empty) `apiVersion`, `kind` and `metadata` are the server's own and
/// skipped.
pub fn validate(value: &Value, schema: &Value, at: &Location, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            type_error(at, expected, "null", errors);
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = actual_type(value);
        let matches = expected == actual
            || (expected == "number" && actual == "integer")
            || (expected == "integer"
                && value
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && actual == "number"));
        if !matches {
            type_error(at, expected, actual, errors);
            return;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        let supported: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), go_quote))
            .collect();
        errors.push(FieldError::new(
            ErrorType::NotSupported,
            &at.field,
            Some(value.clone()),
            format!("supported values: {}", supported.join(", ")),
        ));
    }
    match value {
        Value::String(s) => validate_string(s, schema, at, errors),
        Value::Number(_) => validate_number(value, schema, at, errors),
        Value::Array(items) => validate_array(items, schema, at, errors),
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if map.get(key).is_none_or(Value::is_null) {
                        errors.push(FieldError::new(
                            ErrorType::Required,
                            &at.child(key).field,
                            None,
                            "",
                        ));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                if at.name.is_empty()
                    && at.field.is_empty()
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                if let (Some(child_schema), Some(child)) = (child_schema, map.get(key)) {
                    validate(child, child_schema, &at.child(key), errors);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn type_error(at: &Location, expected: &str, actual: &str, errors: &mut Vec<FieldError>) {
    errors.push(FieldError::new(
        ErrorType::TypeInvalid,
        &at.field,
        Some(json!(actual)),
        format!(
            "{} in body must be of type {expected}: {}",
            at.subject(),
            go_quote(actual)
        ),
    ));
}

/// JSON type names as kube-openapi reports them.
fn actual_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate_string(s: &str, schema: &Value, at: &Location, errors: &mut Vec<FieldError>) {
    let length = s.chars().count();
    let bad = |kind, detail: String| FieldError::new(kind, &at.field, Some(json!(s)), detail);
    // kube-openapi reports the first of maxLength, minLength and pattern that fails.
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length as u64 > max
    {
        errors.push(bad(
            ErrorType::TooLong,
            format!("may not be more than {max} bytes"),
        ));
    } else if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (length as u64) < min
    {
        errors.push(bad(
            ErrorType::Invalid,
            format!(
                "{} in body should be at least {min} chars long",
                at.subject()
            ),
        ));
    } else if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && compiled(pattern).is_some_and(|re| !re.is_match(s))
    {
        errors.push(bad(
            ErrorType::Invalid,
            format!("{} in body should match '{pattern}'", at.subject()),
        ));
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time") && !is_date_time(s) {
        errors.push(bad(
            ErrorType::TypeInvalid,
            format!(
                "{} in body must be of type date-time: {}",
                at.subject(),
                go_quote(s)
            ),
        ));
    }
}

/// RFC 3339 date-times, with or without fractional seconds, as Go's strfmt accepts them.
fn is_date_time(s: &str) -> bool {
    s.parse::<jiff::Timestamp>().is_ok() || s.parse::<jiff::civil::DateTime>().is_ok()
}

/// Compiled patterns, kept: schemas are few and their patterns fixed.
fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn validate_number(value: &Value, schema: &Value, at: &Location, errors: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else {
        return;
    };
    let exclusive = |key| schema.get(key).and_then(Value::as_bool) == Some(true);
    let bad = |detail: String| {
        FieldError::new(ErrorType::Invalid, &at.field, Some(value.clone()), detail)
    };
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if exclusive("exclusiveMaximum") && n >= max {
            errors.push(bad(format!(
                "{} in body should be less than {}",
                at.subject(),
                go_float(max)
            )));
        } else if n > max {
            errors.push(bad(format!(
                "{} in body should be less than or equal to {}",
                at.subject(),
                go_float(max)
            )));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if exclusive("exclusiveMinimum") && n <= min {
            errors.push(bad(format!(
                "{} in body should be greater than {}",
                at.subject(),
                go_float(min)
            )));
        } else if n < min {
            errors.push(bad(format!(
                "{} in body should be greater than or equal to {}",
                at.subject(),
                go_float(min)
            )));
        }
    }
}

/// A bound as Go's `%v` prints a float64: `65535`, `1.5`.
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        // The bound is integral and well inside i64 here.
        #[allow(clippy::cast_possible_truncation)]
        let whole = f as i64;
        whole.to_string()
    } else {
        f.to_string()
    }
}

fn validate_array(items: &[Value], schema: &Value, at: &Location, errors: &mut Vec<FieldError>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        errors.push(FieldError::new(
            ErrorType::TooMany,
            &at.field,
            Some(json!(items.len())),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(FieldError::new(
            ErrorType::Invalid,
            &at.field,
            Some(json!(items.len())),
            format!("{} in body should have at least {min} items", at.subject()),
        ));
    }
    if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
        for (i, item) in items.iter().enumerate() {
            validate(item, item_schema, &at.index(i), errors);
        }
    }
}

/// `x-kubernetes-list-type: set` and `map` lists hold each item (or map key) once; a repeat
/// is `Duplicate value` at its index.
pub fn validate_list_types(
    value: &Value,
    schema: &Value,
    at: &Location,
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::Array(items) => {
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen: Vec<Value> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let identity = match list_type {
                    Some("set") => Some(item.clone()),
                    Some("map") => Some(Value::Object(
                        keys.iter()
                            .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                            .collect(),
                    )),
                    _ => None,
                };
                if let Some(identity) = identity {
                    if seen.contains(&identity) {
                        errors.push(FieldError::new(
                            ErrorType::Duplicate,
                            &at.index(i).field,
                            Some(identity),
                            "",
                        ));
                    } else {
                        seen.push(identity);
                    }
                }
                if let Some(item_schema) = schema.get("items") {
                    validate_list_types(item, item_schema, &at.index(i), errors);
                }
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            for (key, child) in map {
                if at.field.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    validate_list_types(child, child_schema, &at.child(key), errors);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors(value: &Value, schema: &Value) -> Vec<String> {
        let mut out = Vec::new();
        validate(value, schema, &Location::root(""), &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn messages_name_the_field_as_upstream_does() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["host"], "properties": {
            "port": {"type": "integer", "maximum": 65535.0, "minimum": 1.0},
            "policy": {"type": "string", "enum": ["Delete", "Orphan"]},
            "host": {"type": "string", "pattern": "^[a-z]+$"}
        }}}});
        assert_eq!(
            errors(
                &json!({"spec": {"port": 70000, "policy": "Maybe"}}),
                &schema
            ),
            [
                "spec.host: Required value",
                "spec.policy: Unsupported value: \"Maybe\": supported values: \"Delete\", \"Orphan\"",
                "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535",
            ]
        );
        assert_eq!(
            errors(&json!({"spec": {"port": "587", "host": "A"}}), &schema),
            [
                "spec.host: Invalid value: \"A\": spec.host in body should match '^[a-z]+$'",
                "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\"",
            ]
        );
    }

    #[test]
    fn sets_and_maps_refuse_repeats() {
        let schema = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}}}}
        }});
        let mut out = Vec::new();
        let value =
            json!({"tags": ["a", "b", "a"], "conditions": [{"type": "Ready"}, {"type": "Ready"}]});
        validate_list_types(&value, &schema, &Location::root(""), &mut out);
        let rendered: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            [
                "conditions[1]: Duplicate value: {\"type\":\"Ready\"}",
                "tags[2]: Duplicate value: \"a\""
            ]
        );
    }
}
