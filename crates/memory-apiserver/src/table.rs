//! Server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), which is
//! how `kubectl get` shows a custom resource's `additionalPrinterColumns` and the usual columns
//! of the built-in kinds, and the small JSONPath evaluator those columns need.
//!
//! Cells follow the apiextensions table convertor: the first JSONPath result only, `null` when
//! there is none (kubectl prints `<none>`), integers and numbers as JSON numbers, dates humanised
//! as ages ("3m", "2d4h"). The built-in kinds' columns are upstream's printers
//! (`pkg/printers/internalversion`): some cells are computed ([`Computed`]), not read.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use serde_json::{Map, Value, json};

use super::resources::ResourceKind;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating \
    resources, although some resources may allow a client to request the generation of an \
    appropriate name automatically. Name is primarily intended for creation idempotence and \
    configuration definition. Cannot be updated. More info: \
    https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when \
    this object was created.";

/// One printer column: a header and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format, if any.
    pub format: String,
    /// Human-readable description.
    pub description: String,
    /// 0 shown always, higher only with `-o wide`.
    pub priority: i32,
    /// JSONPath into the object.
    pub json_path: String,
    /// A cell no JSONPath gives (a built-in kind's), computed instead of `json_path`.
    pub computed: Option<Computed>,
}

/// Cells of the built-in kinds' columns that upstream's printers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// How many keys `data` holds (a Secret's `DATA`).
    DataCount,
    /// How many keys `data` and `binaryData` hold (a ConfigMap's `DATA`).
    ConfigMapDataCount,
    /// A column of `kubectl get events`, from the Event in its `v1` form (an `events.k8s.io`
    /// Event is read as the `v1` API shows it).
    Event(EventColumn),
}

/// The columns of `kubectl get events` (upstream's `printEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventColumn {
    /// The age of the last occurrence: `series.lastObservedTime`, `lastTimestamp`, else the
    /// first one.
    LastSeen,
    Type,
    Reason,
    /// `kind/name` of the object the Event is about, the kind in lower case.
    Object,
    /// `involvedObject.fieldPath`.
    Subobject,
    /// The reporting component, and its instance after a comma.
    Source,
    /// The message, trimmed.
    Message,
    /// The age of the first occurrence: `firstTimestamp`, else `eventTime`.
    FirstSeen,
    /// `series.count`, else `count`, at least 1.
    Count,
    Name,
}

impl Computed {
    fn cell(self, object: &Value) -> Value {
        let keys = |field: &str| {
            object
                .get(field)
                .and_then(Value::as_object)
                .map_or(0, Map::len)
        };
        match self {
            Self::DataCount => Value::from(keys("data")),
            Self::ConfigMapDataCount => Value::from(keys("data") + keys("binaryData")),
            Self::Event(column) => {
                if object.get("apiVersion").and_then(Value::as_str) == Some("events.k8s.io/v1") {
                    column.cell(&super::events::to_core(object))
                } else {
                    column.cell(object)
                }
            }
        }
    }
}

impl EventColumn {
    fn cell(self, event: &Value) -> Value {
        let text = |path: &str| {
            event
                .pointer(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let age = |path: &str| {
            event
                .pointer(path)
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| human_age(jiff::Timestamp::now(), t))
        };
        let first_seen = || {
            age("/firstTimestamp")
                .or_else(|| age("/eventTime"))
                .unwrap_or_else(|| "<unknown>".to_owned())
        };
        let series = event.get("series").filter(|s| s.is_object());
        Value::String(match self {
            Self::LastSeen => match series {
                Some(_) => {
                    age("/series/lastObservedTime").unwrap_or_else(|| "<unknown>".to_owned())
                }
                None => age("/lastTimestamp").unwrap_or_else(first_seen),
            },
            Self::FirstSeen => first_seen(),
            Self::Type => text("/type"),
            Self::Reason => text("/reason"),
            Self::Object => {
                let kind = text("/involvedObject/kind").to_lowercase();
                match text("/involvedObject/name") {
                    name if name.is_empty() => kind,
                    name => format!("{kind}/{name}"),
                }
            }
            Self::Subobject => text("/involvedObject/fieldPath"),
            Self::Source => {
                let either = |a: String, b: String| if a.is_empty() { b } else { a };
                let component = either(text("/source/component"), text("/reportingComponent"));
                let instance = either(text("/source/host"), text("/reportingInstance"));
                match (component.is_empty(), instance.is_empty()) {
                    (true, _) => "<unknown>".to_owned(),
                    (false, true) => component,
                    (false, false) => format!("{component}, {instance}"),
                }
            }
            Self::Message => text("/message").trim().to_owned(),
            Self::Count => {
                let count = match series {
                    Some(s) => s.get("count").and_then(Value::as_i64),
                    None => event.get("count").and_then(Value::as_i64),
                };
                return Value::from(count.filter(|n| *n != 0).unwrap_or(1));
            }
            Self::Name => text("/metadata/name"),
        })
    }
}

impl PrinterColumn {
    fn from_crd(column: &CustomResourceColumnDefinition) -> Self {
        Self {
            name: column.name.clone(),
            type_: column.type_.clone(),
            format: column.format.clone().unwrap_or_default(),
            description: column.description.clone().unwrap_or_default(),
            priority: column.priority.unwrap_or_default(),
            json_path: column.json_path.clone(),
            computed: None,
        }
    }

