//! Types both resources share: the deletion policy and the dry-run plan.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What happens on OVH when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Undo on OVH what the resource did (delete the connector, put mailboxes back to 0).
    #[default]
    Delete,
    /// Leave OVH untouched; only the Kubernetes resource goes.
    Orphan,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "Delete",
            Self::Orphan => "Orphan",
        }
    }
}

impl fmt::Display for DeletionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One OVH API call the operator would make, reported in `status.plan` with `--dry-run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCall {
    /// HTTP method: `GET`, `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// API path below the endpoint's `/1.0`, e.g. `/email/exchange/{org}/service/{svc}/sendConnector`.
    pub path: String,
    /// JSON request body with every secret value replaced by `**********`; absent when the call has no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Why the call is needed, e.g. `port differs: live 25, spec 587`.
    pub reason: String,
}
