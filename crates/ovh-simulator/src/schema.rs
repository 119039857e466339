//! Body validation against the OVH models: unknown keys, types, enum values, required and
//! read-only properties (reference §2–4).
use super::errors::ApiError;
use super::store::Object;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Str,
    Long,
    Bool,
    Password,
    DateTime,
    Enum(&'static str, &'static [&'static str]),
    EnumArray(&'static str, &'static [&'static str]),
    Object(&'static [Field]),
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub nullable: bool,
    pub read_only: bool,
    pub required: bool,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        nullable: false,
        read_only: false,
        required: false,
    }
}

const fn nullable(name: &'static str, ty: Ty) -> Field {
    Field {
        nullable: true,
        ..f(name, ty)
    }
}

const fn ro(name: &'static str, ty: Ty) -> Field {
    Field {
        read_only: true,
        nullable: true,
        ..f(name, ty)
    }
}

const fn required(name: &'static str, ty: Ty) -> Field {
    Field {
        required: true,
        ..f(name, ty)
    }
}

pub const AUTH_MECHANISMS: Ty = Ty::Enum(
    "email.exchange.smartHostAuthMechanismEnum",
    &["basicAuth", "basicAuthRequireTLS", "none"],
);
const OBJECT_STATE: Ty = Ty::Enum(
    "email.exchange.ObjectStateEnum",
    &[
        "creating",
        "deleting",
        "internalMigration",
        "ok",
        "reopening",
        "suspended",
        "suspending",
    ],
);
const RENEW_PERIOD: Ty = Ty::Enum("email.exchange.renewPeriodEnum", &["monthly", "yearly"]);

/// `POST P/sendConnector` parameters.
pub const CREATE_CONNECTOR: &[Field] = &[
    required("displayName", Ty::Str),
    required("smartHost", Ty::Str),
    f("maxSendSize", Ty::Long),
    f("password", Ty::Password),
    f("port", Ty::Long),
    f("requireTLS", Ty::Bool),
    f("smartHostAuthMechanism", AUTH_MECHANISMS),
    f("user", Ty::Str),
];

/// `email.exchange.sendConnector`.
pub const CONNECTOR: &[Field] = &[
    ro("creationDate", Ty::DateTime),
    ro("default", Ty::Bool),
    f("displayName", Ty::Str),
    f("dnsRouting", Ty::Bool),
    ro("id", Ty::Long),
    ro("lastUpdateDate", Ty::DateTime),
    f("maxSendSize", Ty::Long),
    f("port", Ty::Long),
    f("requireTLS", Ty::Bool),
    nullable("smartHost", Ty::Str),
    ro("smartHostAuthMechanism", AUTH_MECHANISMS),
    ro("state", OBJECT_STATE),
    ro("taskPendingId", Ty::Long),
];

/// `POST P/sendConnector/{id}/changeAuthentication` parameters.
pub const CHANGE_AUTHENTICATION: &[Field] = &[
    f("password", Ty::Password),
    f("smartHostAuthMechanism", AUTH_MECHANISMS),
    f("user", Ty::Str),
];

/// `PUT P/domain/{name}/changeDefaultSBR` parameters.
pub const CHANGE_DEFAULT_SBR: &[Field] = &[
    f("sbrDefault", Ty::Str),
    f("sendConnectorIdDefault", Ty::Long),
];

/// `email.exchange.spamAndVirusConfiguration`.
pub const SPAM_AND_VIRUS: &[Field] = &[
    f("checkDKIM", Ty::Bool),
    f("checkSPF", Ty::Bool),
    f("deleteSpam", Ty::Bool),
    f("deleteVirus", Ty::Bool),
    f("putInJunk", Ty::Bool),
    f("tagSpam", Ty::Bool),
    f("tagVirus", Ty::Bool),
];

/// `email.exchange.Account`.
pub const ACCOUNT: &[Field] = &[
    ro("SAMAccountName", Ty::Str),
    ro("configured", Ty::Bool),
    ro("creationDate", Ty::DateTime),
    ro("currentUsage", Ty::Long),
    ro("customIsolationId", Ty::Long),
    ro("exchangeGuid", Ty::Str),
    ro("expirationDate", Ty::DateTime),
    ro("expirationOutlookDate", Ty::DateTime),
    ro("guid", Ty::Str),
    ro("id", Ty::Long),
    ro("lastLogoffDate", Ty::DateTime),
    ro("lastLogonDate", Ty::DateTime),
    ro("lastUpdateDate", Ty::DateTime),
    ro("numberOfAliases", Ty::Long),
    ro("owaLimited", Ty::Bool),
    ro("passwordLastUpdate", Ty::DateTime),
    ro("primaryEmailAddress", Ty::Str),
    ro("spamDetected", Ty::Bool),
    ro("spamTicketNumber", Ty::Long),
    ro("state", OBJECT_STATE),
    ro("taskPendingId", Ty::Long),
    f(
        "accountLicense",
        Ty::Enum(
            "email.exchange.OvhLicenceEnum",
            &["basic", "enterprise", "standard"],
        ),
    ),
    nullable("authenticationPolicyId", Ty::Long),
    nullable("city", Ty::Str),
    nullable("company", Ty::Str),
    nullable("countryCode", Ty::Str),
    nullable("deleteAtExpiration", Ty::Bool),
    nullable("deleteOutlookAtExpiration", Ty::Bool),
    nullable("description", Ty::Str),
    nullable("displayName", Ty::Str),
    f("domain", Ty::Str),
    nullable("fax", Ty::Str),
    nullable("firstName", Ty::Str),
    nullable("forwardingEmail", Ty::Str),
    f("hiddenFromGAL", Ty::Bool),
    nullable("initial", Ty::Str),
    nullable("jobDepartment", Ty::Str),
    nullable("jobTitle", Ty::Str),
    nullable("lastName", Ty::Str),
    f("litigation", Ty::Bool),
    nullable("litigationPeriod", Ty::Long),
    f("login", Ty::Str),
    nullable("mailSenderDisplay", Ty::Str),
    nullable(
        "mailingFilter",
        Ty::EnumArray("email.exchange.MailingFilterEnum", &["vaderetro"]),
    ),
    nullable("mobile", Ty::Str),
    nullable("office", Ty::Str),
    f("outlookLicense", Ty::Bool),
    nullable("phone", Ty::Str),
    nullable("postalCode", Ty::Str),
    f("quota", Ty::Long),
    nullable("region", Ty::Str),
    nullable("renewOutlookPeriod", RENEW_PERIOD),
    nullable("renewPeriod", RENEW_PERIOD),
    nullable("sbrDestination", Ty::Str),
    nullable("sendConnectorId", Ty::Long),
    f("spamAndVirusConfiguration", Ty::Object(SPAM_AND_VIRUS)),
    f("storeCopyOfEmail", Ty::Bool),
    nullable("streetAddress", Ty::Str),
];

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "string",
        Ty::Long => "long",
        Ty::Bool => "boolean",
        Ty::Password => "password",
        Ty::DateTime => "datetime",
        Ty::Enum(name, _) | Ty::EnumArray(name, _) => name,
        Ty::Object(_) => "object",
    }
}

fn check_type(name: &str, ty: Ty, value: &Value) -> Result<(), ApiError> {
    let bad_type = || {
        ApiError::bad_request(&format!(
            "[{name}] Given data ({value}) is not valid for type {}",
            type_name(ty)
        ))
    };
    let bad_enum = |enum_name: &str, v: &Value| {
        ApiError::bad_request(&format!(
            "[{name}] Given data ({}) does not belong to the {enum_name} enumeration",
            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
        ))
    };
    match ty {
        Ty::Str | Ty::Password | Ty::DateTime => value.as_str().map(|_| ()).ok_or_else(bad_type),
        Ty::Long => value.as_i64().map(|_| ()).ok_or_else(bad_type),
        Ty::Bool => value.as_bool().map(|_| ()).ok_or_else(bad_type),
        Ty::Enum(enum_name, values) => match value.as_str() {
            Some(s) if values.contains(&s) => Ok(()),
            _ => Err(bad_enum(enum_name, value)),
        },
        Ty::EnumArray(enum_name, values) => {
            let items = value.as_array().ok_or_else(bad_type)?;
            for item in items {
                match item.as_str() {
                    Some(s) if values.contains(&s) => {}
                    _ => return Err(bad_enum(enum_name, item)),
                }
            }
            Ok(())
        }
        Ty::Object(fields) => {
            let object = value.as_object().ok_or_else(bad_type)?;
            validate(object, fields, name, false).map(|_| ())
        }
    }
}

/// Validates a body against `fields` and returns the writable properties it sets.
///
/// Unknown keys give `Received not described parameters: (…) while calling {operation}`;
/// read-only keys are dropped, or rejected when `reject_read_only`.
pub fn validate(
    body: &Object,
    fields: &[Field],
    operation: &str,
    reject_read_only: bool,
) -> Result<Object, ApiError> {
    let unknown: Vec<String> = body
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::not_described(&unknown, operation));
    }
    let mut writable = Object::new();
    for field in fields {
        let Some(value) = body.get(field.name) else {
            if field.required {
                return Err(ApiError::bad_request(&format!(
                    "[{}] Property is mandatory",
                    field.name
                )));
            }
            continue;
        };
        if field.read_only {
            if reject_read_only {
                return Err(ApiError::bad_request(&format!(
                    "[{}] Property is read-only",
                    field.name
                )));
            }
            continue;
        }
        if value.is_null() {
            if field.nullable {
                writable.insert(field.name.to_owned(), Value::Null);
                continue;
            }
            if field.required {
                return Err(ApiError::bad_request(&format!(
                    "[{}] Property is mandatory",
                    field.name
                )));
            }
        }
        check_type(field.name, field.ty, value)?;
        writable.insert(field.name.to_owned(), value.clone());
    }
    Ok(writable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn obj(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn unknown_keys_are_listed() {
        let err = validate(
            &obj(json!({"displayName": "a", "smartHost": "h", "foo": 1, "bar": 2})),
            CREATE_CONNECTOR,
            "creation handler",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Received not described parameters: (bar, foo) while calling creation handler"
        );
    }

    #[test]
    fn types_enums_required_read_only() {
        let e = validate(
            &obj(json!({"smartHost": "h"})),
            CREATE_CONNECTOR,
            "x",
            false,
        )
        .unwrap_err();
        assert_eq!(e.message(), "[displayName] Property is mandatory");
        let e = validate(
            &obj(json!({"displayName": "a", "smartHost": "h", "port": "25"})),
            CREATE_CONNECTOR,
            "x",
            false,
        )
        .unwrap_err();
        assert!(e.message().contains("not valid for type long"));
        let e = validate(
            &obj(json!({"displayName": "a", "smartHost": "h", "smartHostAuthMechanism": "ntlm"})),
            CREATE_CONNECTOR,
            "x",
            false,
        )
        .unwrap_err();
        assert!(e.message().contains(
            "does not belong to the email.exchange.smartHostAuthMechanismEnum enumeration"
        ));
        let ok = validate(
            &obj(json!({"port": 587, "state": "ok"})),
            CONNECTOR,
            "x",
            false,
        )
        .unwrap();
        assert_eq!(ok, obj(json!({"port": 587})));
        assert!(validate(&obj(json!({"state": "ok"})), CONNECTOR, "x", true).is_err());
        let e = validate(
            &obj(json!({"spamAndVirusConfiguration": {"deleteVirus": true, "nope": 1}})),
            ACCOUNT,
            "x",
            false,
        )
        .unwrap_err();
        assert!(
            e.message()
                .starts_with("Received not described parameters: (nope)")
        );
    }
}
