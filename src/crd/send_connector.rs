//! `SendConnector`: one OVHcloud Exchange send connector (a smart host that outgoing mail from
//! chosen mailboxes is relayed through).
use super::common::{DeletionPolicy, PlannedCall};
use super::conditions::Condition;
use super::refs::{SecretKeyRef, SecretRef};
use super::{HOSTNAME_PATTERN, OVH_NAME_PATTERN, PRINTABLE_PATTERN};
use crate::ovh::model::AuthMechanism;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default SMTP submission port.
pub const DEFAULT_PORT: i32 = 587;
/// Default and largest message size OVH accepts, in MB.
pub const DEFAULT_MAX_SEND_SIZE_MB: i32 = 100;

fn default_port() -> i32 {
    DEFAULT_PORT
}

fn default_max_send_size() -> i32 {
    DEFAULT_MAX_SEND_SIZE_MB
}

fn default_true() -> bool {
    true
}

/// Desired state of an OVHcloud Exchange send connector.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sendconnector.io",
    version = "v1alpha1",
    kind = "SendConnector",
    plural = "sendconnectors",
    singular = "sendconnector",
    shortname = "sendconn",
    namespaced,
    status = "SendConnectorStatus",
    derive = "PartialEq",
    doc = "An OVHcloud Exchange send connector: a smart host through which chosen mailboxes relay their outgoing mail. The operator creates, updates and deletes the connector on OVH to match the spec; MailboxBindings attach mailboxes to it.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the connector on OVH matches the spec"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the connector is or is not ready"
    ),
    printcolumn(
        name = "ID",
        type_ = "integer",
        json_path = ".status.connectorId",
        description = "OVH send connector id"
    ),
    printcolumn(
        name = "SmartHost",
        type_ = "string",
        json_path = ".spec.smartHost",
        description = "Relay host"
    ),
    printcolumn(
        name = "Task",
        type_ = "string",
        json_path = ".status.pendingTask.function",
        description = "OVH task the operator is waiting for (empty when none)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Connector state reported by OVH",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        description = "Details of the Ready condition",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(oldSelf.service) ? (has(self.service) && self.service == oldSelf.service) : (!has(self.service) || self.service == oldSelf.organization)",
        "message": "spec.service is immutable: once set it cannot be changed or removed, and it can only be added with the value of spec.organization",
        "fieldPath": ".service",
        "reason": "FieldValueForbidden"
    }
]))]
pub struct SendConnectorSpec {
    /// OVH Exchange organization name, as in the OVH API paths (for example
    /// `private-zz111111-1`). Immutable: to move a connector, create a new resource.
    #[schemars(length(min = 1, max = 128), pattern(OVH_NAME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "spec.organization is immutable", "reason": "FieldValueForbidden"}
    ]))]
    pub organization: String,

    /// OVH Exchange service name inside the organization. Defaults to `organization` (the usual
    /// case for Private and Trusted Exchange). Immutable once set; it may only be added later
    /// with the value of `organization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(OVH_NAME_PATTERN))]
    pub service: Option<String>,

    /// Name of the connector on OVH (`displayName`). Defaults to `metadata.name`. The operator
    /// finds and adopts an existing connector by this name, so keep it unique per service.
    /// Changing it renames the connector on OVH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern(PRINTABLE_PATTERN))]
    pub display_name: Option<String>,

    /// Host name of the relay (smart host) that receives the mail, for example
    /// `smtp-relay.example.com`.
    #[schemars(length(min = 1, max = 253), pattern(HOSTNAME_PATTERN))]
    pub smart_host: String,

    /// TCP port of the smart host, 1 to 65535. Default 587 (SMTP submission).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Whether every message sent through the connector must be transmitted with TLS.
    /// Default `true`.
    #[serde(rename = "requireTLS", default = "default_true")]
    pub require_tls: bool,

    /// Largest message the connector sends, in megabytes (MB), 1 to 100. Default 100, which is
    /// also OVH's maximum.
    #[serde(default = "default_max_send_size")]
    #[schemars(range(min = 1, max = 100))]
    pub max_send_size: i32,

    /// How the connector authenticates to the smart host. Omitted means no authentication
    /// (mechanism `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,

    /// Secret in this namespace with the OVH API credentials (`applicationKey`,
    /// `applicationSecret`, `consumerKey`, or `clientId` and `clientSecret`, plus optional
    /// `endpoint`). Omitted: the operator's default credentials, when this namespace is allowed
    /// to use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// What happens on OVH when this resource is deleted: `Delete` (default) deletes the
    /// connector once no MailboxBinding references it; `Orphan` leaves it on OVH.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Smart-host authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mechanism == 'none' || (has(self.user) && self.user != '')",
        "message": "spec.authentication.user is required when spec.authentication.mechanism is basicAuth or basicAuthRequireTLS",
        "fieldPath": ".user",
        "reason": "FieldValueRequired"
    },
    {
        "rule": "self.mechanism == 'none' || has(self.passwordSecretRef)",
        "message": "spec.authentication.passwordSecretRef is required when spec.authentication.mechanism is basicAuth or basicAuthRequireTLS",
        "fieldPath": ".passwordSecretRef",
        "reason": "FieldValueRequired"
    }
]))]
pub struct Authentication {
    /// Authentication mechanism: `none`, `basicAuth` (user and password) or
    /// `basicAuthRequireTLS` (user and password, only over TLS). Default `none`.
    #[serde(default)]
    pub mechanism: AuthMechanism,

