//! The generated CRDs: drift against `crds/crds.yaml`, YAML round trip, schema shape, and good
//! and bad manifests validated against the generated schema, both its OpenAPI keywords (with the
//! `jsonschema` crate: types, ranges, enums, patterns, required fields) and its CEL rules (with
//! kube's CEL validator, including `oldSelf` transition rules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{Validator, compile_schema, estimate_rule_cost};
use sendconnector_operator::crd::{
    CRDS_YAML_HEADER, DeletionPolicy, MAX_DOMAINS, MAX_MAILBOXES, MailboxBinding, SendConnector,
    crds, crds_yaml,
};
use serde_json::{Value, json};
use std::path::PathBuf;

const REGENERATE: &str = "UPDATE_CRDS=1 cargo test --test crd";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/crds.yaml")
}

// ---------------------------------------------------------------------------------------------
// Drift and round trip

#[test]
fn committed_crds_match_generated() {
    let generated = crds_yaml().unwrap();
    let path = committed_path();
    if std::env::var_os("UPDATE_CRDS").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "crds/crds.yaml differs from the generated CRDs (first at line {first_difference}); \
             regenerate it with `{REGENERATE}` and commit the result"
        );
    }
}

fn parsed_crds() -> Vec<CustomResourceDefinition> {
    serde_saphyr::from_multiple(&crds_yaml().unwrap()).unwrap()
}

#[test]
fn yaml_round_trips_into_custom_resource_definitions() {
    let yaml = crds_yaml().unwrap();
    assert!(yaml.starts_with(CRDS_YAML_HEADER));
    assert_eq!(parsed_crds(), crds());
}

