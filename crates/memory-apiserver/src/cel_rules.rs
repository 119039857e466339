//! `x-kubernetes-validations` CEL rules, evaluated with the Kubernetes CEL library of kube-rs
//! and reported as upstream reports them: a rule's `reason` picks the error type, its
//! `fieldPath` the field, and an invalid value shows the type of the node the rule is on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::rc::Rc;

use kube::core::cel::CompiledSchema;
use serde_json::{Value, json};

use super::field_error::{ErrorType, FieldError};

/// A failed rule, with where the rule itself sits (for ratcheting).
#[derive(Debug, Clone)]
pub struct RuleFailure {
    /// The error to report.
    pub error: FieldError,
    /// Path of the node carrying the rule (`spec.authentication`), before `fieldPath`.
    pub node: String,
    /// Whether the rule compares with `oldSelf` (transition rules are never ratcheted).
    pub transition: bool,
}

thread_local! {
    static VALIDATOR: kube::core::cel::Validator = kube::core::cel::Validator::new();
    /// Compiled rules per schema: compiling takes milliseconds, and every write of a kind
    /// evaluates the same rules.
    static COMPILED: RefCell<HashMap<u64, Rc<CompiledSchema>>> = RefCell::new(HashMap::new());
}

fn compiled(schema: &Value) -> Rc<CompiledSchema> {
    let mut hasher = DefaultHasher::new();
    schema.to_string().hash(&mut hasher);
    let key = hasher.finish();
    COMPILED.with(|cache| {
        cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(kube::core::cel::compile_schema(schema)))
            .clone()
    })
}

/// Evaluates every rule of `schema` on `object` (and `old` on update: transition rules run
/// only then).
pub fn evaluate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<RuleFailure> {
    // Upstream runs no rule on a null value: the rules of a nullable field set to null, and
    // those below it, are skipped.
    let object = without_nulls(object);
    let old = old.map(without_nulls);
    let Err(failures) =
        VALIDATOR.with(|v| v.validate_compiled(&compiled(schema), &object, old.as_ref()))
    else {
        return Vec::new();
    };
    failures
        .iter()
        .map(|failure| {
            let rule = find_rule(schema, &failure.rule);
            let node_type = rule
                .and_then(|(node, _)| node.get("type"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let node = match rule.and_then(|(_, field_path)| field_path) {
                Some(fp) => {
                    let suffix = if fp.starts_with('.') {
                        fp.to_owned()
                    } else {
                        format!(".{fp}")
                    };
                    failure
                        .field_path
                        .strip_suffix(&suffix)
                        .unwrap_or(&failure.field_path)
                        .to_owned()
                }
                None => failure.field_path.clone(),
            };
            let kind = if failure.kind == kube::core::cel::ErrorKind::ValidationFailure {
                match failure.reason.as_deref() {
                    Some("FieldValueForbidden") => ErrorType::Forbidden,
                    Some("FieldValueRequired") => ErrorType::Required,
                    Some("FieldValueDuplicate") => ErrorType::Duplicate,
                    _ => ErrorType::Invalid,
                }
            } else {
                ErrorType::Invalid
            };
            let detail = if kind == ErrorType::Duplicate {
                String::new()
            } else {
                failure.message.clone()
            };
            RuleFailure {
                error: FieldError::new(kind, &failure.field_path, Some(json!(node_type)), detail),
                node,
                transition: failure.rule.contains("oldSelf"),
            }
        })
        .collect()
}

/// A copy of `value` without the object fields that are null.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The schema node holding `rule`, and the rule's `fieldPath`.
fn find_rule<'a>(schema: &'a Value, rule: &str) -> Option<(&'a Value, Option<&'a str>)> {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        && let Some(found) = rules
            .iter()
            .find(|r| r.get("rule").and_then(Value::as_str) == Some(rule))
    {
        return Some((schema, found.get("fieldPath").and_then(Value::as_str)));
    }
    let children = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
        .chain(schema.get("items"))
        .chain(schema.get("additionalProperties").filter(|s| s.is_object()));
    for child in children {
        if let Some(found) = find_rule(child, rule) {
            return Some(found);
        }
    }
    None
}