    /// A string column read at `json_path`.
    pub fn string(name: &str, json_path: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            type_: "string".to_owned(),
            format: String::new(),
            description: description.to_owned(),
            priority: 0,
            json_path: json_path.to_owned(),
            computed: None,
        }
    }

    /// A column whose cells are computed.
    pub fn computed(name: &str, computed: Computed, description: &str) -> Self {
        Self {
            computed: Some(computed),
            ..Self::string(name, "", description)
        }
    }

    /// Shown only with `-o wide`.
    #[must_use]
    pub fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    /// The column every kind gets when it declares none: the object's age.
    pub fn age() -> Self {
        Self {
            name: "Age".to_owned(),
            type_: "date".to_owned(),
            format: String::new(),
            description: AGE_DESCRIPTION.to_owned(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".to_owned(),
            computed: None,
        }
    }

    /// The columns upstream's printers give the built-in kind `group`/`kind` (after `Name`,
    /// or, for Events, with `Name` last and wide only); `Age` alone for the others.
    pub fn for_builtin(group: &str, kind: &str) -> Vec<Self> {
        match (group, kind) {
            ("", "Namespace") => vec![
                Self::string("Status", ".status.phase", "The status of the namespace"),
                Self::age(),
            ],
            ("", "Secret") => vec![
                Self::string(
                    "Type",
                    ".type",
                    "Used to facilitate programmatic handling of secret data.",
                ),
                Self::computed("Data", Computed::DataCount, "The number of keys in data."),
                Self::age(),
            ],
            ("", "ConfigMap") => vec![
                Self::computed(
                    "Data",
                    Computed::ConfigMapDataCount,
                    "The number of keys in data and binaryData.",
                ),
                Self::age(),
            ],
            ("coordination.k8s.io", "Lease") => vec![
                Self::string(
                    "Holder",
                    ".spec.holderIdentity",
                    "holderIdentity contains the identity of the holder of a current lease.",
                ),
                Self::age(),
            ],
            ("" | "events.k8s.io", "Event") => {
                let event = |name: &str, column: EventColumn, description: &str| {
                    Self::computed(name, Computed::Event(column), description)
                };
                let name = Self {
                    format: "name".to_owned(),
                    ..event("Name", EventColumn::Name, NAME_DESCRIPTION).wide()
                };
                vec![
                    event(
                        "Last Seen",
                        EventColumn::LastSeen,
                        "The time at which the most recent occurrence of this event was recorded.",
                    ),
                    event(
                        "Type",
                        EventColumn::Type,
                        "Type of this event (Normal, Warning).",
                    ),
                    event(
                        "Reason",
                        EventColumn::Reason,
                        "A short, machine understandable string that gives the reason for the transition into the object's current status.",
                    ),
                    event(
                        "Object",
                        EventColumn::Object,
                        "The object that this event is about.",
                    ),
                    event(
                        "Subobject",
                        EventColumn::Subobject,
                        "The field of the object the event is about.",
                    )
                    .wide(),
                    event(
                        "Source",
                        EventColumn::Source,
                        "The component reporting this event.",
                    )
                    .wide(),
                    event(
                        "Message",
                        EventColumn::Message,
                        "A human-readable description of the status of this operation.",
                    ),
                    event(
                        "First Seen",
                        EventColumn::FirstSeen,
                        "The time at which the event was first recorded.",
                    )
                    .wide(),
                    event(
                        "Count",
                        EventColumn::Count,
                        "The number of times this event has occurred.",
                    )
                    .wide(),
                    name,
                ]
            }
            _ => vec![Self::age()],
        }
    }

    /// The columns of one CRD version: its `additionalPrinterColumns`, or `Age` when it has
    /// none (as upstream).
    pub fn for_crd_version(columns: Option<&[CustomResourceColumnDefinition]>) -> Vec<Self> {
        match columns {
            Some(columns) if !columns.is_empty() => columns.iter().map(Self::from_crd).collect(),
            _ => vec![Self::age()],
        }
    }

    /// The cell of this column for `object`, as the Table carries it.
    fn cell(&self, object: &Value) -> Value {
        if let Some(computed) = self.computed {
            return computed.cell(object);
        }
        let Some(value) = evaluate(&self.json_path, object).into_iter().next() else {
            return Value::Null;
        };
        match (self.type_.as_str(), value) {
            (_, Value::Null) => Value::Null,
            ("date", Value::String(text)) => Value::String(
                text.parse::<jiff::Timestamp>()
                    .map_or_else(|_| text.clone(), |t| human_age(jiff::Timestamp::now(), t)),
            ),
            ("integer", Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    // Truncation is what upstream does for integer columns holding floats.
                    #[allow(clippy::cast_possible_truncation)]
                    n.as_f64().map(|f| f as i64)
                })
                .map_or(Value::Null, Value::from),
            ("integer" | "number" | "boolean", other) => other.clone(),
            (_, Value::String(text)) => Value::String(text.clone()),
            (_, other) => Value::String(other.to_string()),
        }
    }
}