#[test]
fn crds_are_ordered_and_named() {
    let names: Vec<_> = crds()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sendconnectors.sendconnector.io",
            "mailboxbindings.sendconnector.io"
        ]
    );
    for (crd, (kind, plural, short)) in crds().iter().zip([
        ("SendConnector", "sendconnectors", "sendconn"),
        ("MailboxBinding", "mailboxbindings", "mbx"),
    ]) {
        assert_eq!(crd.spec.group, "sendconnector.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has the status subresource"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Schema shape

fn schema(kind: &str) -> Value {
    let crd = parsed_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let props = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    serde_json::to_value(props).unwrap()
}

fn columns(kind: &str) -> Vec<(String, String, i32)> {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| (c.name.to_uppercase(), c.json_path, c.priority.unwrap_or(0)))
        .collect()
}

#[test]
fn send_connector_printer_columns() {
    let ready = r#".status.conditions[?(@.type=="Ready")]"#;
    let wanted = [
        ("READY", format!("{ready}.status"), 0),
        ("REASON", format!("{ready}.reason"), 0),
        ("ID", ".status.connectorId".to_owned(), 0),
        ("SMARTHOST", ".spec.smartHost".to_owned(), 0),
        ("TASK", ".status.pendingTask.function".to_owned(), 0),
        ("AGE", ".metadata.creationTimestamp".to_owned(), 0),
        ("STATE", ".status.state".to_owned(), 1),
        ("MESSAGE", format!("{ready}.message"), 1),
    ];
    let wanted: Vec<_> = wanted
        .into_iter()
        .map(|(n, p, prio)| (n.to_owned(), p, prio))
        .collect();
    assert_eq!(columns("SendConnector"), wanted);
}

#[test]
fn mailbox_binding_printer_columns() {
    let ready = r#".status.conditions[?(@.type=="Ready")]"#;
    let wanted = [
        ("READY", format!("{ready}.status"), 0),
        ("CONNECTOR", ".spec.connectorRef.name".to_owned(), 0),
        ("BOUND", ".status.bound".to_owned(), 0),
        ("REASON", format!("{ready}.reason"), 0),
        ("AGE", ".metadata.creationTimestamp".to_owned(), 0),
        ("MESSAGE", format!("{ready}.message"), 1),
    ];
    let wanted: Vec<_> = wanted
        .into_iter()
        .map(|(n, p, prio)| (n.to_owned(), p, prio))
        .collect();
    assert_eq!(columns("MailboxBinding"), wanted);
}

/// Every property below `schema` (through nested objects and list items) with no description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let here = format!("{path}.{name}");
            let documented = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !documented {
                out.push(here.clone());
            }
            undocumented(prop, &here, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    for kind in ["SendConnector", "MailboxBinding"] {
        let schema = schema(kind);
        assert!(
            schema["description"].as_str().is_some_and(|d| d.len() > 20),
            "{kind} has a description"
        );
        let mut missing = Vec::new();
        undocumented(&schema["properties"]["spec"], "spec", &mut missing);
        undocumented(&schema["properties"]["status"], "status", &mut missing);
        assert!(
            missing.is_empty(),
            "{kind}: fields without a description: {missing:?}"
        );
    }
}

#[test]
fn defaults_are_in_the_schema() {
    let sc = schema("SendConnector");
    let spec = &sc["properties"]["spec"]["properties"];
    assert_eq!(spec["port"]["default"], json!(587));
    assert_eq!(spec["requireTLS"]["default"], json!(true));
    assert_eq!(spec["maxSendSize"]["default"], json!(100));
    assert_eq!(spec["deletionPolicy"]["default"], json!("Delete"));
    let auth = &spec["authentication"]["properties"];
    assert_eq!(auth["mechanism"]["default"], json!("none"));
    assert_eq!(
        auth["passwordSecretRef"]["properties"]["key"]["default"],
        json!("password")
    );
    let mbx = schema("MailboxBinding");
    assert_eq!(
        mbx["properties"]["spec"]["properties"]["deletionPolicy"]["default"],
        json!("Delete")
    );
    assert_eq!(
        sc["properties"]["spec"]["required"],
        json!(["organization", "smartHost"])
    );
}

#[test]
fn list_bounds_match_the_constants() {
    let mbx = schema("MailboxBinding");
    let spec = &mbx["properties"]["spec"]["properties"];
    assert_eq!(spec["mailboxes"]["maxItems"], json!(MAX_MAILBOXES));
    assert_eq!(spec["defaultForDomains"]["maxItems"], json!(MAX_DOMAINS));
    assert_eq!(spec["mailboxes"]["x-kubernetes-list-type"], json!("set"));
    let status = &mbx["properties"]["status"]["properties"];
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], json!("map"));
    assert_eq!(
        status["mailboxes"]["x-kubernetes-list-map-keys"],
        json!(["address"])
    );
}

/// Each CEL rule (the field it reports on, the rule, its message) with the schema node it
/// sits on.
fn rules_with_nodes(schema: &Value, path: &str, out: &mut Vec<(String, String, String, Value)>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            let field = format!("{path}{}", rule["fieldPath"].as_str().unwrap_or_default());
            out.push((
                field.trim_start_matches('.').to_owned(),
                rule["rule"].as_str().unwrap().to_owned(),
                rule["message"].as_str().unwrap().to_owned(),
                schema.clone(),
            ));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            rules_with_nodes(prop, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        rules_with_nodes(items, &format!("{path}[]"), out);
    }
}

#[test]
fn cel_rules_compile_name_their_field_and_stay_within_the_cost_budget() {
    let mut count = 0;
    for kind in ["SendConnector", "MailboxBinding"] {
        let schema = schema(kind);
        assert!(
            !compile_schema(&schema).has_errors(),
            "{kind}: CEL compiles"
        );
        let mut rules = Vec::new();
        rules_with_nodes(&schema, "", &mut rules);
        for (field, rule, message, node) in rules {
            assert!(
                message.starts_with(&field),
                "{kind}: the message of `{rule}` names `{field}`: {message}"
            );
            let warnings = estimate_rule_cost(&rule, &compile_schema(&node));
            assert!(
                warnings.is_empty(),
                "{kind} {field}: `{rule}`: {warnings:?}"
            );
            count += 1;
        }
    }
    assert_eq!(
        count, 6,
        "rules found: 4 on SendConnector, 2 on MailboxBinding"
    );
}

