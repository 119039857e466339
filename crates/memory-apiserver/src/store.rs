//! Objects, the global resourceVersion counter and the bounded event history.
//!
//! Like etcd behind a real API server, one counter orders every change of every kind, and each
//! change is kept in a history so that watches can resume from any recent resourceVersion.
//! When a watch asks for a version older than what is retained, the caller answers 410 Gone and
//! the client relists.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::resources::ResourceKey;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjectKey = (String, String);

/// What happened to an object, as watch streams name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated in place.
    Modified,
    /// Removed; the event carries the last state.
    Deleted,
}

/// One persisted change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion this change produced.
    pub resource_version: u64,
    /// Which collection changed.
    pub resource: ResourceKey,
    /// Kind of change.
    pub event: ChangeType,
    /// The object after the change (the last state for deletions).
    pub object: Arc<Value>,
    /// The object before the change, so selector-filtered watches can tell when an object
    /// starts or stops matching.
    pub previous: Option<Arc<Value>>,
}

/// The history no longer reaches back to the requested resourceVersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The oldest resourceVersion a watch may still start from.
    pub oldest: u64,
}

/// All objects plus the change log.
#[derive(Debug)]
pub struct Store {
    objects: HashMap<ResourceKey, BTreeMap<ObjectKey, Value>>,
    resource_version: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes with a resourceVersion at or below this were dropped from the history.
    compacted_through: u64,
    writes: u64,
}

impl Store {
    /// An empty store keeping at most `history_limit` changes.
    pub fn new(history_limit: usize) -> Self {
        Self {
            objects: HashMap::new(),
            // Start above zero: "0" means "any version" to clients.
            resource_version: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_through: 1,
            writes: 0,
        }
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Number of persisted changes (no-op writes are not counted).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// One stored object.
    pub fn get(&self, resource: &ResourceKey, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(resource)?
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Stored objects of one collection, ordered by namespace then name; `None` means all
    /// namespaces.
    pub fn list<'a>(
        &'a self,
        resource: &ResourceKey,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        self.objects
            .get(resource)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
    }

    /// Every collection that holds at least one object in `namespace`.
    pub fn resources_with_objects_in(&self, namespace: &str) -> Vec<ResourceKey> {
        self.objects
            .iter()
            .filter(|(_, objects)| objects.keys().any(|(ns, _)| ns == namespace))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Stores `object` under `key`, stamping a fresh resourceVersion, and records the change.
    /// Returns the stored object.
    pub fn put(&mut self, resource: &ResourceKey, key: ObjectKey, mut object: Value) -> Value {
        let rv = self.next_resource_version();
        set_resource_version(&mut object, rv);
        let previous = self
            .objects
            .entry(resource.clone())
            .or_default()
            .insert(key, object.clone());
        let change = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(resource, change, &object, previous);
        object
    }

    /// Removes an object, recording a deletion whose object carries the new resourceVersion.
    /// Returns the last state.
    pub fn remove(&mut self, resource: &ResourceKey, key: &ObjectKey) -> Option<Value> {
        let previous = self.objects.get_mut(resource)?.remove(key)?;
        let rv = self.next_resource_version();
        let mut last = previous.clone();
        set_resource_version(&mut last, rv);
        self.record(resource, ChangeType::Deleted, &last, Some(previous));
        Some(last)
    }

    /// Removes an object whose final write and deletion happen together (the last finalizer
    /// went away): one deletion whose object is `last`, stamped with the new resourceVersion.
    pub fn remove_as(&mut self, resource: &ResourceKey, key: &ObjectKey, mut last: Value) -> Value {
        let previous = self
            .objects
            .get_mut(resource)
            .and_then(|objects| objects.remove(key));
        let rv = self.next_resource_version();
        set_resource_version(&mut last, rv);
        self.record(resource, ChangeType::Deleted, &last, previous);
        last
    }

    /// Changes newer than `since`, plus the resourceVersion they reach up to.
    pub fn changes_since(&self, since: u64) -> Result<(Vec<Arc<Change>>, u64), Expired> {
        if since < self.compacted_through {
            return Err(Expired {
                oldest: self.compacted_through,
            });
        }
        let start = self
            .history
            .partition_point(|change| change.resource_version <= since);
        let changes = self.history.range(start..).cloned().collect();
        Ok((changes, self.resource_version))
    }

    /// Drops the whole history: every watch older than now will get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_through = self.resource_version;
    }

    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.writes += 1;
        self.resource_version
    }

