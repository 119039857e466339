//! Small accessors over objects kept as `serde_json::Value`.
//!
//! The server stores every kind untyped so that custom resources and built-ins share one write
//! path; these helpers keep the metadata plumbing readable.

use std::fmt::Write as _;

use rand::Rng;
use serde_json::{Map, Value};

/// `value` as a JSON object, turning anything else into an empty one first.
pub fn as_map(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("value was just made an object"),
    }
}

/// `metadata` of `object`, created when missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    as_map(
        as_map(object)
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new())),
    )
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata.finalizers`, empty when absent.
pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object has been asked to go away and is waiting on finalizers.
pub fn is_terminating(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Sets (or with `None`, removes) a top-level field.
pub fn set_field(object: &mut Value, field: &str, value: Option<Value>) {
    let map = as_map(object);
    match value {
        Some(value) => {
            map.insert(field.to_owned(), value);
        }
        None => {
            map.remove(field);
        }
    }
}

/// Copies `fields` of `metadata` from `from` into `to` (removing them where `from` has none).
pub fn copy_metadata_fields(from: &Value, to: &mut Value, fields: &[&str]) {
    let source = from.get("metadata").and_then(Value::as_object);
    let target = metadata_mut(to);
    for field in fields {
        match source.and_then(|m| m.get(*field)) {
            Some(value) => {
                target.insert((*field).to_owned(), value.clone());
            }
            None => {
                target.remove(*field);
            }
        }
    }
}

/// RFC 3339 time with second precision, as `metav1.Time` serialises.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random version-4 UUID, as the real server assigns to `metadata.uid`.
pub fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = bytes.iter().fold(String::with_capacity(32), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The random suffix `metadata.generateName` gets, from upstream's alphabet.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `object` without the resourceVersion, which changes on every write, for no-op detection.
pub fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    let metadata = metadata_mut(&mut copy);
    metadata.remove("resourceVersion");
    copy
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uid_and_suffix_shapes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.as_bytes()[14], b'4');
        assert_ne!(uid, new_uid());
        assert_eq!(name_suffix().len(), 5);
    }

    #[test]
    fn metadata_helpers() {
        let mut object = json!({"metadata": {"finalizers": ["a", "b"], "resourceVersion": "3"}});
        assert_eq!(finalizers(&object), ["a", "b"]);
        assert!(!is_terminating(&object));
        metadata_mut(&mut object).insert("deletionTimestamp".into(), json!(now()));
        assert!(is_terminating(&object));
        assert!(
            comparable(&object)
                .pointer("/metadata/resourceVersion")
                .is_none()
        );
    }
}