// ---------------------------------------------------------------------------------------------
// Validation of manifests against the generated schema

/// The CRD's OpenAPI v3 schema as JSON Schema: `nullable` becomes a `null` type, and objects
/// with declared properties reject others (the API server would prune them silently; here a
/// typo in a test manifest fails instead of passing unnoticed).
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "properties" => Value::Object(
                            v.as_object()
                                .unwrap()
                                .iter()
                                .map(|(name, s)| (name.clone(), to_json_schema(s)))
                                .collect(),
                        ),
                        "items" => to_json_schema(v),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect();
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(ty) = out.get("type").cloned() {
                    out.insert("type".into(), json!([ty, "null"]));
                }
            }
            if out.contains_key("properties")
                && !out.contains_key("x-kubernetes-preserve-unknown-fields")
            {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `/spec/mailboxes/0` as the API server writes it: `spec.mailboxes[0]`.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// All errors the API server would report for `object` (and `old`, on update), each as
/// `field: message`. The root `metadata`, `apiVersion` and `kind` are the API server's own.
fn validate(kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = schema(kind);
    let mut json_schema = to_json_schema(&schema);
    let props = json_schema["properties"].as_object_mut().unwrap();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&json_schema)
        .unwrap();
    let mut errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", field_path(e.instance_path().as_str())))
        .collect();
    if let Err(cel) = Validator::new().validate(&schema, object, old) {
        errors.extend(cel.iter().map(ToString::to_string));
    }
    errors
}

fn assert_valid(kind: &str, object: &Value, old: Option<&Value>) {
    let errors = validate(kind, object, old);
    assert!(
        errors.is_empty(),
        "expected {kind} to be valid, got {errors:#?}"
    );
}

/// Asserts the object is rejected, and that some error names `field` and contains `words`.
fn assert_rejected(kind: &str, object: &Value, old: Option<&Value>, field: &str, words: &str) {
    let errors = validate(kind, object, old);
    assert!(
        errors
            .iter()
            .any(|e| e.contains(field) && e.contains(words)),
        "expected an error naming `{field}` with `{words}`, got {errors:#?}"
    );
}

fn full_send_connector() -> Value {
    json!({
        "apiVersion": "sendconnector.io/v1alpha1",
        "kind": "SendConnector",
        "metadata": {"name": "newsletter-relay", "namespace": "mail"},
        "spec": {
            "organization": "private-zz111111-1",
            "service": "private-zz111111-1",
            "displayName": "newsletter-relay",
            "smartHost": "smtp-relay.example.com",
            "port": 587,
            "requireTLS": true,
            "maxSendSize": 100,
            "authentication": {
                "mechanism": "basicAuthRequireTLS",
                "user": "relay-user",
                "passwordSecretRef": {"name": "relay-password", "key": "password"}
            },
            "credentialsSecretRef": {"name": "ovh-api"},
            "deletionPolicy": "Delete"
        }
    })
}

fn minimal_send_connector() -> Value {
    json!({
        "apiVersion": "sendconnector.io/v1alpha1",
        "kind": "SendConnector",
        "metadata": {"name": "relay", "namespace": "mail"},
        "spec": {"organization": "private-zz111111-1", "smartHost": "smtp-relay.example.com"}
    })
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    object
}

fn without(mut object: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap();
    object
}

const SC: &str = "SendConnector";
const MBX: &str = "MailboxBinding";

#[test]
fn full_and_minimal_send_connectors_are_valid() {
    assert_valid(SC, &full_send_connector(), None);
    assert_valid(SC, &minimal_send_connector(), None);
    // The same object again is a valid update (transition rules hold).
    assert_valid(SC, &full_send_connector(), Some(&full_send_connector()));
    assert_valid(
        SC,
        &minimal_send_connector(),
        Some(&minimal_send_connector()),
    );
}