    /// User name for the smart host. Required unless `mechanism` is `none`; ignored when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), pattern(PRINTABLE_PATTERN))]
    pub user: Option<String>,

    /// Secret key in this namespace holding the smart-host password. Required unless
    /// `mechanism` is `none`; ignored when it is. When the Secret changes, the operator sends
    /// the new password to OVH once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// Observed state of the connector; written by the operator only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendConnectorStatus {
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Id of the send connector on OVH, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,

    /// Connector `state` as last read from OVH (`creating`, `ok`, `deleting`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// kstatus conditions: `Ready`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The OVH task the operator is waiting for before it writes to this connector again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_task: Option<PendingTask>,

    /// The last OVH task that finished for this connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task: Option<LastTask>,

    /// The authentication last sent to OVH, so a Secret change is sent once and a restart
    /// sends nothing. Never holds the password or a hash of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_authentication: Option<AppliedAuthentication>,

    /// Set just before the operator asks OVH to create the connector. While it is present and
    /// no `connectorId` is known, the operator looks the connector up by display name and
    /// waits for pending creation tasks instead of creating it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation: Option<CreationIntent>,

    /// The OVH organization and service this resource's connector was created or adopted
    /// under. The operator never acts on another one: a spec that names another is refused
    /// (`InvalidSpec`) until it is put back, and deletion uses this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_service: Option<ExchangeServiceRef>,

    /// Value of the `sendconnector.io/reconcile-requested-at` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// With `--dry-run`: the OVH calls the operator would make, in order. Secrets are masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedCall>,
}

/// An OVH task in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    /// OVH task id.
    pub id: i64,
    /// OVH task function, e.g. `addSendConnector` or `setSendConnector`.
    pub function: String,
    /// OVH task status when last polled: `todo` or `doing`.
    pub status: String,
    /// When the operator first saw the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// An OVH task that has finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastTask {
    /// OVH task id.
    pub id: i64,
    /// OVH task function, e.g. `addSendConnector`.
    pub function: String,
    /// Final OVH task status: `done`, `error` or `cancelled` (`unknown` when the task could no
    /// longer be read and the outcome was judged from the connector itself).
    pub status: String,
    /// When the task finished, as reported by OVH or, failing that, observed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// What the operator last sent through `changeAuthentication`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedAuthentication {
    /// Mechanism sent: `none`, `basicAuth` or `basicAuthRequireTLS`.
    pub mechanism: AuthMechanism,
    /// User name sent; absent for `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The Secret version the password was read from; absent for `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<AppliedSecret>,
}

/// Identifies one version of a Secret key, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedSecret {
    /// Secret name.
    pub name: String,
    /// Key inside the Secret.
    pub key: String,
    /// Secret `metadata.uid` (changes when the Secret is deleted and recreated).
    pub uid: String,
    /// Secret `metadata.resourceVersion` (changes when its data changes).
    pub resource_version: String,
}

/// Intent to create a connector, recorded before the create call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreationIntent {
    /// Display name the connector was created with; it is looked up by this name.
    pub display_name: String,
    /// When the creation was requested.
    pub requested_at: Time,
    /// Id of the `addSendConnector` task OVH returned, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

/// An OVH Exchange service, as its API paths name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeServiceRef {
    /// OVH Exchange organization name.
    pub organization: String,
    /// OVH Exchange service name.
    pub service: String,
}

impl SendConnectorSpec {
    /// The Exchange service the spec names.
    pub fn exchange_service(&self) -> ExchangeServiceRef {
        ExchangeServiceRef {
            organization: self.organization.clone(),
            service: self.effective_service().to_owned(),
        }
    }

