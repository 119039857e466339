//! Deletion: finalizer-gated removal and namespace termination.
//!
//! An object with finalizers is only marked (`deletionTimestamp`) and goes away when an update
//! removes its last finalizer. Deleting a namespace marks it `Terminating`, deletes everything
//! inside it (respecting each object's finalizers) and removes it once it is empty, while
//! creates inside it are refused.

use serde_json::{Value, json};

use super::State;
use super::object::{as_map, finalizers, is_terminating, meta_str, metadata_mut, now};
use super::resources::{ResourceKey, ResourceKind};
use super::status::ApiError;
use super::store::ObjectKey;
use super::writes::{Target, Written, stored};

/// DELETE: removes the object, or marks it for deletion while finalizers remain.
/// `preconditions` is the `DeleteOptions.preconditions` object, when sent.
pub fn delete(
    state: &mut State,
    target: Target<'_>,
    preconditions: Option<&Value>,
) -> Result<Written, ApiError> {
    let kind = target.kind;
    let existing = stored(state, target)?;
    if let Some(preconditions) = preconditions {
        for field in ["uid", "resourceVersion"] {
            if let Some(wanted) = preconditions.get(field).and_then(Value::as_str)
                && meta_str(&existing, field) != Some(wanted)
            {
                return Err(ApiError::conflict(kind, target.name));
            }
        }
    }
    if kind.is_namespace() {
        return Ok(Written {
            code: 200,
            object: delete_namespace(state, kind, target.name, existing),
        });
    }
    let object = delete_object(state, kind, &target.key(), existing);
    if kind.namespaced {
        finish_namespace_if_empty(state, target.namespace);
    }
    Ok(Written { code: 200, object })
}

/// Marks (finalizers present) or removes (none) one object; returns what the client sees.
fn delete_object(
    state: &mut State,
    kind: &ResourceKind,
    key: &ObjectKey,
    existing: Value,
) -> Value {
    if finalizers(&existing).is_empty() {
        return state.store.remove(&kind.key(), key).unwrap_or(existing);
    }
    if is_terminating(&existing) {
        return existing;
    }
    let mut marked = existing;
    let metadata = metadata_mut(&mut marked);
    metadata.insert("deletionTimestamp".to_owned(), json!(now()));
    metadata.insert("deletionGracePeriodSeconds".to_owned(), json!(0));
    state.store.put(&kind.key(), key.clone(), marked)
}

/// Namespace deletion: mark it terminating, delete everything inside, and let it go once empty.
fn delete_namespace(state: &mut State, kind: &ResourceKind, name: &str, existing: Value) -> Value {
    let key = (String::new(), name.to_owned());
    if !is_terminating(&existing) {
        let mut marked = existing;
        metadata_mut(&mut marked).insert("deletionTimestamp".to_owned(), json!(now()));
        as_map(as_map(&mut marked).entry("status").or_insert(Value::Null))
            .insert("phase".to_owned(), json!("Terminating"));
        state.store.put(&kind.key(), key.clone(), marked);
    }
    for resource in state.store.resources_with_objects_in(name) {
        let Some(member_kind) = state.registry.lookup_key(&resource).cloned() else {
            continue;
        };
        let members: Vec<(ObjectKey, Value)> = state
            .store
            .list(&resource, Some(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (member_key, member) in members {
            delete_object(state, &member_kind, &member_key, member);
        }
    }
    finish_namespace_if_empty(state, name);
    state
        .store
        .get(&kind.key(), "", name)
        .cloned()
        .unwrap_or_else(|| json!({"metadata": {"name": name}}))
}

/// Removes a terminating namespace once it holds nothing and has no finalizers of its own.
pub fn finish_namespace_if_empty(state: &mut State, namespace: &str) {
    let key = ResourceKey {
        group: String::new(),
        plural: "namespaces".to_owned(),
    };
    let Some(ns) = state.store.get(&key, "", namespace) else {
        return;
    };
    if is_terminating(ns)
        && finalizers(ns).is_empty()
        && state.store.resources_with_objects_in(namespace).is_empty()
    {
        state
            .store
            .remove(&key, &(String::new(), namespace.to_owned()));
    }
}

/// Whether `namespace` has a Namespace object that is being deleted.
pub fn namespace_is_terminating(state: &State, namespace: &str) -> bool {
    let key = ResourceKey {
        group: String::new(),
        plural: "namespaces".to_owned(),
    };
    state
        .store
        .get(&key, "", namespace)
        .is_some_and(is_terminating)
}
