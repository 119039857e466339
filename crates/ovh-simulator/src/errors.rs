//! OVH error responses: an HTTP status and a JSON body, in the shapes the real API sends.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer of the simulated API.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    fn class(status: StatusCode, class: &str, message: &str) -> Self {
        Self::new(status, json!({"class": class, "message": message}))
    }

    pub fn bad_request(message: &str) -> Self {
        Self::class(StatusCode::BAD_REQUEST, "Client::BadRequest", message)
    }

    pub fn forbidden(message: &str) -> Self {
        Self::class(StatusCode::FORBIDDEN, "Client::Forbidden", message)
    }

    pub fn service_not_found() -> Self {
        Self::class(
            StatusCode::NOT_FOUND,
            "Client::NotFound",
            "This service does not exist",
        )
    }

    /// `The requested object (key = value) does not exist`.
    pub fn object_not_found(key: &str, value: &str) -> Self {
        Self::class(
            StatusCode::NOT_FOUND,
            "Client::NotFound",
            &object_not_found_message(key, value),
        )
    }

    pub fn invalid_url() -> Self {
        Self::class(
            StatusCode::NOT_FOUND,
            "Client::NotFound",
            "Got an invalid (or empty) URL",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::class(
            StatusCode::METHOD_NOT_ALLOWED,
            "Client::MethodNotAllowed",
            "Method not allowed",
        )
    }

    pub fn conflict(message: &str) -> Self {
        Self::class(
            StatusCode::CONFLICT,
            "Client::Conflict::ActionInProgress",
            message,
        )
    }

    pub fn not_described(keys: &[String], operation: &str) -> Self {
        Self::bad_request(&format!(
            "Received not described parameters: ({}) while calling {operation}",
            keys.join(", ")
        ))
    }

    pub fn unexpected_body() -> Self {
        Self::bad_request("You provided an input body while none was expected")
    }

    /// Authentication-layer errors carry `errorCode` and `httpCode` besides `class`.
    fn auth(status: StatusCode, code: &str, class: &str, message: &str) -> Self {
        let http_code = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        Self::new(
            status,
            json!({"errorCode": code, "httpCode": http_code, "message": message, "class": class}),
        )
    }

    pub fn login_first() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            json!({"message": "You must login first"}),
        )
    }

    pub fn invalid_key() -> Self {
        Self::auth(
            StatusCode::FORBIDDEN,
            "INVALID_KEY",
            "Client::Forbidden",
            "This application key is invalid",
        )
    }

    pub fn invalid_signature() -> Self {
        Self::auth(
            StatusCode::BAD_REQUEST,
            "INVALID_SIGNATURE",
            "Client::BadRequest",
            "Invalid signature",
        )
    }

    pub fn invalid_credential() -> Self {
        Self::auth(
            StatusCode::FORBIDDEN,
            "INVALID_CREDENTIAL",
            "Client::Forbidden",
            "This credential is not valid",
        )
    }

    pub fn not_granted() -> Self {
        Self::auth(
            StatusCode::FORBIDDEN,
            "NOT_GRANTED_CALL",
            "Client::Forbidden",
            "This call has not been granted",
        )
    }

    /// A bearer token whose service account lacks the IAM action.
    pub fn iam_not_granted(action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            json!({
                "class": "Client::Forbidden",
                "message": "User not granted for this request",
                "details": {"unauthorizedActionsByAuthentication": "", "unauthorizedActionsByIAM": action},
            }),
        )
    }

    /// An unknown or expired bearer token.
    pub fn invalid_token() -> Self {
        Self::class(
            StatusCode::UNAUTHORIZED,
            "Client::Unauthorized",
            "Invalid or expired access token",
        )
    }

    pub fn internal() -> Self {
        Self::class(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Server::InternalServerError",
            "Internal server error",
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::class(
            StatusCode::TOO_MANY_REQUESTS,
            "Client::TooManyRequests",
            "Too many requests",
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// The OAuth2 token endpoint's error format.
    pub fn oauth2(status: StatusCode, error: &str, description: &str) -> Self {
        Self::new(
            status,
            json!({"error": error, "error_description": description}),
        )
    }

    pub fn message(&self) -> &str {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

pub fn object_not_found_message(key: &str, value: &str) -> String {
    format!("The requested object ({key} = {value}) does not exist")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The HTML page OVH's front end answers when it gives up on a request.
pub const HTML_408: &str = "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n";

/// An error text of exactly `bytes` bytes (ASCII), for answers larger than any real one.
pub fn long_message(bytes: usize) -> String {
    const HEAD: &str = "Invalid parameter: ";
    let mut message: String = HEAD.chars().take(bytes).collect();
    message.extend(std::iter::repeat_n(
        'x',
        bytes.saturating_sub(message.len()),
    ));
    message
}

pub fn html_408() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONTENT_TYPE, "text/html")],
        HTML_408,
    )
        .into_response()
}