    /// The OVH service name: `service`, or `organization` when it is omitted.
    pub fn effective_service(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.organization)
    }

    /// The OVH display name: `displayName`, or `metadata_name` when it is omitted.
    pub fn effective_display_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.display_name.as_deref().unwrap_or(metadata_name)
    }

    /// The authentication mechanism; `none` when `authentication` is omitted.
    pub fn mechanism(&self) -> AuthMechanism {
        self.authentication
            .as_ref()
            .map_or(AuthMechanism::None, |a| a.mechanism)
    }

    /// The smart-host user, only when the mechanism uses one.
    pub fn auth_user(&self) -> Option<&str> {
        self.active_authentication()?.user.as_deref()
    }

    /// The Secret key holding the smart-host password, only when the mechanism uses one.
    pub fn password_secret_ref(&self) -> Option<&SecretKeyRef> {
        self.active_authentication()?.password_secret_ref.as_ref()
    }

    fn active_authentication(&self) -> Option<&Authentication> {
        self.authentication
            .as_ref()
            .filter(|a| a.mechanism != AuthMechanism::None)
    }
}

impl SendConnector {
    /// The OVH display name: `spec.displayName`, or `metadata.name` when it is omitted.
    pub fn display_name(&self) -> &str {
        self.spec
            .display_name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The OVH service name: `spec.service`, or `spec.organization` when it is omitted.
    pub fn service(&self) -> &str {
        self.spec.effective_service()
    }

    /// The Exchange service the operator acts on for this resource: the one its status
    /// recorded when the connector was created or adopted, else the spec's.
    pub fn exchange_service(&self) -> ExchangeServiceRef {
        self.status
            .as_ref()
            .and_then(|s| s.exchange_service.clone())
            .unwrap_or_else(|| self.spec.exchange_service())
    }

    /// The OVH identity `(organization, service, displayName)` two resources must not share.
    pub fn ovh_key(&self) -> (&str, &str, &str) {
        (&self.spec.organization, self.service(), self.display_name())
    }

    /// Whether the `sendconnector.io/paused` annotation is `"true"`.
    pub fn is_paused(&self) -> bool {
        super::is_paused(self.annotations())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spec(json: serde_json::Value) -> SendConnectorSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn omitted_fields_take_the_documented_defaults() {
        let s =
            spec(serde_json::json!({"organization": "org-1", "smartHost": "relay.example.com"}));
        assert_eq!(s.port, 587);
        assert!(s.require_tls);
        assert_eq!(s.max_send_size, 100);
        assert_eq!(s.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(s.effective_service(), "org-1");
        assert_eq!(s.effective_display_name("from-metadata"), "from-metadata");
        assert_eq!(s.mechanism(), AuthMechanism::None);
        assert_eq!(s.auth_user(), None);
        assert_eq!(s.password_secret_ref(), None);
    }

    #[test]
    fn given_fields_win_over_defaults() {
        let s = spec(serde_json::json!({
            "organization": "org-1",
            "service": "svc-1",
            "displayName": "relay",
            "smartHost": "relay.example.com",
            "authentication": {"mechanism": "basicAuth", "user": "u",
                               "passwordSecretRef": {"name": "pw"}}
        }));
        assert_eq!(s.effective_service(), "svc-1");
        assert_eq!(s.effective_display_name("from-metadata"), "relay");
        assert_eq!(s.mechanism(), AuthMechanism::BasicAuth);
        assert_eq!(s.auth_user(), Some("u"));
        assert_eq!(
            s.password_secret_ref(),
            Some(&SecretKeyRef::new("pw", "password"))
        );
    }

    #[test]
    fn user_and_password_are_ignored_for_mechanism_none() {
        let s = spec(serde_json::json!({
            "organization": "org-1",
            "smartHost": "relay.example.com",
            "authentication": {"user": "u", "passwordSecretRef": {"name": "pw", "key": "k"}}
        }));
        assert_eq!(s.mechanism(), AuthMechanism::None);
        assert_eq!(s.auth_user(), None);
        assert_eq!(s.password_secret_ref(), None);
    }

    #[test]
    fn resource_helpers_use_metadata_name_and_annotations() {
        let mut sc = SendConnector::new(
            "newsletter-relay",
            spec(serde_json::json!({"organization": "org-1", "smartHost": "relay.example.com"})),
        );
        assert_eq!(sc.ovh_key(), ("org-1", "org-1", "newsletter-relay"));
        assert!(!sc.is_paused());
        sc.metadata.annotations = Some(
            [(
                super::super::PAUSED_ANNOTATION.to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
        assert!(sc.is_paused());
    }
}
