//! `MailboxBinding`: attaches Exchange mailboxes (and, for accounts created later, whole domains)
//! to a `SendConnector`.
use super::common::{DeletionPolicy, PlannedCall};
use super::conditions::Condition;
use super::refs::ConnectorRef;
use super::{DOMAIN_PATTERN, EMAIL_PATTERN};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most mailboxes one binding may list (keeps the duplicate check cheap for the API server).
pub const MAX_MAILBOXES: usize = 100;
/// Most domains one binding may list.
pub const MAX_DOMAINS: usize = 50;

/// Mailboxes and domains whose outgoing mail goes through a SendConnector.
///
/// The binding uses the OVH API credentials of the SendConnector it references; it has none of
/// its own.
// Each `printcolumn(...)` repeats `type_ = ...`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sendconnector.io",
    version = "v1alpha1",
    kind = "MailboxBinding",
    plural = "mailboxbindings",
    singular = "mailboxbinding",
    shortname = "mbx",
    namespaced,
    status = "MailboxBindingStatus",
    derive = "PartialEq",
    doc = "Attaches OVHcloud Exchange mailboxes, and optionally the default for whole domains, to a SendConnector in the same namespace, so their outgoing mail is relayed through its smart host. Uses the referenced SendConnector's OVH API credentials.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every mailbox and domain is bound"
    ),
    printcolumn(
        name = "Connector",
        type_ = "string",
        json_path = ".spec.connectorRef.name",
        description = "SendConnector the mailboxes are bound to"
    ),
    printcolumn(
        name = "Bound",
        type_ = "string",
        json_path = ".status.bound",
        description = "Mailboxes and domains bound, out of those listed"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the binding is or is not ready"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
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
pub struct MailboxBindingSpec {
    /// The SendConnector, in this namespace, that the mailboxes and domains send through. Its
    /// OVH API credentials are used for this binding too.
    pub connector_ref: ConnectorRef,

    /// Primary email addresses (`primaryEmailAddress`) of Exchange mailboxes in the
    /// connector's service, at most 100, each listed once (case-insensitive). Each gets the
    /// connector's id as its `sendConnectorId`.
    #[serde(default)]
    #[schemars(
        length(max = 100),
        inner(length(min = 3, max = 254), pattern(EMAIL_PATTERN))
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "set",
        "x-kubernetes-validations" = [{
            "rule": "self.all(m, self.exists_one(x, x.lowerAscii() == m.lowerAscii()))",
            "message": "spec.mailboxes must not list the same address twice",
            "reason": "FieldValueDuplicate"
        }]
    ))]
    pub mailboxes: Vec<String>,

    /// Domain names (for example `mydomain.ovh`) for which this connector becomes the default
    /// for accounts created later (OVH `changeDefaultSBR`), at most 50, each listed once.
    /// Existing mailboxes are not changed by this; list them in `mailboxes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 50),
        inner(length(min = 1, max = 253), pattern(DOMAIN_PATTERN))
    )]
    #[schemars(extend(
        "x-kubernetes-list-type" = "set",
        "x-kubernetes-validations" = [{
            "rule": "self.all(d, self.exists_one(x, x.lowerAscii() == d.lowerAscii()))",
            "message": "spec.defaultForDomains must not list the same domain twice",
            "reason": "FieldValueDuplicate"
        }]
    ))]
    pub default_for_domains: Vec<String>,

    /// What happens on OVH when this binding is deleted or an entry is removed: `Delete`
    /// (default) puts the mailboxes' and domains' send connector back to `0` (the platform
    /// default); `Orphan` leaves them as they are.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Observed state of the binding; written by the operator only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxBindingStatus {
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions: `Ready`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// OVH id of the referenced connector the entries were bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,

    /// One entry per mailbox in the spec (and per mailbox still being released).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["address"]))]
    pub mailboxes: Vec<MailboxStatus>,

    /// One entry per domain in the spec (and per domain still being released).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub domains: Vec<DomainStatus>,

    /// Entries bound out of entries listed, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,

    /// Value of the `sendconnector.io/reconcile-requested-at` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// With `--dry-run`: the OVH calls the operator would make, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedCall>,
}

/// Where one mailbox or domain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BindingPhase {
    /// OVH uses the connector for it.
    Bound,
    /// A change was sent and its task has not finished, or it was not handled yet.
    Pending,
    /// It does not exist on OVH; retried with backoff.
    NotFound,
    /// Another MailboxBinding claims it.
    Conflict,
    /// OVH rejected the change or its task failed.
    Failed,
}

impl BindingPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bound => "Bound",
            Self::Pending => "Pending",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::Failed => "Failed",
        }
    }
}

impl fmt::Display for BindingPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of one mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxStatus {
    /// Primary email address of the mailbox.
    pub address: String,
    /// `Bound`, `Pending`, `NotFound`, `Conflict` or `Failed`.
    pub phase: BindingPhase,
    /// OVH task id of the last change sent for this mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    /// Details, e.g. the other binding in a conflict or OVH's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of one domain default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainStatus {
    /// Domain name.
    pub name: String,
    /// `Bound`, `Pending`, `NotFound`, `Conflict` or `Failed`.
    pub phase: BindingPhase,
    /// OVH task id of the last change sent for this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    /// Details, e.g. the other binding in a conflict or OVH's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MailboxBindingStatus {
    /// The `bound` summary for these entries: bound entries out of all entries, e.g. `2/3`.
    pub fn bound_summary(&self) -> String {
        let total = self.mailboxes.len() + self.domains.len();
        let bound = self
            .mailboxes
            .iter()
            .map(|m| m.phase)
            .chain(self.domains.iter().map(|d| d.phase))
            .filter(|p| *p == BindingPhase::Bound)
            .count();
        format!("{bound}/{total}")
    }
}

impl MailboxBinding {
    /// Whether the `sendconnector.io/paused` annotation is `"true"`.
    pub fn is_paused(&self) -> bool {
        super::is_paused(self.annotations())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(address: &str, phase: BindingPhase) -> MailboxStatus {
        MailboxStatus {
            address: address.into(),
            phase,
            task_id: None,
            message: None,
        }
    }

    #[test]
    fn bound_summary_counts_mailboxes_and_domains() {
        let mut status = MailboxBindingStatus::default();
        assert_eq!(status.bound_summary(), "0/0");
        status.mailboxes = vec![
            mailbox("a@b.io", BindingPhase::Bound),
            mailbox("c@b.io", BindingPhase::NotFound),
        ];
        status.domains = vec![DomainStatus {
            name: "b.io".into(),
            phase: BindingPhase::Bound,
            task_id: Some(3),
            message: None,
        }];
        assert_eq!(status.bound_summary(), "2/3");
    }
}