    fn record(
        &mut self,
        resource: &ResourceKey,
        change: ChangeType,
        object: &Value,
        previous: Option<Value>,
    ) {
        self.history.push_back(Arc::new(Change {
            resource_version: self.resource_version,
            resource: resource.clone(),
            event: change,
            object: Arc::new(object.clone()),
            previous: previous.map(Arc::new),
        }));
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_through = dropped.resource_version;
            }
        }
    }
}

/// Saving and loading every object, for a cluster that outlives its process (`local --state`).
impl Store {
    /// Every object with its collection, and the newest resourceVersion.
    pub fn export(&self) -> Value {
        let mut objects: Vec<Value> = self
            .objects
            .iter()
            .flat_map(|(resource, objects)| {
                objects.values().map(move |object| {
                    serde_json::json!({"group": resource.group, "plural": resource.plural, "object": object})
                })
            })
            .collect();
        objects.sort_by_key(ToString::to_string);
        serde_json::json!({"resourceVersion": self.resource_version, "objects": objects})
    }

    /// Loads what [`Store::export`] wrote, keeping uids and resourceVersions, with an empty
    /// watch history (watches from before get 410 Gone and relist).
    pub fn import(&mut self, saved: &Value) -> Result<usize, String> {
        let objects = saved["objects"].as_array().ok_or("no \"objects\" list")?;
        let mut count = 0;
        for entry in objects {
            let (Some(group), Some(plural)) = (entry["group"].as_str(), entry["plural"].as_str())
            else {
                return Err(format!("an entry without group/plural: {entry}"));
            };
            let object = entry["object"].clone();
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let name = object["metadata"]["name"]
                .as_str()
                .ok_or("an object without a name")?
                .to_owned();
            let resource = ResourceKey {
                group: group.to_owned(),
                plural: plural.to_owned(),
            };
            self.objects
                .entry(resource)
                .or_default()
                .insert((namespace, name), object);
            count += 1;
        }
        let saved_rv = saved["resourceVersion"].as_u64().unwrap_or(1);
        self.resource_version = self.resource_version.max(saved_rv);
        self.history.clear();
        self.compacted_through = self.resource_version;
        Ok(count)
    }
}

fn set_resource_version(object: &mut Value, rv: u64) {
    if let Some(obj) = object.as_object_mut() {
        let metadata = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ResourceKey {
        ResourceKey {
            group: String::new(),
            plural: "configmaps".to_owned(),
        }
    }

    #[test]
    fn put_and_remove_record_ordered_changes() {
        let mut store = Store::new(10);
        let k = ("ns".to_owned(), "a".to_owned());
        let first = store.put(&key(), k.clone(), json!({"metadata": {"name": "a"}}));
        let second = store.put(
            &key(),
            k.clone(),
            json!({"metadata": {"name": "a"}, "data": {}}),
        );
        let last = store.remove(&key(), &k).unwrap();
        let (changes, rv) = store.changes_since(1).unwrap();
        let kinds: Vec<_> = changes.iter().map(|c| c.event).collect();
        assert_eq!(
            kinds,
            [ChangeType::Added, ChangeType::Modified, ChangeType::Deleted]
        );
        assert_eq!(first["metadata"]["resourceVersion"], "2");
        assert_eq!(second["metadata"]["resourceVersion"], "3");
        assert_eq!(last["metadata"]["resourceVersion"], "4");
        assert_eq!(rv, 4);
        assert_eq!(store.writes(), 3);
        assert!(store.get(&key(), "ns", "a").is_none());
    }

    #[test]
    fn history_limit_and_compaction_expire_old_versions() {
        let mut store = Store::new(2);
        for i in 0..5 {
            store.put(&key(), ("ns".to_owned(), format!("o{i}")), json!({}));
        }
        assert!(store.changes_since(1).is_err());
        let (changes, _) = store.changes_since(4).unwrap();
        assert_eq!(changes.len(), 2);
        store.compact();
        assert_eq!(store.changes_since(4).unwrap_err().oldest, 6);
        assert!(store.changes_since(6).unwrap().0.is_empty());
    }
}