#[test]
fn a_status_written_by_the_operator_is_valid() {
    let mut object = full_send_connector();
    object["status"] = json!({
            "observedGeneration": 3,
            "connectorId": 29,
            "state": "ok",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                            "lastTransitionTime": "2025-01-02T03:04:05Z", "observedGeneration": 3}],
            "pendingTask": {"id": 113_924_189, "function": "addSendConnector", "status": "todo",
                            "since": "2025-01-02T03:04:05Z"},
            "lastTask": {"id": 113_924_188, "function": "setSendConnector", "status": "done"},
            "appliedAuthentication": {"mechanism": "basicAuth", "user": "relay-user",
                "passwordSecret": {"name": "relay-password", "key": "password", "uid": "u-1",
                                   "resourceVersion": "42"}},
            "creation": {"displayName": "newsletter-relay", "requestedAt": "2025-01-02T03:04:05Z"},
            "lastHandledReconcileAt": "now",
            "plan": [{"method": "POST", "path": "/email/exchange/o/service/s/sendConnector",
                      "body": "{\"password\":\"**********\"}", "reason": "connector missing"}]
    });
    assert_valid(SC, &object, None);
    let typed: SendConnector = serde_json::from_value(object).unwrap();
    assert_eq!(typed.status.unwrap().connector_id, Some(29));
}

#[test]
fn port_outside_1_to_65535_is_rejected() {
    assert_rejected(
        SC,
        &with(full_send_connector(), "/spec/port", json!(0)),
        None,
        "spec.port",
        "minimum",
    );
    assert_rejected(
        SC,
        &with(full_send_connector(), "/spec/port", json!(70000)),
        None,
        "spec.port",
        "maximum",
    );
    assert_valid(
        SC,
        &with(full_send_connector(), "/spec/port", json!(65535)),
        None,
    );
    assert_valid(
        SC,
        &with(full_send_connector(), "/spec/port", json!(1)),
        None,
    );
}

#[test]
fn max_send_size_outside_1_to_100_is_rejected() {
    assert_rejected(
        SC,
        &with(full_send_connector(), "/spec/maxSendSize", json!(101)),
        None,
        "spec.maxSendSize",
        "maximum",
    );
    assert_rejected(
        SC,
        &with(full_send_connector(), "/spec/maxSendSize", json!(0)),
        None,
        "spec.maxSendSize",
        "minimum",
    );
}

#[test]
fn unknown_mechanism_is_rejected() {
    let object = with(
        full_send_connector(),
        "/spec/authentication/mechanism",
        json!("plain"),
    );
    assert_rejected(SC, &object, None, "spec.authentication.mechanism", "plain");
}

#[test]
fn basic_auth_needs_a_user() {
    for mechanism in ["basicAuth", "basicAuthRequireTLS"] {
        let object = with(
            full_send_connector(),
            "/spec/authentication/mechanism",
            json!(mechanism),
        );
        let object = without(object, "/spec/authentication/user");
        assert_rejected(
            SC,
            &object,
            None,
            "spec.authentication.user",
            "is required when",
        );
        let empty = with(
            full_send_connector(),
            "/spec/authentication/user",
            json!(""),
        );
        assert_rejected(
            SC,
            &empty,
            None,
            "spec.authentication.user",
            "is required when",
        );
    }
}

#[test]
fn basic_auth_needs_a_password_secret() {
    let object = without(
        full_send_connector(),
        "/spec/authentication/passwordSecretRef",
    );
    assert_rejected(
        SC,
        &object,
        None,
        "spec.authentication.passwordSecretRef",
        "is required when",
    );
}

#[test]
fn mechanism_none_needs_neither_user_nor_password() {
    let object = with(
        full_send_connector(),
        "/spec/authentication",
        json!({"mechanism": "none"}),
    );
    assert_valid(SC, &object, None);
    // An empty authentication block defaults to `none`.
    let object = with(full_send_connector(), "/spec/authentication", json!({}));
    assert_valid(SC, &object, None);
}