/// The printer column values of `object` as `kubectl get -o wide` shows them, in the CRD's
/// order (the `Name` column excluded): the `additionalPrinterColumns` of the object's version
/// (or of the first served version), or only `Age` when there are none. A missing value is
/// empty (kubectl prints an empty cell); dates are ages such as `3m`.
pub fn printer_cells(crd: &CustomResourceDefinition, object: &Value) -> Vec<(String, String)> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let versions = &crd.spec.versions;
    let version = versions
        .iter()
        .find(|v| format!("{}/{}", crd.spec.group, v.name) == api_version)
        .or_else(|| versions.iter().find(|v| v.served))
        .or_else(|| versions.first());
    let columns = PrinterColumn::for_crd_version(
        version.and_then(|v| v.additional_printer_columns.as_deref()),
    );
    columns
        .iter()
        .map(|column| (column.name.clone(), cell_text(&column.cell(object))))
        .collect()
}

fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether the client asked for a `meta.k8s.io/v1` Table.
pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && params.contains(&"v=v1")
        })
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The Table of `objects` (already presented with `apiVersion` and `kind`).
pub(crate) fn table(
    kind: &ResourceKind,
    objects: &[Value],
    metadata: &Value,
    include: IncludeObject,
) -> Value {
    let columns = &kind.printer_columns;
    // A kind whose columns hold the name (Events: last, wide only) gets no leading Name.
    let leading_name = !columns
        .iter()
        .any(|c| c.computed.is_some() && c.format == "name");
    let mut definitions = Vec::new();
    if leading_name {
        definitions.push(json!({
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": NAME_DESCRIPTION,
            "priority": 0,
        }));
    }
    definitions.extend(columns.iter().map(|c| {
        json!({
            "name": c.name,
            "type": c.type_,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        })
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = Vec::new();
            if leading_name {
                cells.push(
                    object
                        .pointer("/metadata/name")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
            cells.extend(columns.iter().map(|c| c.cell(object)));
            let mut row = json!({ "cells": cells });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "apiVersion": "meta.k8s.io/v1",
                        "kind": "PartialObjectMetadata",
                        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
                IncludeObject::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "Table",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// `duration.HumanDuration` of k8s.io/apimachinery: the age kubectl shows.
pub fn human_age(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let seconds = now.as_second() - then.as_second();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let d = days % 365;
        return if d == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{d}d")
        };
    }
    format!("{years}y")
}

/// One step of a parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[3]` (negative counts from the end).
    Index(i64),
    /// `[*]` or `.*`.
    Wildcard,
    /// `[?(@.a.b=="x")]`, `[?(@.a!=1)]`, or `[?(@.a)]` (the field exists).
    Filter {
        path: Vec<String>,
        test: Option<(bool, Value)>,
    },
}

/// Every value `path` selects in `object`, in document order; empty when the path is invalid or
/// selects nothing. Supports the forms printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a['b.c']`, `.a[?(@.type=="Ready")].status` (also `!=`, single quotes, numbers and
/// booleans), optionally wrapped in `{}` and starting with `$`.
pub fn evaluate<'a>(path: &str, object: &'a Value) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![object];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            apply_step(step, value, &mut next);
        }
        current = next;
    }
    current
}

