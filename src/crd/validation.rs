//! The CRDs' rules, checked by the operator too. A cluster enforces them at apply time, but
//! not on objects stored before a rule existed, nor where a CRD was installed without them;
//! the operator must never send OVH what the schema forbids. The limits and patterns are the
//! constants the schema is generated from, and `tests/crd.rs` holds both verdicts equal over
//! the bad-input corpus (`tests/bad-input/`).
use super::mailbox_binding::MailboxBindingSpec;
use super::send_connector::SendConnectorSpec;
use super::{DOMAIN_PATTERN, EMAIL_PATTERN, HOSTNAME_PATTERN, OVH_NAME_PATTERN, PRINTABLE_PATTERN};
use crate::ovh::model::AuthMechanism;
use regex::Regex;
use std::sync::LazyLock;

/// A spec field that breaks a rule of the CRD.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    /// The field's path, e.g. `spec.authentication.user`.
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        problem: problem.into(),
    }
}

fn pattern(p: &str) -> Regex {
    // The patterns are constants of this crate, compiled once; a test compiles each.
    Regex::new(p).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
}

static OVH_NAME: LazyLock<Regex> = LazyLock::new(|| pattern(OVH_NAME_PATTERN));
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| pattern(HOSTNAME_PATTERN));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| pattern(DOMAIN_PATTERN));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| pattern(EMAIL_PATTERN));
static PRINTABLE: LazyLock<Regex> = LazyLock::new(|| pattern(PRINTABLE_PATTERN));

/// A string field: its length in characters (as the API server counts) and its pattern.
fn text(
    field: &str,
    value: &str,
    (min, max): (usize, usize),
    pattern: Option<(&Regex, &str)>,
) -> Result<(), InvalidField> {
    let len = value.chars().count();
    if len < min {
        return Err(invalid(field, format!("must be at least {min} characters")));
    }
    if len > max {
        return Err(invalid(
            field,
            format!("must be at most {max} characters (it has {len})"),
        ));
    }
    if let Some((re, what)) = pattern {
        if !re.is_match(value) {
            return Err(invalid(field, format!("must be {what}")));
        }
    }
    Ok(())
}

fn range(field: &str, value: i32, min: i32, max: i32) -> Result<(), InvalidField> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between {min} and {max} (it is {value})"),
        ))
    }
}

const REF_NAME: (usize, usize) = (1, 253);

/// Checks a SendConnector spec against the CRD's rules (the immutability of `organization`
/// and `service` is held by the controller against what its status recorded).
pub fn validate_connector(spec: &SendConnectorSpec) -> Result<(), InvalidField> {
    let ovh_name = (&*OVH_NAME, "an OVH name: letters, digits, '.', '_' and '-'");
    text(
        "spec.organization",
        &spec.organization,
        (1, 128),
        Some(ovh_name),
    )?;
    if let Some(service) = &spec.service {
        text("spec.service", service, (1, 128), Some(ovh_name))?;
    }
    if let Some(name) = &spec.display_name {
        text(
            "spec.displayName",
            name,
            (1, 256),
            Some((
                &PRINTABLE,
                "printable text, without control or format characters",
            )),
        )?;
    }
    text(
        "spec.smartHost",
        &spec.smart_host,
        (1, 253),
        Some((&HOSTNAME, "a host name such as smtp-relay.example.com")),
    )?;
    range("spec.port", spec.port, 1, 65535)?;
    range("spec.maxSendSize", spec.max_send_size, 1, 100)?;
    if let Some(auth) = &spec.authentication {
        if let Some(user) = &auth.user {
            text(
                "spec.authentication.user",
                user,
                (0, 256),
                Some((
                    &PRINTABLE,
                    "printable text, without control or format characters",
                )),
            )?;
        }
        if auth.mechanism != AuthMechanism::None {
            if auth.user.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(
                    "spec.authentication.user",
                    format!("is required when mechanism is {}", auth.mechanism),
                ));
            }
            let Some(r) = &auth.password_secret_ref else {
                return Err(invalid(
                    "spec.authentication.passwordSecretRef",
                    format!("is required when mechanism is {}", auth.mechanism),
                ));
            };
            text(
                "spec.authentication.passwordSecretRef.name",
                &r.name,
                REF_NAME,
                None,
            )?;
            text(
                "spec.authentication.passwordSecretRef.key",
                &r.key,
                REF_NAME,
                None,
            )?;
        }
    }
    if let Some(r) = &spec.credentials_secret_ref {
        text("spec.credentialsSecretRef.name", &r.name, REF_NAME, None)?;
    }
    Ok(())
}

