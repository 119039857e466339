//! One error type for every OVH call, carrying what a person needs to act on it (HTTP status,
//! OVH `class`, `message`, `errorCode`, `X-Ovh-QueryID`) and what the code needs to decide
//! (retryable or terminal, a low-cardinality category).
use std::fmt;
use std::time::Duration;

/// The most of an OVH error text an [`ApiError`] keeps, in bytes: what log lines at info and
/// warn level, conditions and Events can carry. A longer text is logged whole at debug level
/// only, once, when it arrives.
pub const API_MESSAGE_LIMIT: usize = 2048;

/// An error answered by the OVH API itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub method: String,
    /// The route template, e.g. `/email/exchange/{organizationName}/service/{exchangeService}/sendConnector`:
    /// a label for metrics.
    pub route: String,
    /// The concrete path, e.g. `/email/exchange/org-1/service/org-1/sendConnector`: what
    /// messages show, so a person sees which organization, service and object failed.
    pub path: String,
    pub status: u16,
    pub class: Option<String>,
    pub message: String,
    pub error_code: Option<String>,
    pub query_id: Option<String>,
    /// `Retry-After`, when OVH sent one.
    pub retry_after: Option<Duration>,
}

/// How a request failed before OVH could answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    /// The connection closed before a whole answer arrived (a reset, or a lost response).
    Interrupted,
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connection failed",
            Self::Interrupted => "connection interrupted",
            Self::Other => "transport error",
        })
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum OvhError {
    #[error("{0}")]
    Api(Box<ApiError>),
    #[error("OVH did not answer {method} {}: {kind}: {message}", shown(path))]
    Transport {
        method: String,
        route: String,
        path: String,
        kind: TransportKind,
        message: String,
    },
    /// An answer that is not what the call returns (an HTML page, cut or mistyped JSON).
    #[error(
        "could not read OVH's answer to {method} {} (HTTP {status}): {message}; {}",
        shown(path),
        began(excerpt)
    )]
    Decode {
        method: String,
        route: String,
        path: String,
        status: u16,
        /// Why it could not be read, bounded.
        message: String,
        /// The start of the answer as one short line of text.
        excerpt: String,
    },
    /// An answer longer than [`super::client::MAX_ANSWER_BYTES`]: refused unread.
    #[error(
        "OVH answer larger than {} MiB on {method} {} (HTTP {status}): not read further",
        super::client::MAX_ANSWER_BYTES >> 20,
        shown(path)
    )]
    TooLarge {
        method: String,
        /// The route template (for metrics); `path` is the concrete one.
        route: String,
        path: String,
        status: u16,
    },
    /// A 3xx answer. OVH's API does not redirect, and following one would carry the
    /// signature, the token or a password to another place: never followed.
    #[error(
        "OVH answered {method} {} with a redirect (HTTP {status}){}, not followed: OVH does not redirect; check the endpoint",
        shown(path),
        location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default()
    )]
    Redirected {
        method: String,
        route: String,
        path: String,
        status: u16,
        /// Where it pointed: scheme, host and port only.
        location: Option<String>,
    },
    #[error(
        "could not get an OVH OAuth2 token ({}): {message}",
        status.map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"))
    )]
    Token {
        status: Option<u16>,
        message: String,
    },
    #[error("invalid OVH client setup: {0}")]
    Setup(String),
}

fn began(excerpt: &str) -> String {
    if excerpt.is_empty() {
        "the answer was empty".to_owned()
    } else {
        format!("the answer began: \"{excerpt}\"")
    }
}

/// A path as messages show it: whole, unless it is a batch read of many objects.
fn shown(path: &str) -> std::borrow::Cow<'_, str> {
    crate::text::truncate(path, 256)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query id comes before OVH's text: a message cut to fit keeps it.
        write!(f, "OVH API error (HTTP {}", self.status)?;
        if let Some(q) = &self.query_id {
            write!(f, ", X-Ovh-QueryID: {q}")?;
        }
        write!(f, ") on {} {}: ", self.method, shown(&self.path))?;
        if let Some(class) = &self.class {
            write!(f, "{class}: ")?;
        } else if let Some(code) = &self.error_code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{:?}", self.message)
    }
}

impl ApiError {
    /// OVH's answer for a stale clock or a bad signature: worth one re-read of `/auth/time`.
    /// A 403 `INVALID_KEY` is included because a stale time delta has been seen to produce it.
    pub fn is_clock_or_signature(&self) -> bool {
        let code = self.error_code.as_deref();
        (self.status == 400
            && (code == Some("INVALID_SIGNATURE")
                || self.message.eq_ignore_ascii_case("Invalid signature")))
            || (self.status == 403 && code == Some("INVALID_KEY"))
            || self.message.to_ascii_lowercase().contains("timestamp")
    }

    /// A 403/409 that says the object is busy with a task, not that access is denied.
    fn is_busy(&self) -> bool {
        if self.status == 409 {
            return true;
        }
        if self.status != 403 {
            return false;
        }
        if matches!(
            self.error_code.as_deref(),
            Some(
                "NOT_GRANTED_CALL"
                    | "NOT_CREDENTIAL"
                    | "INVALID_KEY"
                    | "INVALID_CREDENTIAL"
                    | "FORBIDDEN"
            )
        ) {
            return false;
        }
        let m = self.message.to_ascii_lowercase();
        [
            "already being processed",
            "pending",
            "in progress",
            "please try later",
            "task",
        ]
        .iter()
        .any(|w| m.contains(w))
    }
}