fn apply_step<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Step::Index(index), Value::Array(items)) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let index = if *index < 0 { len + index } else { *index };
            if let Ok(i) = usize::try_from(index) {
                out.extend(items.get(i));
            }
        }
        (Step::Wildcard, Value::Array(items)) => out.extend(items.iter()),
        (Step::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Step::Filter { path, test }, Value::Array(items)) => {
            out.extend(items.iter().filter(|item| {
                let found = path
                    .iter()
                    .try_fold(*item, |v, key| v.as_object().and_then(|m| m.get(key)));
                match (found, test) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(found), Some((equal, wanted))) => literal_eq(found, wanted) == *equal,
                }
            }));
        }
        _ => {}
    }
}

fn literal_eq(found: &Value, wanted: &Value) -> bool {
    match (found, wanted) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => found == wanted,
    }
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                match name.as_str() {
                    "" => {}
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                let end = closing_bracket(&chars, i)?;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = end + 1;
            }
            _ => {
                // A path without a leading dot (`metadata.name`).
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

/// The `]` closing the `[` at `open`, skipping quoted text.
fn closing_bracket(chars: &[char], open: usize) -> Option<usize> {
    let mut quote = None;
    for (offset, &c) in chars[open + 1..].iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Some(open + 1 + offset),
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name));
    }
    if let Ok(index) = inner.parse::<i64>() {
        return Some(Step::Index(index));
    }
    let filter = inner.strip_prefix('?')?.trim();
    let filter = filter.strip_prefix('(')?.strip_suffix(')')?.trim();
    let (lhs, test) = if let Some((lhs, rhs)) = filter.split_once("==") {
        (lhs, Some((true, parse_literal(rhs.trim())?)))
    } else if let Some((lhs, rhs)) = filter.split_once("!=") {
        (lhs, Some((false, parse_literal(rhs.trim())?)))
    } else {
        (filter, None)
    };
    let lhs = lhs.trim().strip_prefix('@')?;
    let path: Vec<String> = lhs
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Some(Step::Filter { path, test })
}

fn unquote(text: &str) -> Option<String> {
    ['"', '\''].into_iter().find_map(|q| {
        text.strip_prefix(q)
            .and_then(|t| t.strip_suffix(q))
            .map(str::to_owned)
    })
}

