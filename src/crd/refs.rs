//! References to Secrets and to other resources in the same namespace.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `key` used when a Secret key reference does not name one.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

fn default_password_key() -> String {
    DEFAULT_PASSWORD_KEY.to_owned()
}

/// A Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as this resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as this resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data` whose value is used. Default `password`.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl SecretKeyRef {
    /// A reference to `key` in Secret `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }
}

/// A SendConnector in the same namespace as the MailboxBinding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ConnectorRef {
    /// Name of the SendConnector, in the same namespace as this MailboxBinding.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