/// Checks a MailboxBinding spec against the CRD's rules.
pub fn validate_binding(spec: &MailboxBindingSpec) -> Result<(), InvalidField> {
    text(
        "spec.connectorRef.name",
        &spec.connector_ref.name,
        REF_NAME,
        None,
    )?;
    if spec.mailboxes.len() > super::MAX_MAILBOXES {
        return Err(invalid(
            "spec.mailboxes",
            format!("must list at most {} addresses", super::MAX_MAILBOXES),
        ));
    }
    for (i, m) in spec.mailboxes.iter().enumerate() {
        text(
            &format!("spec.mailboxes[{i}]"),
            m,
            (3, 254),
            Some((&EMAIL, "an email address")),
        )?;
        if spec.mailboxes[..i]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(m))
        {
            return Err(invalid("spec.mailboxes", format!("lists {m} twice")));
        }
    }
    if spec.default_for_domains.len() > super::MAX_DOMAINS {
        return Err(invalid(
            "spec.defaultForDomains",
            format!("must list at most {} domains", super::MAX_DOMAINS),
        ));
    }
    for (i, d) in spec.default_for_domains.iter().enumerate() {
        text(
            &format!("spec.defaultForDomains[{i}]"),
            d,
            (1, 253),
            Some((&DOMAIN, "a domain name such as mydomain.ovh")),
        )?;
        if spec.default_for_domains[..i]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(d))
        {
            return Err(invalid(
                "spec.defaultForDomains",
                format!("lists {d} twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for p in [
            OVH_NAME_PATTERN,
            HOSTNAME_PATTERN,
            DOMAIN_PATTERN,
            EMAIL_PATTERN,
            PRINTABLE_PATTERN,
        ] {
            Regex::new(p).unwrap();
        }
    }

    fn connector(spec: serde_json::Value) -> SendConnectorSpec {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn names_the_field_at_fault() {
        let cases = [
            (
                serde_json::json!({"organization": "o", "smartHost": "smtp://relay example.com:25"}),
                "spec.smartHost",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "displayName": "a\nb"}),
                "spec.displayName",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "displayName": "evil\u{202e}txt"}),
                "spec.displayName",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "displayName": "x".repeat(300)}),
                "spec.displayName",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "authentication": {"mechanism": "basicAuth", "passwordSecretRef": {"name": "p"}}}),
                "spec.authentication.user",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "authentication": {"mechanism": "basicAuthRequireTLS", "user": "u"}}),
                "spec.authentication.passwordSecretRef",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "port": 70000}),
                "spec.port",
            ),
            (
                serde_json::json!({"organization": "o", "smartHost": "h", "maxSendSize": 500}),
                "spec.maxSendSize",
            ),
            (
                serde_json::json!({"organization": "a/b", "smartHost": "h"}),
                "spec.organization",
            ),
        ];
        for (spec, field) in cases {
            let e = validate_connector(&connector(spec.clone())).unwrap_err();
            assert_eq!(e.field, field, "{spec}");
        }
        validate_connector(&connector(serde_json::json!({
            "organization": "private-zz111111-1", "smartHost": "smtp-relay.example.com",
            "displayName": "Newsletter relay (été)",
            "authentication": {"mechanism": "basicAuth", "user": "u", "passwordSecretRef": {"name": "p"}}
        })))
        .unwrap();
    }
}
