//! Admission-time validation of custom resources: the CRD's OpenAPI schema, its list types
//! and its CEL rules, in upstream's order and with upstream's ratcheting (on update, a value
//! left as it was is not held to rules it already broke, so objects stored under a looser
//! CRD stay writable).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Value, json};

use super::cel_rules;
use super::field_error::{ErrorType, FieldError};
use super::resources::ResourceKind;
use super::schema_validation::{self, Location};
use super::status::ApiError;

/// What a write changes: the whole object, or only `.status` through `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Create, update, patch or apply of the object.
    Main,
    /// A write to the status subresource: only the status schema is checked.
    Status,
}

/// Checks `object` (already pruned and defaulted) against its kind's schema and rules;
/// `old` is the stored object on update.
pub fn validate_custom_resource(
    kind: &ResourceKind,
    name: &str,
    object: &Value,
    old: Option<&Value>,
    scope: Scope,
) -> Result<(), ApiError> {
    let Some(schema) = kind.schema.as_ref().filter(|_| kind.validates) else {
        return Ok(());
    };
    let errors = field_errors(schema, name, object, old, scope);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(kind, name, &errors))
    }
}

/// Every error upstream reports for the write, in its order.
pub fn field_errors(
    schema: &Value,
    name: &str,
    object: &Value,
    old: Option<&Value>,
    scope: Scope,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if old.is_none() && scope == Scope::Main {
        validate_name(name, &mut errors);
    }
    match scope {
        Scope::Main => {
            let root = Location::root("");
            schema_validation::validate(object, schema, &root, &mut errors);
            schema_validation::validate_list_types(object, schema, &root, &mut errors);
        }
        Scope::Status => {
            if let (Some(status), Some(status_schema)) =
                (object.get("status"), schema.pointer("/properties/status"))
            {
                let root = Location::root("status");
                schema_validation::validate(status, status_schema, &root, &mut errors);
                schema_validation::validate_list_types(status, status_schema, &root, &mut errors);
            }
        }
    }
    if let Some(old) = old {
        errors.retain(|error| changed(object, old, &ratchet_node(error)));
    }
    if errors.iter().any(|e| e.kind.blocks_cel()) {
        errors.push(FieldError::rules_not_checked());
        return errors;
    }
    for failure in cel_rules::evaluate(schema, object, old) {
        let unchanged = old.is_some_and(|old| !changed(object, old, &failure.node));
        if failure.transition || !unchanged {
            errors.push(failure.error);
        }
    }
    errors
}

/// The node whose change re-arms an error: the parent for a missing field, the list for a
/// repeated item, the field itself otherwise.
fn ratchet_node(error: &FieldError) -> String {
    let field = error.field.as_str();
    match error.kind {
        ErrorType::Required => field.rsplit_once('.').map_or("", |(p, _)| p).to_owned(),
        ErrorType::Duplicate => field
            .strip_suffix(']')
            .and_then(|f| f.rsplit_once('['))
            .map_or(field, |(list, _)| list)
            .to_owned(),
        _ => field.to_owned(),
    }
}

fn changed(object: &Value, old: &Value, path: &str) -> bool {
    lookup(object, path) != lookup(old, path)
}

/// The value at a field path such as `spec.mailboxes[1]`.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    if path.is_empty() {
        return Some(current);
    }
    for segment in path.split('.') {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indexes
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
        {
            current = current.get(index)?;
        }
    }
    Some(current)
}

/// Custom resource names are DNS subdomains.
fn validate_name(name: &str, errors: &mut Vec<FieldError>) {
    static SUBDOMAIN: OnceLock<Option<Regex>> = OnceLock::new();
    let pattern = SUBDOMAIN.get_or_init(|| {
        Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
    });
    if name.is_empty() {
        return;
    }
    if name.len() > 253 {
        errors.push(FieldError::new(
            ErrorType::Invalid,
            "metadata.name",
            Some(json!(name)),
            "must be no more than 253 characters",
        ));
    }
    if pattern.as_ref().is_some_and(|re| !re.is_match(name)) {
        errors.push(FieldError::new(
            ErrorType::Invalid,
            "metadata.name",
            Some(json!(name)),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["organization"], "properties": {
                "organization": {"type": "string", "minLength": 1,
                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec.organization is immutable", "reason": "FieldValueForbidden"}]},
                "port": {"type": "integer", "maximum": 65535.0}
            }},
            "status": {"type": "object", "properties": {"id": {"type": "integer"}}}
        }})
    }

    fn rendered(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn transition_rules_run_on_update_only() {
        let created = json!({"spec": {"organization": "a"}});
        assert!(field_errors(&schema(), "x", &created, None, Scope::Main).is_empty());
        let moved = json!({"spec": {"organization": "b"}});
        assert_eq!(
            rendered(&field_errors(
                &schema(),
                "x",
                &moved,
                Some(&created),
                Scope::Main
            )),
            ["spec.organization: Forbidden: spec.organization is immutable"]
        );
    }

    #[test]
    fn blocking_errors_skip_the_rules_and_unchanged_values_are_ratcheted() {
        let old = json!({"spec": {"organization": "a", "port": 70000}});
        let new = json!({"spec": {"organization": "b", "port": "x"}});
        assert_eq!(
            rendered(&field_errors(&schema(), "x", &new, Some(&old), Scope::Main)),
            [
                "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\"",
                "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ]
        );
        let status_write =
            json!({"spec": {"organization": "a", "port": 70000}, "status": {"id": 3}});
        assert!(field_errors(&schema(), "x", &status_write, Some(&old), Scope::Status).is_empty());
        assert!(field_errors(&schema(), "x", &status_write, Some(&old), Scope::Main).is_empty());
        let bad_status = json!({"spec": {"organization": "a"}, "status": {"id": "3"}});
        assert_eq!(
            rendered(&field_errors(
                &schema(),
                "x",
                &bad_status,
                Some(&old),
                Scope::Status
            ))[0],
            "status.id: Invalid value: \"string\": id in body must be of type integer: \"string\""
        );
        assert_eq!(
            rendered(&field_errors(
                &schema(),
                "Bad_Name",
                &json!({"spec": {"organization": "a"}}),
                None,
                Scope::Main
            ))
            .len(),
            1
        );
    }
}
