//! Create, update, patch and delete with the API server's semantics.
//!
//! Everything kube-rs' runtime leans on lives here: server-owned metadata (uid, timestamps,
//! resourceVersion, generation), the status subresource split, no-op writes that keep the
//! resourceVersion and emit nothing, finalizer-gated deletion, and namespace termination.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::State;
use super::apply;
use super::defaulting::apply_defaults;
use super::deletion::{finish_namespace_if_empty, namespace_is_terminating};
use super::object::{
    as_map, comparable, copy_metadata_fields, finalizers, is_terminating, meta_str, metadata_mut,
    name_suffix, new_uid, now, set_field,
};
use super::patch;
use super::resources::ResourceKind;
use super::schema::prune_unknown_fields;
use super::status::ApiError;
use super::store::ObjectKey;
use super::validation::{Scope, validate_custom_resource};

/// Metadata only the server may set; kept from the stored object on every update.
const SERVER_OWNED_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself.
    Main,
    /// `/status`: only `.status` is written.
    Status,
}

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are dropped silently (what happens without the parameter).
    #[default]
    Ignore,
    /// Unknown fields are dropped; the request still succeeds.
    Warn,
    /// Unknown fields fail the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query value; unknown values mean the default.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => Self::Strict,
            Some("Warn") => Self::Warn,
            _ => Self::Ignore,
        }
    }
}

/// Options every write takes from the query string.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// How to treat fields the schema does not declare.
    pub field_validation: FieldValidation,
    /// `dryRun=All`: compute the answer, persist nothing.
    pub dry_run: bool,
    /// `fieldManager`, required for apply patches.
    pub field_manager: Option<String>,
}

/// The answer to a successful write.
#[derive(Debug, Clone)]
pub struct Written {
    /// HTTP code: 201 for creations, 200 otherwise.
    pub code: u16,
    /// The object as it now stands (or its last state when it is gone).
    pub object: Value,
}

/// Where a request points.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The kind addressed.
    pub kind: &'a ResourceKind,
    /// Namespace from the path (empty for cluster-scoped kinds).
    pub namespace: &'a str,
    /// Object name from the path.
    pub name: &'a str,
    /// Main resource or `/status`.
    pub subresource: Subresource,
}

impl Target<'_> {
    /// `(namespace, name)` in the store.
    pub fn key(&self) -> ObjectKey {
        (self.namespace.to_owned(), self.name.to_owned())
    }
}

