//! Request bodies in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl 1.32 uses to create built-in objects (`kubectl create secret`).
//!
//! Only decoding, and only what those commands send: the `k8s\0` envelope around a
//! `runtime.Unknown`, whose `raw` is a `v1.Secret`, `v1.ConfigMap` or `v1.Namespace` with the
//! common `ObjectMeta` fields. The result is the JSON the same object would have been sent as.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::resources::ResourceKind;
use super::status::ApiError;

/// The media type of protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every protobuf-encoded Kubernetes object starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Whether a `Content-Type` header names the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim() == CONTENT_TYPE
}

/// Decodes a protobuf request body for `kind` into the equivalent JSON object.
pub fn decode(kind: &ResourceKind, body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = || ApiError::unsupported_media_type(CONTENT_TYPE);
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let mut api_version = String::new();
    let mut type_kind = String::new();
    let mut raw: &[u8] = &[];
    for field in Fields::new(envelope) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for field in Fields::new(type_meta) {
                    match field? {
                        (1, Wire::Bytes(b)) => api_version = text(b)?,
                        (2, Wire::Bytes(b)) => type_kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(encoding)) if !encoding.is_empty() => {
                return Err(bad("content encodings are not supported"));
            }
            _ => {}
        }
    }
    if !type_kind.is_empty() && type_kind != kind.kind {
        return Err(bad(format!(
            "the body is a {type_kind}, not a {}",
            kind.kind
        )));
    }
    let mut object = match (kind.group.as_str(), kind.kind.as_str()) {
        ("", "Secret") => secret(raw)?,
        ("", "ConfigMap") => config_map(raw)?,
        ("", "Namespace") => namespace(raw)?,
        _ => return Err(unsupported()),
    };
    object.insert(
        "apiVersion".to_owned(),
        json!(if api_version.is_empty() {
            kind.api_version()
        } else {
            api_version
        }),
    );
    object.insert("kind".to_owned(), json!(kind.kind));
    Ok(Value::Object(object))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf request body: {message}"))
}

fn text(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string field is not UTF-8"))
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `v1.Secret`: metadata 1, data 2, type 3, stringData 4, immutable 5.
fn secret(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut object = Map::new();
    let mut data = Map::new();
    let mut string_data = Map::new();
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".to_owned(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b)?;
                data.insert(key, json!(base64(value)));
            }
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                object.insert("type".to_owned(), json!(text(b)?));
            }
            (4, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b)?;
                string_data.insert(key, json!(text(value)?));
            }
            (5, Wire::Varint(v)) => {
                object.insert("immutable".to_owned(), json!(v != 0));
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        object.insert("data".to_owned(), Value::Object(data));
    }
    if !string_data.is_empty() {
        object.insert("stringData".to_owned(), Value::Object(string_data));
    }
    Ok(object)
}

/// `v1.ConfigMap`: metadata 1, data 2, binaryData 3, immutable 4.
fn config_map(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut object = Map::new();
    let mut data = Map::new();
    let mut binary = Map::new();
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".to_owned(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b)?;
                data.insert(key, json!(text(value)?));
            }
            (3, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b)?;
                binary.insert(key, json!(base64(value)));
            }
            (4, Wire::Varint(v)) => {
                object.insert("immutable".to_owned(), json!(v != 0));
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        object.insert("data".to_owned(), Value::Object(data));
    }
    if !binary.is_empty() {
        object.insert("binaryData".to_owned(), Value::Object(binary));
    }
    Ok(object)
}

/// `v1.Namespace`: metadata 1, spec 2 (finalizers 1).
fn namespace(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut object = Map::new();
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".to_owned(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => {
                let mut finalizers = Vec::new();
                for field in Fields::new(b) {
                    if let (1, Wire::Bytes(f)) = field? {
                        finalizers.push(json!(text(f)?));
                    }
                }
                if !finalizers.is_empty() {
                    object.insert("spec".to_owned(), json!({ "finalizers": finalizers }));
                }
            }
            _ => {}
        }
    }
    Ok(object)
}