#[test]
fn organization_is_required_and_immutable() {
    assert_rejected(
        SC,
        &without(full_send_connector(), "/spec/organization"),
        None,
        "spec",
        "organization",
    );
    let old = full_send_connector();
    let new = with(
        old.clone(),
        "/spec/organization",
        json!("private-yy222222-1"),
    );
    assert_valid(SC, &new, None);
    assert_rejected(SC, &new, Some(&old), "spec.organization", "immutable");
}

#[test]
fn organization_cannot_break_the_url_path() {
    let object = with(full_send_connector(), "/spec/organization", json!("a/../b"));
    assert_rejected(SC, &object, None, "spec.organization", "does not match");
}

#[test]
fn service_is_immutable_once_set() {
    let old = full_send_connector();
    let changed = with(old.clone(), "/spec/service", json!("other-service"));
    assert_rejected(SC, &changed, Some(&old), "spec.service", "immutable");
    let removed = without(old.clone(), "/spec/service");
    assert_rejected(SC, &removed, Some(&old), "spec.service", "immutable");

    // Omitted before: it may be added only with its effective value, the organization.
    let old = minimal_send_connector();
    let same = with(old.clone(), "/spec/service", json!("private-zz111111-1"));
    assert_valid(SC, &same, Some(&old));
    let different = with(old.clone(), "/spec/service", json!("other-service"));
    assert_rejected(SC, &different, Some(&old), "spec.service", "immutable");
}

#[test]
fn other_fields_may_change() {
    let old = full_send_connector();
    let new = with(old.clone(), "/spec/smartHost", json!("relay2.example.com"));
    let new = with(new, "/spec/port", json!(25));
    let new = with(new, "/spec/displayName", json!("renamed"));
    let new = with(new, "/spec/authentication", json!({"mechanism": "none"}));
    assert_valid(SC, &new, Some(&old));
}

#[test]
fn smart_host_must_be_a_host_name() {
    for bad in [
        "smtp relay.example.com",
        "-relay.example.com",
        "relay..example.com",
        "",
    ] {
        let object = with(full_send_connector(), "/spec/smartHost", json!(bad));
        assert_rejected(SC, &object, None, "spec.smartHost", "");
    }
    for good in [
        "relay",
        "smtp-relay.example.com",
        "192.0.2.10",
        "SMTP.Example.COM",
    ] {
        assert_valid(
            SC,
            &with(full_send_connector(), "/spec/smartHost", json!(good)),
            None,
        );
    }
}

#[test]
fn deletion_policy_is_delete_or_orphan() {
    assert_valid(
        SC,
        &with(
            full_send_connector(),
            "/spec/deletionPolicy",
            json!("Orphan"),
        ),
        None,
    );
    let object = with(
        full_send_connector(),
        "/spec/deletionPolicy",
        json!("Retain"),
    );
    assert_rejected(SC, &object, None, "spec.deletionPolicy", "Retain");
}

fn full_binding() -> Value {
    json!({
        "apiVersion": "sendconnector.io/v1alpha1",
        "kind": "MailboxBinding",
        "metadata": {"name": "newsletter", "namespace": "mail"},
        "spec": {
            "connectorRef": {"name": "newsletter-relay"},
            "mailboxes": ["newsletter@mydomain.ovh", "news.letter+x@sub.mydomain.ovh"],
            "defaultForDomains": ["mydomain.ovh"],
            "deletionPolicy": "Delete"
        }
    })
}

#[test]
fn full_and_minimal_bindings_are_valid() {
    assert_valid(MBX, &full_binding(), None);
    assert_valid(MBX, &full_binding(), Some(&full_binding()));
    let minimal = json!({
        "apiVersion": "sendconnector.io/v1alpha1",
        "kind": "MailboxBinding",
        "metadata": {"name": "b"},
        "spec": {"connectorRef": {"name": "relay"}, "mailboxes": ["a@b.io"]}
    });
    assert_valid(MBX, &minimal, None);
    let status = json!({
        "observedGeneration": 1,
        "connectorId": 29,
        "conditions": [{"type": "Ready", "status": "False", "reason": "MailboxNotFound",
                        "message": "mailbox a@b.io does not exist"}],
        "mailboxes": [{"address": "a@b.io", "phase": "NotFound", "message": "not found"},
                      {"address": "c@b.io", "phase": "Bound", "taskId": 7}],
        "domains": [{"name": "b.io", "phase": "Pending", "taskId": 8}],
        "bound": "1/3"
    });
    let mut object = full_binding();
    object["status"] = status;
    assert_valid(MBX, &object, None);
}

