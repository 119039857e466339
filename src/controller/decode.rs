//! Objects decoded one at a time. A typed watch fails as a whole when one object in the list
//! does not fit the Rust type (say `mechanism: ntlm` stored before the CRD had its enum, or
//! a cluster without the CRD's validation): the cache never fills and nothing converges.
//! Watching [`Lenient<K>`] instead, such an object is reported (a warning naming the field,
//! and an Event on it) and left out, and everything else goes on.
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One object of kind `K` as the API served it.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    Decoded(K),
    /// It does not decode as `K`: its metadata, and why (the path of the field at fault).
    Undecodable {
        metadata: Box<ObjectMeta>,
        error: String,
    },
}

impl<'de, K: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let metadata: ObjectMeta = value
            .get("metadata")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        match serde_path_to_error::deserialize::<_, K>(&value) {
            Ok(obj) => Ok(Self::Decoded(obj)),
            Err(e) => {
                let path = e.path().to_string();
                let error = if path == "." {
                    e.into_inner().to_string()
                } else {
                    format!("{path}: {}", e.into_inner())
                };
                Ok(Self::Undecodable {
                    metadata: Box::new(metadata),
                    error,
                })
            }
        }
    }
}

impl<K> Resource for Lenient<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Decoded(obj) => obj.meta(),
            Self::Undecodable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Decoded(obj) => obj.meta_mut(),
            Self::Undecodable { metadata, .. } => metadata,
        }
    }
}

/// Reports undecodable objects: once per object version, as a warning and as an Event on the
/// object, so a relist or a resync does not repeat it.
#[derive(Clone)]
pub struct Undecodable {
    recorder: Option<Recorder>,
    /// uid -> the resourceVersion last reported.
    reported: Arc<Mutex<HashMap<String, String>>>,
}

impl Undecodable {
    pub fn new(recorder: Option<Recorder>) -> Self {
        Self {
            recorder,
            reported: Arc::default(),
        }
    }

    /// The object if it decoded; otherwise `None`, reported.
    pub fn decoded<K>(&self, obj: Lenient<K>) -> Option<K>
    where
        K: Resource<DynamicType = ()>,
    {
        match obj {
            Lenient::Decoded(obj) => {
                if let Some(uid) = obj.meta().uid.as_deref() {
                    self.forget(uid);
                }
                Some(obj)
            }
            Lenient::Undecodable { metadata, error } => {
                self.report::<K>(&metadata, &error);
                None
            }
        }
    }

    fn forget(&self, uid: &str) {
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reported.remove(uid);
    }

    fn report<K: Resource<DynamicType = ()>>(&self, metadata: &ObjectMeta, error: &str) {
        let uid = metadata.uid.clone().unwrap_or_default();
        let version = metadata.resource_version.clone().unwrap_or_default();
        {
            let mut reported = self
                .reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reported.get(&uid) == Some(&version) {
                return;
            }
            reported.insert(uid.clone(), version.clone());
        }
        let kind = K::kind(&()).into_owned();
        let namespace = metadata.namespace.clone().unwrap_or_default();
        let name = metadata.name.clone().unwrap_or_default();
        tracing::warn!(
            kind,
            resource = %format!("{namespace}/{name}"),
            %error,
            "skipping an object that does not decode; fix it and it is reconciled"
        );
        let Some(recorder) = self.recorder.clone() else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(kind),
            name: Some(name),
            namespace: Some(namespace),
            uid: Some(uid),
            resource_version: Some(version),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "InvalidSpec".into(),
            note: Some(super::lifecycle::event_note(format!(
                "the operator cannot read this object, so it is not reconciled: {error}"
            ))),
            action: "Decode".into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "could not publish an Event");
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::crd::SendConnector;
    use serde_json::json;

    fn decode(spec: &Value) -> Lenient<SendConnector> {
        serde_json::from_value(json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": "relay", "namespace": "mail", "uid": "u1", "resourceVersion": "7"},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn an_object_that_does_not_fit_names_the_field() {
        let bad = decode(&json!({
            "organization": "org", "smartHost": "relay.example.com",
            "authentication": {"mechanism": "ntlm"}
        }));
        let Lenient::Undecodable { metadata, error } = bad else {
            panic!("decoded")
        };
        assert_eq!(metadata.name.as_deref(), Some("relay"));
        assert!(error.contains("spec.authentication.mechanism"), "{error}");
        let port = decode(&json!({"organization": "org", "smartHost": "h", "port": "587"}));
        assert!(
            matches!(&port, Lenient::Undecodable { error, .. } if error.contains("spec.port")),
            "{port:?}"
        );
        let good = decode(&json!({"organization": "org", "smartHost": "relay.example.com"}));
        assert!(matches!(good, Lenient::Decoded(_)));
    }

    #[test]
    fn a_list_with_one_bad_object_keeps_the_others() {
        let list: kube::core::ObjectList<Lenient<SendConnector>> = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"},
            "items": [
                {"metadata": {"name": "a"}, "spec": {"organization": "o", "smartHost": "h"}},
                {"metadata": {"name": "b"}},
                {"metadata": {"name": "c"}, "spec": {"organization": "o", "smartHost": "h", "deletionPolicy": "delete"}}
            ]
        }))
        .unwrap();
        let reporter = Undecodable::new(None);
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|o| reporter.decoded(o))
            .map(|o| o.metadata.name.unwrap_or_default())
            .collect();
        assert_eq!(names, ["a"]);
    }
}