fn parse_literal(text: &str) -> Option<Value> {
    if let Some(text) = unquote(text) {
        return Some(Value::String(text));
    }
    match text {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .map(Value::Number),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn object() -> Value {
        json!({
            "apiVersion": "example.com/v1",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"smartHost": "relay.example.com", "port": 587, "hosts": ["a", "b", "c"]},
            "status": {
                "conditions": [
                    {"type": "Synced", "status": "False", "reason": "Pending"},
                    {"type": "Ready", "status": "True", "reason": "Configured", "count": 2}
                ],
                "connectorId": 42,
                "ratio": 1.5,
                "enabled": true
            }
        })
    }

    fn first(path: &str) -> Option<Value> {
        evaluate(path, &object()).first().map(|v| (*v).clone())
    }

    #[test]
    fn dotted_paths_and_indices() {
        assert_eq!(first(".spec.smartHost"), Some(json!("relay.example.com")));
        assert_eq!(first("{.spec.port}"), Some(json!(587)));
        assert_eq!(first("$.spec.hosts[1]"), Some(json!("b")));
        assert_eq!(first(".spec.hosts[-1]"), Some(json!("c")));
        assert_eq!(first(".spec.hosts[7]"), None);
        assert_eq!(first("metadata.name"), Some(json!("x")));
        assert_eq!(
            first(".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("web"))
        );
        assert_eq!(first(".spec.missing.deeper"), None);
        assert_eq!(first(".spec.smartHost.deeper"), None);
        assert_eq!(evaluate(".spec.hosts[*]", &object()).len(), 3);
        assert_eq!(
            evaluate(".status.conditions[*].type", &object()),
            vec![&json!("Synced"), &json!("Ready")]
        );
    }

    #[test]
    fn filters() {
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type == 'Synced')].reason"),
            Some(json!("Pending"))
        );
        assert_eq!(
            first(r#".status.conditions[?(@.type!="Ready")].type"#),
            Some(json!("Synced"))
        );
        assert_eq!(
            first(".status.conditions[?(@.count==2)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            first(".status.conditions[?(@.count)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Gone")].status"#),
            None
        );
        assert!(evaluate(".status.conditions[?(@.type==", &object()).is_empty());
    }

    #[test]
    fn ages_like_kubectl() {
        let now: jiff::Timestamp = "2024-01-10T00:00:00Z".parse().unwrap();
        let age = |seconds: i64| human_age(now, now - jiff::SignedDuration::from_secs(seconds));
        assert_eq!(age(0), "0s");
        assert_eq!(age(-5), "<invalid>");
        assert_eq!(age(59), "59s");
        assert_eq!(age(119), "119s");
        assert_eq!(age(180), "3m");
        assert_eq!(age(190), "3m10s");
        assert_eq!(age(45 * 60), "45m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(age(10 * 3600), "10h");
        assert_eq!(age(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(age(30 * 86400), "30d");
        assert_eq!(age(3 * 365 * 86400 + 10 * 86400), "3y10d");
        assert_eq!(age(9 * 365 * 86400), "9y");
    }

    #[test]
    fn cells_by_column_type() {
        let column = |type_: &str, path: &str| PrinterColumn {
            name: "C".to_owned(),
            type_: type_.to_owned(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.to_owned(),
            computed: None,
        };
        let o = object();
        assert_eq!(column("integer", ".status.connectorId").cell(&o), json!(42));
        assert_eq!(column("integer", ".status.ratio").cell(&o), json!(1));
        assert_eq!(column("number", ".status.ratio").cell(&o), json!(1.5));
        assert_eq!(column("boolean", ".status.enabled").cell(&o), json!(true));
        assert_eq!(column("string", ".status.enabled").cell(&o), json!("true"));
        assert_eq!(column("string", ".spec.port").cell(&o), json!("587"));
        assert_eq!(column("string", ".status.missing").cell(&o), Value::Null);
        assert_eq!(
            column("string", ".spec.hosts").cell(&o),
            json!(r#"["a","b","c"]"#)
        );
        let created = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(200)).to_string();
        let with_date = json!({"metadata": {"creationTimestamp": created}});
        assert_eq!(
            column("date", ".metadata.creationTimestamp").cell(&with_date),
            json!("3m20s")
        );
    }

    #[test]
    fn printer_cells_of_a_crd() {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "things.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Thing", "plural": "things"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "ID", "type": "integer", "jsonPath": ".status.connectorId"},
                        {"name": "Host", "type": "string", "jsonPath": ".spec.smartHost", "priority": 1},
                        {"name": "Task", "type": "string", "jsonPath": ".status.pendingTask.function"}
                    ]
                }]
            }
        }))
        .unwrap();
        let cells = printer_cells(&crd, &object());
        let expected: Vec<(String, String)> = [
            ("Ready", "True"),
            ("ID", "42"),
            ("Host", "relay.example.com"),
            ("Task", ""),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(cells, expected);

        let mut bare = crd;
        bare.spec.versions[0].additional_printer_columns = None;
        let cells = printer_cells(&bare, &json!({"metadata": {}}));
        assert_eq!(cells, vec![("Age".to_owned(), String::new())]);
    }

    fn cells(group: &str, kind: &str, object: &Value) -> Vec<(String, Value)> {
        PrinterColumn::for_builtin(group, kind)
            .iter()
            .map(|c| (c.name.clone(), c.cell(object)))
            .collect()
    }

    fn cell(group: &str, kind: &str, object: &Value, column: &str) -> Value {
        cells(group, kind, object)
            .into_iter()
            .find(|(name, _)| name == column)
            .map(|(_, v)| v)
            .unwrap()
    }

    #[test]
    fn built_in_kinds_have_upstreams_columns() {
        let names = |group: &str, kind: &str| -> Vec<String> {
            PrinterColumn::for_builtin(group, kind)
                .into_iter()
                .filter(|c| c.priority == 0)
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(names("", "Namespace"), ["Status", "Age"]);
        assert_eq!(names("", "Secret"), ["Type", "Data", "Age"]);
        assert_eq!(names("", "ConfigMap"), ["Data", "Age"]);
        assert_eq!(names("coordination.k8s.io", "Lease"), ["Holder", "Age"]);
        assert_eq!(
            names("events.k8s.io", "Event"),
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
        assert_eq!(
            names("apiextensions.k8s.io", "CustomResourceDefinition"),
            ["Age"]
        );

        let secret = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cell("", "Secret", &secret, "Type"),
            json!("kubernetes.io/tls")
        );
        assert_eq!(cell("", "Secret", &secret, "Data"), json!(2));
        assert_eq!(cell("", "Secret", &json!({}), "Data"), json!(0));
        let config_map = json!({"data": {"a": "1"}, "binaryData": {"b": "AA=="}});
        assert_eq!(cell("", "ConfigMap", &config_map, "Data"), json!(2));
        assert_eq!(
            cell(
                "",
                "Namespace",
                &json!({"status": {"phase": "Terminating"}}),
                "Status"
            ),
            json!("Terminating")
        );
    }

    #[test]
    fn event_cells_like_kubectl() {
        // Ages at minute or hour precision, so that a second passing changes nothing.
        let ago = |seconds: i64| {
            (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds)).to_string()
        };
        let core = json!({
            "apiVersion": "v1",
            "metadata": {"name": "relay.1"},
            "involvedObject": {"kind": "SendConnector", "name": "relay", "fieldPath": "spec.port"},
            "type": "Normal",
            "reason": "Updated",
            "message": "  port 587  ",
            "source": {"component": "sendconnector-operator"},
            "firstTimestamp": ago(600),
            "count": 0,
        });
        let e = |column: &str| cell("", "Event", &core, column);
        assert_eq!(e("Object"), json!("sendconnector/relay"));
        assert_eq!(e("Subobject"), json!("spec.port"));
        assert_eq!(e("Message"), json!("port 587"));
        assert_eq!(e("Source"), json!("sendconnector-operator"));
        assert_eq!(e("First Seen"), json!("10m"));
        // No lastTimestamp: the first; a count of 0 is one occurrence.
        assert_eq!(e("Last Seen"), json!("10m"));
        assert_eq!(e("Count"), json!(1));
        assert_eq!(e("Name"), json!("relay.1"));

        let mut series = core.clone();
        series["series"] = json!({"count": 4, "lastObservedTime": ago(3 * 3600)});
        assert_eq!(cell("", "Event", &series, "Last Seen"), json!("3h"));
        assert_eq!(cell("", "Event", &series, "Count"), json!(4));
        let bare = json!({"involvedObject": {"kind": "Node"}});
        assert_eq!(cell("", "Event", &bare, "Object"), json!("node"));
        assert_eq!(cell("", "Event", &bare, "Source"), json!("<unknown>"));
        assert_eq!(cell("", "Event", &bare, "Last Seen"), json!("<unknown>"));

        // An events.k8s.io Event is read as the v1 API shows it.
        let new = json!({
            "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "relay.2"},
            "regarding": {"kind": "MailboxBinding", "name": "team"},
            "type": "Warning",
            "reason": "Throttled",
            "note": "slow down",
            "eventTime": ago(1200),
            "reportingController": "sendconnector-operator",
            "reportingInstance": "pod-1",
        });
        let e = |column: &str| cell("events.k8s.io", "Event", &new, column);
        assert_eq!(e("Object"), json!("mailboxbinding/team"));
        assert_eq!(e("Message"), json!("slow down"));
        assert_eq!(e("Source"), json!("sendconnector-operator, pod-1"));
        assert_eq!(e("Last Seen"), json!("20m"));
        assert_eq!(e("Count"), json!(1));
    }

    #[test]
    fn table_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wants_table(&headers));
        headers.insert(ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_table(&headers));
    }
}
