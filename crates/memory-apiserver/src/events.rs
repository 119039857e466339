//! One Event storage seen through two APIs, as upstream does: `events.k8s.io/v1` Events (what
//! kube-rs' recorder writes) also show up in `v1` Event lists, which `kubectl describe` and
//! `kubectl get events` read, and `v1` Events in `events.k8s.io/v1` lists.

use serde_json::{Map, Value, json};

use super::resources::ResourceKey;

/// The `events.k8s.io` collection, whose objects `v1` lists also show.
pub fn new_api_key() -> ResourceKey {
    ResourceKey {
        group: "events.k8s.io".to_owned(),
        plural: "events".to_owned(),
    }
}

/// Whether `key` is the core `v1` Event collection.
pub fn is_core(key: &ResourceKey) -> bool {
    key.group.is_empty() && key.plural == "events"
}

/// The core `v1` Event collection, whose objects `events.k8s.io` lists also show.
pub fn core_key() -> ResourceKey {
    ResourceKey {
        group: String::new(),
        plural: "events".to_owned(),
    }
}

/// A `v1` Event as the `events.k8s.io/v1` API shows it.
pub fn from_core(event: &Value) -> Value {
    let field = |name: &str| event.get(name).filter(|v| !v.is_null()).cloned();
    let mut new = Map::new();
    new.insert("apiVersion".to_owned(), json!("events.k8s.io/v1"));
    new.insert("kind".to_owned(), json!("Event"));
    for (from, to) in [
        ("metadata", "metadata"),
        ("involvedObject", "regarding"),
        ("related", "related"),
        ("reason", "reason"),
        ("message", "note"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("series", "series"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        if let Some(value) = field(from) {
            new.insert(to.to_owned(), value);
        }
    }
    Value::Object(new)
}

/// An `events.k8s.io/v1` Event as the `v1` API shows it.
pub fn to_core(event: &Value) -> Value {
    let field = |name: &str| event.get(name).filter(|v| !v.is_null()).cloned();
    let mut core = Map::new();
    core.insert("apiVersion".to_owned(), json!("v1"));
    core.insert("kind".to_owned(), json!("Event"));
    for (from, to) in [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("reason", "reason"),
        ("note", "message"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("deprecatedSource", "source"),
    ] {
        if let Some(value) = field(from) {
            core.insert(to.to_owned(), value);
        }
    }
    if !core.contains_key("source")
        && let Some(controller) = field("reportingController")
    {
        core.insert("source".to_owned(), json!({ "component": controller }));
    }
    let count = field("deprecatedCount")
        .or_else(|| event.pointer("/series/count").cloned())
        .unwrap_or_else(|| json!(1));
    core.insert("count".to_owned(), count);
    let event_time = field("eventTime");
    if let Some(first) = field("deprecatedFirstTimestamp").or_else(|| event_time.clone()) {
        core.insert("firstTimestamp".to_owned(), first);
    }
    let last = field("deprecatedLastTimestamp")
        .or_else(|| event.pointer("/series/lastObservedTime").cloned())
        .or(event_time);
    if let Some(last) = last {
        core.insert("lastTimestamp".to_owned(), last);
    }
    Value::Object(core)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_fields_to_the_core_api() {
        let event = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "mail"},
            "regarding": {"kind": "SendConnector", "name": "relay", "namespace": "mail"},
            "reason": "Created",
            "note": "created on OVH",
            "type": "Normal",
            "action": "Reconcile",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "sendconnector-operator",
            "reportingInstance": "pod-1",
            "series": {"count": 3, "lastObservedTime": "2024-01-01T00:05:00.000000Z"}
        });
        let core = to_core(&event);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "relay");
        assert_eq!(core["message"], "created on OVH");
        assert_eq!(core["source"]["component"], "sendconnector-operator");
        assert_eq!(core["reportingComponent"], "sendconnector-operator");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2024-01-01T00:00:00.000000Z");
        assert_eq!(core["lastTimestamp"], "2024-01-01T00:05:00.000000Z");
        assert!(core.get("note").is_none());
    }

    #[test]
    fn maps_core_fields_to_the_new_api() {
        let core = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e2", "namespace": "mail"},
            "involvedObject": {"kind": "SendConnector", "name": "relay", "namespace": "mail"},
            "reason": "Created",
            "message": "created on OVH",
            "type": "Normal",
            "count": 2,
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:05:00Z",
            "source": {"component": "kubelet", "host": "node-1"}
        });
        let new = from_core(&core);
        assert_eq!(new["apiVersion"], "events.k8s.io/v1");
        assert_eq!(new["regarding"]["name"], "relay");
        assert_eq!(new["note"], "created on OVH");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(new["deprecatedSource"]["host"], "node-1");
        assert_eq!(new["deprecatedLastTimestamp"], "2024-01-01T00:05:00Z");
        assert!(new.get("message").is_none() && new.get("involvedObject").is_none());
        // Back through the v1 API: what it was.
        let back = to_core(&new);
        for field in [
            "involvedObject",
            "message",
            "count",
            "source",
            "firstTimestamp",
            "lastTimestamp",
        ] {
            assert_eq!(back[field], core[field], "{field}");
        }
    }
}
