//! Reconcile errors, named after the step that failed, each retryable or terminal.
use crate::ovh::OvhError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {kind} CRD is not installed (kubectl apply -f crds/): {message}")]
    CrdsMissing { kind: &'static str, message: String },
    #[error("could not {action}: {source}")]
    Kube {
        action: &'static str,
        source: kube::Error,
    },
    #[error("{0}")]
    NoCredentials(String),
    #[error("OVH credentials Secret {namespace}/{name} not found")]
    CredentialsSecretMissing { namespace: String, name: String },
    #[error("OVH credentials Secret {name} is invalid: {message}")]
    InvalidCredentials { name: String, message: String },
    #[error("password Secret {name} (key {key}) not found")]
    PasswordSecretMissing { name: String, key: String },
    #[error("{0}")]
    Ovh(OvhError),
    #[error("SendConnector {0} not found")]
    ConnectorMissing(String),
    #[error("SendConnector {0} has no OVH connector id yet")]
    ConnectorNotReady(String),
}

impl Error {
    /// Whether waiting (with backoff) can fix it without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Ovh(e) => e.is_retryable(),
            // A missing Secret or connector may be created later; its watch triggers us.
            Self::Kube { .. }
            | Self::ConnectorNotReady(_)
            | Self::CredentialsSecretMissing { .. }
            | Self::PasswordSecretMissing { .. }
            | Self::ConnectorMissing(_) => true,
            Self::CrdsMissing { .. } | Self::NoCredentials(_) | Self::InvalidCredentials { .. } => {
                false
            }
        }
    }

    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoCredentials(_) => "NoCredentials",
            Self::CredentialsSecretMissing { .. } | Self::InvalidCredentials { .. } => {
                "CredentialsInvalid"
            }
            Self::PasswordSecretMissing { .. } => "PasswordSecretMissing",
            Self::ConnectorMissing(_) | Self::ConnectorNotReady(_) => "ConnectorNotReady",
            Self::Ovh(_) => "OvhError",
            Self::Kube { .. } | Self::CrdsMissing { .. } => "KubernetesError",
        }
    }

    /// A low-cardinality label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Ovh(e) => e.category(),
            other => other.reason(),
        }
    }
}

impl From<OvhError> for Error {
    fn from(e: OvhError) -> Self {
        Self::Ovh(e)
    }
}