#[test]
fn connector_ref_is_required() {
    assert_rejected(
        MBX,
        &without(full_binding(), "/spec/connectorRef"),
        None,
        "spec",
        "connectorRef",
    );
}

#[test]
fn duplicate_mailboxes_are_rejected() {
    let object = with(
        full_binding(),
        "/spec/mailboxes",
        json!(["a@mydomain.ovh", "b@mydomain.ovh", "a@mydomain.ovh"]),
    );
    assert_rejected(MBX, &object, None, "spec.mailboxes", "same address twice");
    // Addresses are case-insensitive, so a case variant is the same mailbox.
    let object = with(
        full_binding(),
        "/spec/mailboxes",
        json!(["a@mydomain.ovh", "A@MyDomain.ovh"]),
    );
    assert_rejected(MBX, &object, None, "spec.mailboxes", "same address twice");
}

#[test]
fn malformed_mailbox_is_rejected() {
    for bad in [
        "not-an-email",
        "a@b",
        "a b@example.com",
        "@example.com",
        "a@-example.com",
    ] {
        let object = with(
            full_binding(),
            "/spec/mailboxes",
            json!(["ok@example.com", bad]),
        );
        assert_rejected(MBX, &object, None, "spec.mailboxes[1]", "does not match");
    }
}

#[test]
fn too_many_mailboxes_are_rejected() {
    let many: Vec<String> = (0..=MAX_MAILBOXES)
        .map(|i| format!("user{i}@example.com"))
        .collect();
    let object = with(full_binding(), "/spec/mailboxes", json!(many));
    assert_rejected(MBX, &object, None, "spec.mailboxes", "more than 100 items");
    let enough: Vec<String> = (0..MAX_MAILBOXES)
        .map(|i| format!("user{i}@example.com"))
        .collect();
    assert_valid(
        MBX,
        &with(full_binding(), "/spec/mailboxes", json!(enough)),
        None,
    );
}

#[test]
fn malformed_or_duplicate_domain_is_rejected() {
    for bad in [
        "not a domain",
        "localhost",
        "example..com",
        "-example.com",
        "example.123",
    ] {
        let object = with(full_binding(), "/spec/defaultForDomains", json!([bad]));
        assert_rejected(
            MBX,
            &object,
            None,
            "spec.defaultForDomains[0]",
            "does not match",
        );
    }
    let object = with(
        full_binding(),
        "/spec/defaultForDomains",
        json!(["mydomain.ovh", "MyDomain.OVH"]),
    );
    assert_rejected(
        MBX,
        &object,
        None,
        "spec.defaultForDomains",
        "same domain twice",
    );
}

// ---------------------------------------------------------------------------------------------
// The Rust types read the manifests the same way