/// `ObjectMeta`: name 1, generateName 2, namespace 3, uid 5, resourceVersion 6, labels 11,
/// annotations 12, finalizers 14. Server-set fields (timestamps, managedFields) are skipped.
fn object_meta(raw: &[u8]) -> Result<Value, ApiError> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for field in Fields::new(raw) {
        let (number, wire) = field?;
        let Wire::Bytes(b) = wire else {
            continue;
        };
        let name = match number {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            5 => "uid",
            6 => "resourceVersion",
            11 => {
                let (key, value) = map_entry(b)?;
                labels.insert(key, json!(text(value)?));
                continue;
            }
            12 => {
                let (key, value) = map_entry(b)?;
                annotations.insert(key, json!(text(value)?));
                continue;
            }
            14 => {
                finalizers.push(json!(text(b)?));
                continue;
            }
            _ => continue,
        };
        let value = text(b)?;
        if !value.is_empty() {
            meta.insert(name.to_owned(), json!(value));
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".to_owned(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".to_owned(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".to_owned(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

/// A map entry message: key 1 (string), value 2 (bytes or string).
fn map_entry(raw: &[u8]) -> Result<(String, &[u8]), ApiError> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => key = text(b)?,
            (2, Wire::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Ok((key, value))
}

/// A field's payload by wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Self {
            rest: raw,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ApiError> {
        if self.rest.len() < len {
            return Err(bad("truncated field"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), ApiError> {
        let tag = self.varint()?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("field too long"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            other => return Err(bad(format!("unsupported wire type {other}"))),
        };
        Ok((tag >> 3, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), ApiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = u8::try_from(value & 0x7f).unwrap();
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, key.as_bytes(), &mut out);
        bytes_field(2, value, &mut out);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut out = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut out);
        bytes_field(2, raw, &mut out);
        bytes_field(4, CONTENT_TYPE.as_bytes(), &mut out);
        out
    }

    fn kind(plural: &str) -> ResourceKind {
        Registry::default()
            .lookup("", "v1", plural)
            .cloned()
            .unwrap()
    }

    #[test]
    fn decodes_a_secret() {
        let mut meta = Vec::new();
        bytes_field(1, b"creds", &mut meta);
        bytes_field(3, b"mail", &mut meta);
        bytes_field(11, &entry("app", b"web"), &mut meta);
        bytes_field(12, &entry("note", b"hi"), &mut meta);
        // creationTimestamp (a Time message) is ignored.
        bytes_field(8, &[8, 1], &mut meta);
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry("password", b"s3cret"), &mut secret);
        bytes_field(2, &entry("user", b"me"), &mut secret);
        bytes_field(3, b"Opaque", &mut secret);
        bytes_field(4, &entry("extra", b"plain"), &mut secret);
        secret.extend_from_slice(&[5 << 3, 1]);
        let body = envelope("v1", "Secret", &secret);
        let object = decode(&kind("secrets"), &body).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "creds",
                    "namespace": "mail",
                    "labels": {"app": "web"},
                    "annotations": {"note": "hi"}
                },
                "data": {"password": "czNjcmV0", "user": "bWU="},
                "stringData": {"extra": "plain"},
                "type": "Opaque",
                "immutable": true
            })
        );
    }

    #[test]
    fn decodes_config_maps_and_namespaces() {
        let mut meta = Vec::new();
        bytes_field(1, b"cfg", &mut meta);
        let mut config_map = Vec::new();
        bytes_field(1, &meta, &mut config_map);
        bytes_field(2, &entry("k", b"v"), &mut config_map);
        let object = decode(
            &kind("configmaps"),
            &envelope("v1", "ConfigMap", &config_map),
        )
        .unwrap();
        assert_eq!(object["data"], json!({"k": "v"}));
        assert_eq!(object["metadata"]["name"], "cfg");

        let mut namespace = Vec::new();
        bytes_field(1, &meta, &mut namespace);
        let object = decode(
            &kind("namespaces"),
            &envelope("v1", "Namespace", &namespace),
        )
        .unwrap();
        assert_eq!(object["kind"], "Namespace");
    }

    #[test]
    fn rejects_bad_bodies() {
        let secrets = kind("secrets");
        assert_eq!(decode(&secrets, b"{}").unwrap_err().code, 400);
        let mut truncated = envelope("v1", "Secret", b"");
        truncated.extend_from_slice(&[2 << 3 | 2, 50, 1]);
        assert_eq!(decode(&secrets, &truncated).unwrap_err().code, 400);
        let wrong = envelope("v1", "ConfigMap", b"");
        assert_eq!(decode(&secrets, &wrong).unwrap_err().code, 400);
        let leases = Registry::default()
            .lookup("coordination.k8s.io", "v1", "leases")
            .cloned()
            .unwrap();
        let lease = envelope("coordination.k8s.io/v1", "Lease", b"");
        assert_eq!(decode(&leases, &lease).unwrap_err().code, 415);
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=x"
        ));
        assert!(!is_protobuf("application/json"));
    }
}
