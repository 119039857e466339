//! `Status` bodies: the one shape Kubernetes uses for every failure (and for some successes).
//!
//! Clients such as kube-rs and kubectl decode error responses as `meta/v1 Status` and branch on
//! `code` and `reason`, so every error this server produces goes through [`ApiError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::field_error::{FieldError, invalid_message};
use super::resources::ResourceKind;

/// A failed API call, rendered as a `Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code, also copied into `Status.code`.
    pub code: u16,
    /// Machine-readable `Status.reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable `Status.message`.
    pub message: String,
    /// `Status.details`, when the error is about one named object.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// Names the object the error is about in `Status.details`.
    #[must_use]
    pub fn with_name(mut self, kind: &ResourceKind, name: &str) -> Self {
        let mut details = json!({ "name": name, "kind": kind.plural });
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        self.details = Some(details);
        self
    }

    /// 404 for a named object that is not stored.
    pub fn not_found(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
        .with_name(kind, name)
    }

    /// 404 for a path that names no known resource.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 for a create of a name that is taken.
    pub fn already_exists(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
        )
        .with_name(kind, name)
    }

    /// 409 for a write whose `resourceVersion` (or uid) precondition is stale.
    pub fn conflict(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.qualified()
            ),
        )
        .with_name(kind, name)
    }

    /// 403 for a create inside a namespace that is being deleted.
    pub fn namespace_terminating(kind: &ResourceKind, name: &str, namespace: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace \
                 {namespace} because it is being terminated",
                kind.qualified()
            ),
        )
        .with_name(kind, name)
    }

    /// 422 for a semantically invalid object or patch.
    pub fn invalid(kind: &ResourceKind, name: &str, message: impl Into<String>) -> Self {
        Self::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {}",
                kind.qualified(),
                message.into()
            ),
        )
        .with_name(kind, name)
    }

    /// 422 for a custom resource its schema or rules refuse: the message and `causes` of
    /// upstream's `NewInvalid`, with the kind spelled `Kind.group`.
    pub fn invalid_fields(kind: &ResourceKind, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if kind.group.is_empty() {
            kind.kind.clone()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        let mut details = json!({
            "name": name,
            "kind": kind.kind,
            "causes": errors.iter().map(FieldError::cause).collect::<Vec<_>>(),
        });
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        Self {
            code: 422,
            reason: "Invalid",
            message: invalid_message(&qualified, name, errors),
            details: Some(details),
        }
    }

    /// 422 for a merge or JSON patch whose result strict field validation refuses: upstream
    /// decodes the patched object strictly, names the field `patch` and quotes the whole
    /// object, keys sorted, with no kind or name.
    pub fn strict_patch(patched: &Value, unknown: &[String]) -> Self {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        let object = serde_json::to_string(patched).unwrap_or_default();
        let cause = format!(
            "Invalid value: {}: strict decoding error: {}",
            serde_json::to_string(&object).unwrap_or_default(),
            fields.join(", ")
        );
        Self {
            code: 422,
            reason: "Invalid",
            message: format!(" \"\" is invalid: patch: {cause}"),
            details: Some(json!({"causes": [{
                "reason": "FieldValueInvalid",
                "message": cause,
                "field": "patch",
            }]})),
        }
    }

    /// 500 for an apply patch naming fields its schema does not declare: upstream cannot build
    /// the typed patch, whatever `fieldValidation` says. `fields` are dotted paths.
    pub fn undeclared_apply_fields(
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        fields: &[String],
    ) -> Self {
        let errors: Vec<String> = fields
            .iter()
            .map(|f| format!(".{f}: field not declared in schema"))
            .collect();
        let listed = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        Self {
            code: 500,
            reason: "",
            message: format!(
                "failed to create typed patch object ({namespace}/{name}; {}, Kind={}): {listed}",
                kind.api_version(),
                kind.kind
            ),
            details: None,
        }
    }

    /// 400 for a request that cannot be decoded or violates strict field validation.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 415 for a patch type the resource does not support.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    /// 405 for a verb the path does not serve.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    /// 410 for a watch (or continue token) older than the retained history.
    pub fn gone(resource_version: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {resource_version} ({oldest})"),
        )
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            // Upstream omits an unknown reason (internal errors).
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}

/// The `Status` a delete answers with when the object is gone at once.
pub fn success(kind: &ResourceKind, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({ "name": name, "kind": kind.plural });
    if !kind.group.is_empty() {
        details["group"] = json!(kind.group);
    }
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
