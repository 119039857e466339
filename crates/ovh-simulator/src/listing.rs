//! Batch and Iceberg reads (reference §10.1): `X-Ovh-Batch` on single-object GETs, and
//! `X-Pagination-Mode: CachedObjectList-Pages` on list routes (full objects, paged, filtered
//! and sorted by request headers).
use super::errors::ApiError;
use super::routes::percent_decode;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::cmp::Ordering;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `X-Ovh-Batch` separator, when the header is present and not empty.
pub fn batch_separator(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-ovh-batch")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub fn is_iceberg(headers: &HeaderMap) -> bool {
    header(headers, "x-pagination-mode")
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("CachedObjectList-Pages"))
}

/// SQL-like match: `%` is any run of characters; case-insensitive.
pub fn like(pattern: &str, text: &str) -> bool {
    // A literal `*` in a pattern also acts as a wildcard: rare enough to accept.
    super::auth::wildcard_match(
        &pattern.to_lowercase().replace('%', "*"),
        &text.to_lowercase(),
        true,
    )
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => as_text(a).cmp(&as_text(b)),
    }
}

/// Compares a field with a filter operand (numbers numerically when both are numbers).
fn compare_operand(field: &Value, operand: &str) -> Ordering {
    if let (Some(x), Ok(y)) = (field.as_f64(), operand.parse::<f64>()) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    as_text(field).cmp(&operand.to_owned())
}

struct Filter {
    field: String,
    op: String,
    value: String,
}

/// `field:op=value&field2:op=value` (values percent-encoded).
fn parse_filters(spec: &str) -> Result<Vec<Filter>, ApiError> {
    spec.split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (lhs, value) = part.split_once('=').unwrap_or((part, ""));
            let (field, op) = lhs.split_once(':').unwrap_or((lhs, "eq"));
            let op = op.to_ascii_lowercase();
            if !["eq", "ne", "lt", "gt", "like", "in"].contains(&op.as_str()) {
                return Err(ApiError::bad_request(&format!(
                    "Invalid filter operator: {op}"
                )));
            }
            Ok(Filter {
                field: percent_decode(field),
                op,
                value: percent_decode(value),
            })
        })
        .collect()
}

fn matches(object: &Value, filter: &Filter) -> bool {
    let field = object.get(&filter.field).unwrap_or(&Value::Null);
    match filter.op.as_str() {
        "eq" => compare_operand(field, &filter.value) == Ordering::Equal,
        "ne" => compare_operand(field, &filter.value) != Ordering::Equal,
        "lt" => compare_operand(field, &filter.value) == Ordering::Less,
        "gt" => compare_operand(field, &filter.value) == Ordering::Greater,
        "like" => like(&filter.value, &as_text(field)),
        "in" => filter
            .value
            .split(',')
            .any(|v| compare_operand(field, v) == Ordering::Equal),
        _ => false,
    }
}

fn number_header(headers: &HeaderMap, name: &str) -> Result<Option<usize>, ApiError> {
    match header(headers, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(&format!("Invalid value for header {name}"))),
    }
}

/// An Iceberg page of `objects`, with `X-Pagination-Elements` and `X-Pagination-Total`.
pub fn iceberg(mut objects: Vec<Value>, headers: &HeaderMap) -> Result<Response, ApiError> {
    if let Some(spec) = header(headers, "x-pagination-filter") {
        let filters = parse_filters(spec)?;
        objects.retain(|o| filters.iter().all(|f| matches(o, f)));
    }
    if let Some(field) = header(headers, "x-pagination-sort").filter(|s| !s.is_empty()) {
        let descending = header(headers, "x-pagination-sort-order")
            .is_some_and(|o| o.trim().eq_ignore_ascii_case("DESC"));
        objects.sort_by(|a, b| {
            let ord = compare(
                a.get(field).unwrap_or(&Value::Null),
                b.get(field).unwrap_or(&Value::Null),
            );
            if descending { ord.reverse() } else { ord }
        });
    }
    let total = objects.len();
    let size = number_header(headers, "x-pagination-size")?
        .filter(|s| *s > 0)
        .unwrap_or(total.max(1));
    let number = number_header(headers, "x-pagination-number")?
        .unwrap_or(1)
        .max(1);
    let pages = total.div_ceil(size).max(1);
    let page: Vec<Value> = objects
        .into_iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .collect();
    let mut response = axum::Json(Value::Array(page)).into_response();
    let h = response.headers_mut();
    h.insert("x-pagination-elements", HeaderValue::from(total));
    h.insert("x-pagination-total", HeaderValue::from(pages));
    h.insert("x-pagination-size", HeaderValue::from(size));
    h.insert("x-pagination-number", HeaderValue::from(number));
    h.insert(
        "x-pagination-mode",
        HeaderValue::from_static("CachedObjectList-Pages"),
    );
    Ok(response)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    async fn body(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn like_patterns() {
        assert!(like("%@mydomain.ovh", "a@mydomain.ovh"));
        assert!(like("news%", "Newsletter@x"));
        assert!(!like("news", "newsletter"));
    }

    #[tokio::test]
    async fn filters_sorts_pages() {
        let objects: Vec<Value> = (1..=5)
            .map(|i| json!({"id": i, "status": if i % 2 == 0 {"done"} else {"todo"}}))
            .collect();
        let r = iceberg(
            objects.clone(),
            &headers(&[
                ("x-pagination-filter", "status:in=todo,doing"),
                ("x-pagination-sort", "id"),
                ("x-pagination-sort-order", "DESC"),
                ("x-pagination-size", "2"),
                ("x-pagination-number", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(r.headers()["x-pagination-elements"], "3");
        assert_eq!(r.headers()["x-pagination-total"], "2");
        assert_eq!(body(r).await, json!([{"id": 1, "status": "todo"}]));
        let r = iceberg(
            objects,
            &headers(&[("x-pagination-filter", "id:gt=3&id:ne=5")]),
        )
        .unwrap();
        assert_eq!(body(r).await, json!([{"id": 4, "status": "done"}]));
    }
}