impl OvhError {
    /// Whether trying again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.status == 408 || e.status == 429 || e.status >= 500 || e.is_busy(),
            // A token endpoint that is down may come back; bad client credentials will not.
            Self::Token { status, .. } => status.is_none_or(|s| s == 429 || s >= 500),
            // A server fault; retried later, with the caller's backoff.
            Self::Transport { .. } | Self::TooLarge { .. } => true,
            Self::Decode { status, .. } => *status >= 500,
            Self::Redirected { .. } | Self::Setup(_) => false,
        }
    }

    /// A low-cardinality name for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api(e) => match e.status {
                429 => "throttled",
                408 => "timeout",
                s if s >= 500 => "server",
                _ if e.is_busy() => "busy",
                _ if e.is_clock_or_signature() => "signature",
                401 | 403 => "forbidden",
                404 => "not_found",
                _ => "rejected",
            },
            Self::Transport {
                kind: TransportKind::Timeout,
                ..
            } => "timeout",
            Self::Transport { .. } => "transport",
            Self::TooLarge { .. } => "too_large",
            Self::Redirected { .. } => "redirect",
            Self::Decode { .. } => "decode",
            Self::Token { .. } => "token",
            Self::Setup(_) => "setup",
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn query_id(&self) -> Option<&str> {
        self.api().and_then(|e| e.query_id.as_deref())
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>, message: &str) -> OvhError {
        OvhError::Api(Box::new(ApiError {
            method: "GET".into(),
            route: "/r".into(),
            path: "/r".into(),
            status,
            class: None,
            message: message.into(),
            error_code: code.map(Into::into),
            query_id: Some("EU.ext-1.abc".into()),
            retry_after: None,
        }))
    }

    #[test]
    fn classification() {
        assert!(api(429, None, "Too many requests").is_retryable());
        assert!(api(500, None, "Internal").is_retryable());
        assert!(api(503, None, "x").is_retryable());
        assert!(api(408, None, "<html>").is_retryable());
        assert!(
            api(
                409,
                None,
                "This account is already being processed, please try later"
            )
            .is_retryable()
        );
        assert!(api(403, None, "A task is pending on this object").is_retryable());
        assert!(
            !api(
                403,
                Some("NOT_GRANTED_CALL"),
                "This call has not been granted"
            )
            .is_retryable()
        );
        assert!(
            !api(
                403,
                Some("INVALID_CREDENTIAL"),
                "This credential is not valid"
            )
            .is_retryable()
        );
        assert!(
            !api(
                400,
                None,
                "Received not described parameters: (x) while calling y"
            )
            .is_retryable()
        );
        assert!(!api(404, None, "This service does not exist").is_retryable());
        assert_eq!(api(404, None, "x").category(), "not_found");
        assert_eq!(
            api(400, Some("INVALID_SIGNATURE"), "Invalid signature").category(),
            "signature"
        );
        let t = OvhError::Transport {
            method: "GET".into(),
            route: "/r".into(),
            path: "/r".into(),
            kind: TransportKind::Timeout,
            message: "t".into(),
        };
        assert!(t.is_retryable());
        assert_eq!(t.category(), "timeout");
    }

    #[test]
    fn display_names_status_class_message_and_query_id() {
        let e = OvhError::Api(Box::new(ApiError {
            method: "POST".into(),
            route: "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector"
                .into(),
            path: "/email/exchange/private-zz111111-1/service/private-zz111111-1/sendConnector"
                .into(),
            status: 403,
            class: Some("Client::Forbidden".into()),
            message: "This call has not been granted".into(),
            error_code: Some("NOT_GRANTED_CALL".into()),
            query_id: Some("EU.ext-3.697ab11c".into()),
            retry_after: None,
        }));
        let s = e.to_string();
        assert!(
            s.contains("HTTP 403")
                && s.contains(
                    "on POST /email/exchange/private-zz111111-1/service/private-zz111111-1/sendConnector:"
                )
                && !s.contains("{organizationName}")
                && s.contains("Client::Forbidden")
                && s.contains("not been granted")
                && s.contains("EU.ext-3.697ab11c"),
            "{s}"
        );
    }

    #[test]
    fn clock_errors_are_recognised() {
        assert!(
            api(400, Some("INVALID_SIGNATURE"), "Invalid signature")
                .api()
                .unwrap()
                .is_clock_or_signature()
        );
        assert!(
            api(400, None, "Invalid signature")
                .api()
                .unwrap()
                .is_clock_or_signature()
        );
        assert!(
            api(403, Some("INVALID_KEY"), "This application key is invalid")
                .api()
                .unwrap()
                .is_clock_or_signature()
        );
        assert!(
            !api(403, Some("NOT_GRANTED_CALL"), "x")
                .api()
                .unwrap()
                .is_clock_or_signature()
        );
    }
}