/// How a patch body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`, served as a merge patch for built-ins.
    StrategicMerge,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`.
    Apply,
}

impl PatchKind {
    /// Recognises a patch content type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// POST: stores a new object.
pub fn create(
    state: &mut State,
    kind: &ResourceKind,
    namespace: &str,
    mut body: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
        (Some(name), _) if !name.is_empty() => name.to_owned(),
        (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", name_suffix()),
        _ => {
            return Err(ApiError::invalid(
                kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    };
    set_scope(kind, namespace, &mut body)?;
    if kind.namespaced && namespace_is_terminating(state, namespace) {
        return Err(ApiError::namespace_terminating(kind, &name, namespace));
    }
    let key = (namespace.to_owned(), name.clone());
    if state.store.get(&kind.key(), namespace, &name).is_some() {
        return Err(ApiError::already_exists(kind, &name));
    }
    stamp_type(kind, &mut body);
    validate_fields(kind, &name, &mut body, options.field_validation)?;
    fold_string_data(kind, &mut body);
    if kind.status_subresource && kind.custom {
        // Upstream drops status on create when the status subresource is enabled.
        set_field(&mut body, "status", None);
    }
    if kind.is_namespace() {
        set_field(&mut body, "status", Some(json!({"phase": "Active"})));
    }
    if kind.is_crd() {
        accept_crd(state, &name, &mut body)?;
    }
    let metadata = metadata_mut(&mut body);
    metadata.insert("name".to_owned(), json!(name));
    for field in SERVER_OWNED_METADATA {
        metadata.remove(*field);
    }
    metadata.insert("uid".to_owned(), json!(new_uid()));
    metadata.insert("creationTimestamp".to_owned(), json!(now()));
    if kind.tracks_generation {
        metadata.insert("generation".to_owned(), json!(1));
    }
    default_and_validate(kind, &name, &mut body, None, Subresource::Main)?;
    let object = if options.dry_run {
        body
    } else {
        state.store.put(&kind.key(), key, body)
    };
    Ok(Written { code: 201, object })
}

/// PUT: replaces an object (or, on `/status`, its status).
pub fn update(
    state: &mut State,
    target: Target<'_>,
    body: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    let kind = target.kind;
    let existing = stored(state, target)?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Some(name) = meta_str(&body, "name")
        && name != target.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            target.name
        )));
    }
    check_resource_version(kind, target.name, &existing, &body)?;
    let mut updated = match target.subresource {
        Subresource::Main => {
            let mut updated = body;
            set_scope(kind, target.namespace, &mut updated)?;
            keep_server_fields(kind, &existing, &mut updated);
            fold_string_data(kind, &mut updated);
            updated
        }
        Subresource::Status => {
            let mut updated = existing.clone();
            set_field(&mut updated, "status", body.get("status").cloned());
            updated
        }
    };
    metadata_mut(&mut updated).insert("name".to_owned(), json!(target.name));
    finish_update(state, target, &existing, updated, options)
}

/// PATCH: merge, JSON, strategic (built-ins only) or apply patches; apply creates.
pub fn patch(
    state: &mut State,
    target: Target<'_>,
    patch_kind: PatchKind,
    body: &[u8],
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    let kind = target.kind;
    if patch_kind == PatchKind::StrategicMerge && kind.custom {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
        ));
    }
    let document = parse_patch_body(patch_kind, body)?;
    if patch_kind == PatchKind::Apply && options.field_manager.as_deref().is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            kind,
            target.name,
            "fieldManager: Required value: is required for apply patch",
        ));
    }
    if patch_kind == PatchKind::Apply {
        undeclared_apply_fields(kind, target, &document)?;
    }
    let Some(existing) = state
        .store
        .get(&kind.key(), target.namespace, target.name)
        .cloned()
    else {
        if patch_kind == PatchKind::Apply && target.subresource == Subresource::Main {
            let manager = options.field_manager.as_deref().unwrap_or_default();
            let mut object = json!({});
            apply::apply(kind, &mut object, &document, manager, Subresource::Main);
            metadata_mut(&mut object).insert("name".to_owned(), json!(target.name));
            return create(state, kind, target.namespace, object, options);
        }
        return Err(ApiError::not_found(kind, target.name));
    };
    let mut patched = existing.clone();
    match patch_kind {
        PatchKind::Merge | PatchKind::StrategicMerge => patch::merge_patch(&mut patched, &document),
        PatchKind::Apply => apply::apply(
            kind,
            &mut patched,
            &document,
            options.field_manager.as_deref().unwrap_or_default(),
            target.subresource,
        ),
        PatchKind::Json => patch::json_patch(&mut patched, &document)
            .map_err(|e| ApiError::invalid(kind, target.name, e.to_string()))?,
    }
    if matches!(patch_kind, PatchKind::Merge | PatchKind::Json) {
        strict_patch_fields(kind, &patched, options.field_validation)?;
    }
    check_resource_version(kind, target.name, &existing, &patched)?;
    let updated = match target.subresource {
        Subresource::Main => {
            set_scope(kind, target.namespace, &mut patched)?;
            keep_server_fields(kind, &existing, &mut patched);
            fold_string_data(kind, &mut patched);
            metadata_mut(&mut patched).insert("name".to_owned(), json!(target.name));
            patched
        }
        Subresource::Status => {
            let mut updated = existing.clone();
            set_field(&mut updated, "status", patched.get("status").cloned());
            copy_metadata_fields(&patched, &mut updated, &["managedFields"]);
            updated
        }
    };
    finish_update(state, target, &existing, updated, options)
}

/// The common tail of update and patch: finalizer rules, generation, no-op detection, and
/// removal once the last finalizer of a deleted object is gone.
fn finish_update(
    state: &mut State,
    target: Target<'_>,
    existing: &Value,
    mut updated: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    let kind = target.kind;
    stamp_type(kind, &mut updated);
    validate_fields(kind, target.name, &mut updated, options.field_validation)?;
    default_and_validate(
        kind,
        target.name,
        &mut updated,
        Some(existing),
        target.subresource,
    )?;
    if is_terminating(existing) {
        let before = finalizers(existing);
        let added: Vec<String> = finalizers(&updated)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                kind,
                target.name,
                format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the \
                     object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }
    if kind.is_crd() {
        accept_crd(state, target.name, &mut updated)?;
    }
    if kind.tracks_generation && generation_changes(kind, existing, &updated) {
        let generation = existing
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(&mut updated).insert("generation".to_owned(), json!(generation + 1));
    }
    if comparable(&updated) == comparable(existing) {
        return Ok(Written {
            code: 200,
            object: existing.clone(),
        });
    }
    if options.dry_run {
        return Ok(Written {
            code: 200,
            object: updated,
        });
    }
    let key = target.key();
    let gone = is_terminating(&updated) && finalizers(&updated).is_empty() && !kind.is_namespace();
    let object = if gone {
        state.store.remove_as(&kind.key(), &key, updated)
    } else {
        state.store.put(&kind.key(), key, updated)
    };
    if kind.is_namespace() {
        finish_namespace_if_empty(state, target.name);
    } else if gone && kind.namespaced {
        finish_namespace_if_empty(state, target.namespace);
    }
    Ok(Written { code: 200, object })
}

/// Whether `metadata.generation` must move: a `spec` change when status is a subresource,
/// any change outside metadata otherwise.
fn generation_changes(kind: &ResourceKind, existing: &Value, updated: &Value) -> bool {
    if kind.status_subresource {
        return existing.get("spec") != updated.get("spec");
    }
    let strip = |object: &Value| {
        let mut copy = object.clone();
        as_map(&mut copy).remove("metadata");
        copy
    };
    strip(existing) != strip(updated)
}

pub(super) fn stored(state: &State, target: Target<'_>) -> Result<Value, ApiError> {
    state
        .store
        .get(&target.kind.key(), target.namespace, target.name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(target.kind, target.name))
}

/// A non-empty `metadata.resourceVersion` in the request must equal the stored one.
fn check_resource_version(
    kind: &ResourceKind,
    name: &str,
    existing: &Value,
    request: &Value,
) -> Result<(), ApiError> {
    match meta_str(request, "resourceVersion") {
        Some(rv) if !rv.is_empty() && Some(rv) != meta_str(existing, "resourceVersion") => {
            Err(ApiError::conflict(kind, name))
        }
        _ => Ok(()),
    }
}

/// Server-owned metadata comes from the stored object, and so does `status` on the main
/// resource when status is a subresource.
fn keep_server_fields(kind: &ResourceKind, existing: &Value, updated: &mut Value) {
    copy_metadata_fields(existing, updated, SERVER_OWNED_METADATA);
    // Clients that do not send managedFields leave them as they are.
    if updated.pointer("/metadata/managedFields").is_none() {
        copy_metadata_fields(existing, updated, &["managedFields"]);
    }
    if kind.status_subresource {
        set_field(updated, "status", existing.get("status").cloned());
    }
}

/// Namespaced objects take the namespace of the path; cluster-scoped ones have none.
fn set_scope(kind: &ResourceKind, namespace: &str, object: &mut Value) -> Result<(), ApiError> {
    let metadata = metadata_mut(object);
    if kind.namespaced {
        if let Some(sent) = metadata.get("namespace").and_then(Value::as_str)
            && !sent.is_empty()
            && sent != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        metadata.insert("namespace".to_owned(), json!(namespace));
    } else {
        metadata.remove("namespace");
    }
    Ok(())
}

fn stamp_type(kind: &ResourceKind, object: &mut Value) {
    let map = as_map(object);
    map.insert("apiVersion".to_owned(), json!(kind.api_version()));
    map.insert("kind".to_owned(), json!(kind.kind));
}

/// Merge and JSON patches: upstream decodes the patched object strictly, so `Strict` refuses
/// undeclared fields with a 422 naming the `patch` (PUT and POST answer a 400 instead).
fn strict_patch_fields(
    kind: &ResourceKind,
    patched: &Value,
    validation: FieldValidation,
) -> Result<(), ApiError> {
    let Some(schema) = kind.schema.as_ref().filter(|_| kind.custom) else {
        return Ok(());
    };
    if validation != FieldValidation::Strict {
        return Ok(());
    }
    let mut unknown = prune_unknown_fields(&mut patched.clone(), schema);
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(ApiError::strict_patch(patched, &unknown))
}

/// Apply patches: a field the schema does not declare makes upstream's typed patch fail (500),
/// whatever `fieldValidation` says.
fn undeclared_apply_fields(
    kind: &ResourceKind,
    target: Target<'_>,
    document: &Value,
) -> Result<(), ApiError> {
    let Some(schema) = kind.schema.as_ref().filter(|_| kind.custom) else {
        return Ok(());
    };
    let unknown = prune_unknown_fields(&mut document.clone(), schema);
    if unknown.is_empty() {
        return Ok(());
    }
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    Err(ApiError::undeclared_apply_fields(
        kind,
        namespace,
        target.name,
        &unknown,
    ))
}

/// Prunes fields the CRD schema does not declare; `Strict` turns them into a 400.
fn validate_fields(
    kind: &ResourceKind,
    name: &str,
    object: &mut Value,
    validation: FieldValidation,
) -> Result<(), ApiError> {
    let Some(schema) = &kind.schema else {
        return Ok(());
    };
    let mut unknown = prune_unknown_fields(object, schema);
    unknown.sort();
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            kind.kind,
            kind.version,
            kind.kind,
            fields.join(", ")
        ))
        .with_name(kind, name));
    }
    Ok(())
}

/// Custom resources under a validating CRD: schema defaults, then the schema and its CEL
/// rules (transition rules against `old` on update).
fn default_and_validate(
    kind: &ResourceKind,
    name: &str,
    object: &mut Value,
    old: Option<&Value>,
    subresource: Subresource,
) -> Result<(), ApiError> {
    let Some(schema) = kind
        .schema
        .as_ref()
        .filter(|_| kind.validates && kind.custom)
    else {
        return Ok(());
    };
    apply_defaults(object, schema);
    let scope = match subresource {
        Subresource::Main => Scope::Main,
        Subresource::Status => Scope::Status,
    };
    validate_custom_resource(kind, name, object, old, scope)
}

/// Secrets: `stringData` is write-only sugar for base64 `data`, and `type` defaults to `Opaque`.
fn fold_string_data(kind: &ResourceKind, object: &mut Value) {
    if !kind.is_secret() {
        return;
    }
    let type_ = as_map(object).entry("type").or_insert(Value::Null);
    if type_.as_str().is_none_or(str::is_empty) {
        *type_ = json!("Opaque");
    }
    let Some(Value::Object(string_data)) = as_map(object).remove("stringData") else {
        return;
    };
    let data = as_map(
        as_map(object)
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new())),
    );
    for (key, value) in string_data {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        data.insert(
            key,
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

/// A CRD written through the API starts (or keeps) serving its kinds and reports itself
/// established, which `kubectl wait --for condition=established` looks for.
fn accept_crd(state: &mut State, name: &str, object: &mut Value) -> Result<(), ApiError> {
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(object.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid CustomResourceDefinition {name}: {e}")))?;
    state.registry.register_crd(&crd, true);
    let names = object
        .pointer("/spec/names")
        .cloned()
        .unwrap_or(Value::Null);
    let condition = |kind: &str, reason: &str| json!({"type": kind, "status": "True", "reason": reason, "message": "", "lastTransitionTime": "1970-01-01T00:00:00Z"});
    set_field(
        object,
        "status",
        Some(json!({
            "acceptedNames": names,
            "conditions": [condition("NamesAccepted", "NoConflicts"), condition("Established", "InitialNamesAccepted")],
            "storedVersions": object.pointer("/spec/versions").and_then(Value::as_array).map(|versions| {
                versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()
            }).unwrap_or_default(),
        })),
    );
    Ok(())
}

fn parse_patch_body(patch_kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("patch body is not UTF-8: {e}")))?;
    let parsed = match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok(value),
        Err(json_error) if patch_kind == PatchKind::Apply => serde_saphyr::from_str::<Value>(text)
            .map_err(|e| format!("neither JSON ({json_error}) nor YAML ({e})")),
        Err(e) => Err(e.to_string()),
    };
    let document =
        parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match (patch_kind, &document) {
        (PatchKind::Json, Value::Array(_)) | (_, Value::Object(_)) => Ok(document),
        _ => Err(ApiError::bad_request(
            "the patch body has the wrong JSON type",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use crate::store::Store;

    fn state() -> State {
        State {
            registry: Registry::default(),
            store: Store::new(100),
        }
    }

    fn configmaps(state: &State) -> ResourceKind {
        state
            .registry
            .lookup("", "v1", "configmaps")
            .unwrap()
            .clone()
    }

    fn target<'a>(kind: &'a ResourceKind, name: &'a str) -> Target<'a> {
        Target {
            kind,
            namespace: "ns",
            name,
            subresource: Subresource::Main,
        }
    }

    #[test]
    fn generate_name_and_dry_run() {
        let mut state = state();
        let kind = configmaps(&state);
        let dry = WriteOptions {
            dry_run: true,
            ..WriteOptions::default()
        };
        let body = json!({"metadata": {"generateName": "cm-"}});
        let written = create(&mut state, &kind, "ns", body, &dry).unwrap();
        let name = meta_str(&written.object, "name").unwrap().to_owned();
        assert!(name.starts_with("cm-") && name.len() == 8, "{name}");
        assert_eq!(state.store.writes(), 0, "dry run persisted");
        let missing = create(&mut state, &kind, "ns", json!({}), &WriteOptions::default());
        assert_eq!(missing.unwrap_err().code, 422);
    }

    #[test]
    fn apply_patches_accept_yaml_and_require_a_field_manager() {
        let mut state = state();
        let kind = configmaps(&state);
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n";
        let no_manager = patch(
            &mut state,
            target(&kind, "cm"),
            PatchKind::Apply,
            yaml,
            &WriteOptions::default(),
        );
        assert_eq!(no_manager.unwrap_err().code, 422);
        let options = WriteOptions {
            field_manager: Some("kubectl".to_owned()),
            ..WriteOptions::default()
        };
        let created = patch(
            &mut state,
            target(&kind, "cm"),
            PatchKind::Apply,
            yaml,
            &options,
        )
        .unwrap();
        assert_eq!(created.code, 201);
        assert_eq!(created.object["data"]["a"], "1");
        let again = patch(
            &mut state,
            target(&kind, "cm"),
            PatchKind::Apply,
            yaml,
            &options,
        )
        .unwrap();
        assert_eq!(again.code, 200);
        assert_eq!(
            state.store.writes(),
            1,
            "re-applying the same manifest wrote"
        );
    }

    #[test]
    fn crds_written_through_the_api_register_their_kinds() {
        let mut state = state();
        let crds = state
            .registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap()
            .clone();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Cluster",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                    "subresources": {"status": {}}
                }]
            }
        });
        let written = create(&mut state, &crds, "", crd, &WriteOptions::default()).unwrap();
        assert_eq!(
            written.object["status"]["conditions"][1]["type"],
            "Established"
        );
        let gadget = state
            .registry
            .lookup("example.com", "v1", "gadgets")
            .unwrap();
        assert!(!gadget.namespaced && gadget.status_subresource && gadget.custom);
    }
}
