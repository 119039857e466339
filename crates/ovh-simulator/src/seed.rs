//! The seed YAML: credentials the simulator accepts, the Exchange services it hosts (with
//! their domains and mailboxes) and the task timings.
use crate::secret::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("invalid simulator seed: {0}")]
pub struct SeedError(String);

/// The whole seed. Every part is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Seed {
    pub credentials: Vec<SeedCredential>,
    pub services: Vec<SeedService>,
    pub tasks: Option<SeedTasks>,
}

impl Seed {
    pub fn from_yaml(yaml: &str) -> Result<Self, SeedError> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(yaml).map_err(|e| SeedError(e.to_string()))
    }
}

/// One accepted identity: a classic application + consumer key, or an OAuth2 client.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum SeedCredential {
    Classic(ClassicCredential),
    OAuth2(OAuth2Credential),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassicCredential {
    pub application_key: String,
    pub application_secret: SecretString,
    pub consumer_key: SecretString,
    /// All methods on every path when absent.
    #[serde(default = "all_rules")]
    pub access_rules: Vec<AccessRule>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Credential {
    pub client_id: String,
    pub client_secret: SecretString,
    /// All methods on every path when absent.
    #[serde(default = "all_rules")]
    pub access_rules: Vec<AccessRule>,
}

/// An access rule of a consumer key: `*` in `path` is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    pub method: String,
    pub path: String,
}

impl AccessRule {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }
}

pub(crate) fn all_rules() -> Vec<AccessRule> {
    ["GET", "POST", "PUT", "DELETE"]
        .into_iter()
        .map(|m| AccessRule::new(m, "/*"))
        .collect()
}

/// One Exchange service with its domains and mailboxes.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedService {
    pub organization: String,
    /// Defaults to `organization`.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<String>,
}

impl SeedService {
    pub fn service_name(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.organization)
    }
}

/// Task timings in seconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedTasks {
    #[serde(default)]
    pub todo_seconds: Option<f64>,
    #[serde(default)]
    pub doing_seconds: Option<f64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const YAML: &str = r#"
credentials:
  - applicationKey: ak
    applicationSecret: as
    consumerKey: ck
    accessRules: [{method: GET, path: "/*"}, {method: POST, path: "/*"}]
  - clientId: my-client
    clientSecret: my-secret
services:
  - organization: private-zz111111-1
    domains: [mydomain.ovh]
    accounts: [newsletter@mydomain.ovh, contact@mydomain.ovh]
tasks: {todoSeconds: 0.2, doingSeconds: 0.5}
"#;

    #[test]
    fn parses_the_documented_shape() {
        let seed = Seed::from_yaml(YAML).unwrap();
        assert_eq!(seed.credentials.len(), 2);
        match &seed.credentials[0] {
            SeedCredential::Classic(c) => {
                assert_eq!(c.application_key, "ak");
                assert_eq!(c.consumer_key.expose(), "ck");
                assert_eq!(c.access_rules.len(), 2);
            }
            SeedCredential::OAuth2(_) => panic!("expected classic"),
        }
        match &seed.credentials[1] {
            SeedCredential::OAuth2(c) => assert_eq!(c.access_rules, all_rules()),
            SeedCredential::Classic(_) => panic!("expected oauth2"),
        }
        assert_eq!(seed.services[0].service_name(), "private-zz111111-1");
        assert_eq!(seed.services[0].accounts.len(), 2);
        assert_eq!(seed.tasks.unwrap().doing_seconds, Some(0.5));
        assert!(!format!("{:?}", seed.credentials).contains("my-secret"));
    }

    #[test]
    fn empty_and_invalid() {
        assert!(Seed::from_yaml("").unwrap().services.is_empty());
        assert!(Seed::from_yaml("servicez: []").is_err());
    }
}
