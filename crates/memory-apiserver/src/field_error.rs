//! Field errors in the shape of apimachinery's `field.Error`: a path, a type, the bad value
//! and a detail, rendered exactly as the real API server renders them in `Status` messages and
//! `details.causes`.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// The kinds of field error the validation of custom resources produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueTypeInvalid`: also rendered "Invalid value".
    TypeInvalid,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `FieldValueTooLong`: "Too long".
    TooLong,
    /// `FieldValueTooMany`: "Too many".
    TooMany,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
}

impl ErrorType {
    /// `StatusCause.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
        }
    }

    /// Errors after which upstream does not run CEL rules: the object is too broken for them.
    pub fn blocks_cel(self) -> bool {
        matches!(
            self,
            Self::NotSupported | Self::Required | Self::TooLong | Self::TooMany | Self::TypeInvalid
        )
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The error's type.
    pub kind: ErrorType,
    /// `spec.port`, `spec.mailboxes[0]`, or `<nil>` for errors about no field.
    pub field: String,
    /// The bad value as upstream shows it; `None` where upstream omits it.
    pub value: Option<Value>,
    /// What is wrong, after the value.
    pub detail: String,
}

impl FieldError {
    /// An error of `kind` at `field`.
    pub fn new(
        kind: ErrorType,
        field: &str,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.to_owned(),
            value,
            detail: detail.into(),
        }
    }

    /// The note upstream appends when blocking errors kept CEL rules from running.
    pub fn rules_not_checked() -> Self {
        Self::new(
            ErrorType::Invalid,
            "<nil>",
            Some(Value::Null),
            "some validation rules were not checked because the object was invalid; correct \
             the existing errors to complete validation",
        )
    }

    /// `field.Error.ErrorBody()`: the cause message, without the field.
    pub fn body(&self) -> String {
        let mut out = self.kind.label().to_owned();
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if shows_value && let Some(value) = &self.value {
            out.push_str(": ");
            out.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }

    /// `StatusCause` JSON.
    pub fn cause(&self) -> Value {
        json!({"reason": self.kind.reason(), "message": self.body(), "field": self.field})
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A bad value as Go prints it: strings quoted as `%q`, numbers and booleans bare, the rest
/// as JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_owned(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        other => other.to_string(),
    }
}

/// Go's `strconv.Quote`: printable characters as they are, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint` for what manifests carry: no control or format characters,
/// no separators other than the ASCII space.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e
            | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f
            | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff))
}

/// `Kind.group "name" is invalid: ...` with the errors joined as upstream's aggregate does.
pub fn invalid_message(qualified_kind: &str, name: &str, errors: &[FieldError]) -> String {
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let mut unique: Vec<String> = Vec::new();
    for error in rendered {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    let joined = if unique.len() == 1 {
        unique.remove(0)
    } else {
        format!("[{}]", unique.join(", "))
    };
    format!("{qualified_kind} {} is invalid: {joined}", go_quote(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_like_upstream() {
        let max = FieldError::new(
            ErrorType::Invalid,
            "spec.port",
            Some(json!(70000)),
            "spec.port in body should be less than or equal to 65535",
        );
        assert_eq!(
            max.to_string(),
            "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535"
        );
        let long = FieldError::new(
            ErrorType::TooLong,
            "spec.user",
            Some(json!("x")),
            "may not be more than 256 bytes",
        );
        assert_eq!(long.body(), "Too long: may not be more than 256 bytes");
        let required = FieldError::new(ErrorType::Required, "spec.smartHost", None, "");
        assert_eq!(required.body(), "Required value");
        assert_eq!(go_quote("a\u{7}b\u{0}\u{200b}é"), "\"a\\ab\\x00\\u200bé\"");
        assert_eq!(
            invalid_message(
                "SendConnector.sendconnector.io",
                "x",
                &[required.clone(), required]
            ),
            "SendConnector.sendconnector.io \"x\" is invalid: spec.smartHost: Required value"
        );
    }
}