#[test]
fn omitted_fields_take_their_defaults_in_rust() {
    let sc: SendConnector = serde_json::from_value(minimal_send_connector()).unwrap();
    assert_eq!(sc.spec.port, 587);
    assert!(sc.spec.require_tls);
    assert_eq!(sc.spec.max_send_size, 100);
    assert_eq!(sc.spec.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(sc.service(), "private-zz111111-1");
    assert_eq!(sc.display_name(), "relay");
    assert_eq!(sc.spec.mechanism().as_str(), "none");
    assert_eq!(sc.spec.auth_user(), None);

    let full: SendConnector = serde_json::from_value(full_send_connector()).unwrap();
    assert_eq!(full.spec.password_secret_ref().unwrap().key, "password");
    assert_eq!(full.spec.auth_user(), Some("relay-user"));
    // Serializing gives back the manifest: field names and renames (`requireTLS`) agree.
    assert_eq!(serde_json::to_value(&full).unwrap(), full_send_connector());

    let binding: MailboxBinding = serde_json::from_value(full_binding()).unwrap();
    assert_eq!(binding.spec.connector_ref.name, "newsletter-relay");
    assert_eq!(serde_json::to_value(&binding).unwrap(), full_binding());
}

/// The manifests in `examples/` are valid against the generated schemas and CEL rules, and
/// they read back as the Rust types.
#[test]
fn the_examples_are_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let object: Value = serde_saphyr::from_str(&text).unwrap();
        let kind = object["kind"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "SendConnector" => {
                assert_valid("SendConnector", &object, None);
                let _: sendconnector_operator::crd::SendConnector =
                    serde_json::from_value(object).unwrap();
            }
            "MailboxBinding" => {
                assert_valid("MailboxBinding", &object, None);
                let _: sendconnector_operator::crd::MailboxBinding =
                    serde_json::from_value(object).unwrap();
            }
            "Secret" | "Namespace" => {}
            other => panic!("{name}: unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "MailboxBinding",
            "Namespace",
            "Secret",
            "Secret",
            "SendConnector"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The bad-input corpus: the CRD and the operator refuse the same manifests, naming the field

/// Each file of `tests/bad-input/`: its expected field (first line `# expect: FIELD`), its
/// kind and the object.
pub fn bad_inputs() -> Vec<(String, String, String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let field = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} starts with # expect: FIELD", path.display()))
            .to_owned();
        let object: Value = serde_saphyr::from_str(&text).unwrap();
        let kind = object["kind"].as_str().unwrap().to_owned();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((name, field, kind, object));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The operator's verdict on an object: `Some(field)` when it refuses it.
fn operator_verdict(kind: &str, object: &Value) -> Option<String> {
    use sendconnector_operator::crd::validation::{validate_binding, validate_connector};
    fn decoded<K: serde::de::DeserializeOwned>(object: &Value) -> Result<K, String> {
        serde_path_to_error::deserialize::<_, K>(object).map_err(|e| {
            // A field missing at the root has the root's path; the message names it.
            let path = e.path().to_string();
            if path == "." {
                e.into_inner()
                    .to_string()
                    .replace("missing field ", "")
                    .replace('`', "")
            } else {
                path
            }
        })
    }
    match kind {
        "SendConnector" => match decoded::<SendConnector>(object) {
            Err(path) => Some(path),
            Ok(sc) => validate_connector(&sc.spec).err().map(|e| e.field),
        },
        _ => match decoded::<MailboxBinding>(object) {
            Err(path) => Some(path),
            Ok(mb) => validate_binding(&mb.spec).err().map(|e| e.field),
        },
    }
}

#[test]
fn the_bad_input_corpus_is_refused_by_the_crd_and_the_operator_alike() {
    let corpus = bad_inputs();
    assert!(corpus.len() >= 40, "{} manifests", corpus.len());
    for (name, field, kind, object) in &corpus {
        let crd = validate(kind, object, None);
        // The path of a missing field is its parent's, with the field's name in the message.
        let parent = field.rsplit_once('.').map_or("", |(p, _)| p);
        let leaf = field
            .rsplit('.')
            .next()
            .unwrap_or(field)
            .split('[')
            .next()
            .unwrap_or("");
        assert!(
            crd.iter()
                .any(|e| e.starts_with(field.as_str())
                    || (e.starts_with(parent) && e.contains(leaf))),
            "{name}: the CRD should refuse {field}, said {crd:#?}"
        );
        let operator = operator_verdict(kind, object);
        assert!(
            operator
                .as_deref()
                .is_some_and(|f| f.starts_with(field.as_str()) || field.starts_with(f)),
            "{name}: the operator should refuse {field}, said {operator:?}"
        );
    }
}
