//! OVH API credentials: the classic application key/secret + consumer key, or an OAuth2
//! service account. Secret parts are [`SecretString`]s and never print.
use super::endpoint::{Endpoint, EndpointError};
use super::secret::SecretString;
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::fmt;

/// How requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Signed requests (`X-Ovh-Application`, `X-Ovh-Consumer`, `X-Ovh-Signature`).
    Application {
        application_key: String,
        application_secret: SecretString,
        consumer_key: SecretString,
    },
    /// OAuth2 client credentials; a bearer token is fetched and refreshed before expiry.
    OAuth2 {
        client_id: String,
        client_secret: SecretString,
    },
}

/// One set of credentials for one endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub endpoint: Endpoint,
    pub auth: Auth,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("OVH credentials are incomplete: {0}")]
    Incomplete(String),
    #[error(
        "OVH credentials mix two methods: set either applicationKey/applicationSecret/consumerKey or clientId/clientSecret"
    )]
    Ambiguous,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl Credentials {
    /// Reads credentials from key/value pairs named as in the credentials Secret
    /// (`applicationKey`, `applicationSecret`, `consumerKey`, `clientId`, `clientSecret`,
    /// `endpoint`, `tokenUrl`). Empty values count as absent.
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Self, CredentialsError> {
        let get = |k: &str| {
            values
                .get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let endpoint = Endpoint::parse(
            get("endpoint").as_deref().unwrap_or("ovh-eu"),
            get("tokenUrl").as_deref(),
        )?;
        let classic = [
            get("applicationKey"),
            get("applicationSecret"),
            get("consumerKey"),
        ];
        let oauth = [get("clientId"), get("clientSecret")];
        let any_classic = classic.iter().any(Option::is_some);
        let any_oauth = oauth.iter().any(Option::is_some);
        let auth = match (any_classic, any_oauth) {
            (true, true) => return Err(CredentialsError::Ambiguous),
            (false, false) => {
                return Err(CredentialsError::Incomplete(
                    "set applicationKey, applicationSecret and consumerKey, or clientId and clientSecret".into(),
                ));
            }
            (true, false) => match classic {
                [Some(ak), Some(as_), Some(ck)] => Auth::Application {
                    application_key: ak,
                    application_secret: as_.into(),
                    consumer_key: ck.into(),
                },
                _ => {
                    return Err(CredentialsError::Incomplete(missing(
                        &["applicationKey", "applicationSecret", "consumerKey"],
                        &classic,
                    )));
                }
            },
            (false, true) => match oauth {
                [Some(id), Some(secret)] => Auth::OAuth2 {
                    client_id: id,
                    client_secret: secret.into(),
                },
                _ => {
                    return Err(CredentialsError::Incomplete(missing(
                        &["clientId", "clientSecret"],
                        &oauth,
                    )));
                }
            },
        };
        Ok(Self { endpoint, auth })
    }

    /// Reads the usual `OVH_*` environment variables (`OVH_ENDPOINT`, `OVH_APPLICATION_KEY`, …).
    pub fn from_env() -> Result<Self, CredentialsError> {
        let pairs = [
            ("endpoint", "OVH_ENDPOINT"),
            ("applicationKey", "OVH_APPLICATION_KEY"),
            ("applicationSecret", "OVH_APPLICATION_SECRET"),
            ("consumerKey", "OVH_CONSUMER_KEY"),
            ("clientId", "OVH_CLIENT_ID"),
            ("clientSecret", "OVH_CLIENT_SECRET"),
            ("tokenUrl", "OVH_TOKEN_URL"),
        ];
        let values = pairs
            .iter()
            .filter_map(|(k, var)| std::env::var(var).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        Self::from_map(&values)
    }

    /// A stable, non-reversible identity of the consumer these credentials act as (endpoint,
    /// application key and consumer key, or OAuth2 client id): OVH limits requests per
    /// consumer, so every client of one identity shares one request budget, whatever secret
    /// each was given. The consumer key is hashed, never kept in clear. Clients themselves are
    /// kept by [`Credentials::cache_key`].
    pub fn identity(&self) -> String {
        let mut h = Sha1::new();
        h.update(self.endpoint.base().as_str().as_bytes());
        match &self.auth {
            Auth::Application {
                application_key,
                consumer_key,
                ..
            } => {
                h.update(b"\0app\0");
                h.update(application_key.as_bytes());
                h.update(b"\0");
                h.update(consumer_key.expose().as_bytes());
            }
            Auth::OAuth2 { client_id, .. } => {
                h.update(b"\0oauth2\0");
                h.update(client_id.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// The key of the one client kept for these credentials: a hash of every field (endpoint,
    /// token URL, keys and secrets), so credentials that differ in any of them, a secret
    /// alone included, get a client of their own. The hash is salted with a random value of
    /// this process: the key tells nothing about the secrets to anyone who sees it.
    pub fn cache_key(&self) -> String {
        let mut h = Sha1::new();
        h.update(process_salt());
        // Each field prefixed with its length: no two sets of fields hash the same bytes.
        let mut field = |value: &[u8]| {
            h.update((value.len() as u64).to_be_bytes());
            h.update(value);
        };
        field(self.endpoint.base().as_str().as_bytes());
        field(
            self.endpoint
                .token_url()
                .map_or("", url::Url::as_str)
                .as_bytes(),
        );
        match &self.auth {
            Auth::Application {
                application_key,
                application_secret,
                consumer_key,
            } => {
                field(b"app");
                field(application_key.as_bytes());
                field(application_secret.expose().as_bytes());
                field(consumer_key.expose().as_bytes());
            }
            Auth::OAuth2 {
                client_id,
                client_secret,
            } => {
                field(b"oauth2");
                field(client_id.as_bytes());
                field(client_secret.expose().as_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// The secret values, so tests and log scrubbers can check none of them leaks.
    pub fn secret_values(&self) -> Vec<&str> {
        match &self.auth {
            Auth::Application {
                application_secret,
                consumer_key,
                ..
            } => {
                vec![application_secret.expose(), consumer_key.expose()]
            }
            Auth::OAuth2 { client_secret, .. } => vec![client_secret.expose()],
        }
    }
}

/// A random value drawn once per process, mixed into [`Credentials::cache_key`].
fn process_salt() -> &'static [u8; 16] {
    static SALT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    SALT.get_or_init(rand::random)
}

fn missing(names: &[&str], values: &[Option<String>]) -> String {
    let absent: Vec<&str> = names
        .iter()
        .zip(values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    format!("missing {}", absent.join(", "))
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.auth {
            Auth::Application {
                application_key, ..
            } => f
                .debug_struct("Credentials")
                .field("endpoint", &self.endpoint)
                .field("application_key", application_key)
                .field("application_secret", &"<redacted>")
                .field("consumer_key", &"<redacted>")
                .finish(),
            Auth::OAuth2 { client_id, .. } => f
                .debug_struct("Credentials")
                .field("endpoint", &self.endpoint)
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn classic_credentials_redact_their_secrets() {
        let c = Credentials::from_map(&map(&[
            ("applicationKey", "ak"),
            ("applicationSecret", "s3cr3t-as"),
            ("consumerKey", "s3cr3t-ck"),
        ]))
        .unwrap();
        let printed = format!("{c:?}");
        assert!(printed.contains("ak"));
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert_eq!(c.endpoint.base().as_str(), "https://eu.api.ovh.com/1.0");
    }

    #[test]
    fn oauth2_and_errors() {
        let c = Credentials::from_map(&map(&[
            ("clientId", "id"),
            ("clientSecret", "s3cr3t"),
            ("endpoint", "ovh-ca"),
        ]))
        .unwrap();
        assert!(matches!(c.auth, Auth::OAuth2 { .. }));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            Credentials::from_map(&map(&[("applicationKey", "ak"), ("consumerKey", "ck")])),
            Err(CredentialsError::Incomplete(
                "missing applicationSecret".into()
            ))
        );
        assert_eq!(
            Credentials::from_map(&map(&[("applicationKey", "ak"), ("clientId", "id")])),
            Err(CredentialsError::Ambiguous)
        );
    }

    #[test]
    fn identity_depends_on_consumer_key_but_does_not_reveal_it() {
        let a = Credentials::from_map(&map(&[
            ("applicationKey", "ak"),
            ("applicationSecret", "as"),
            ("consumerKey", "ck1"),
        ]))
        .unwrap();
        let b = Credentials::from_map(&map(&[
            ("applicationKey", "ak"),
            ("applicationSecret", "as"),
            ("consumerKey", "ck2"),
        ]))
        .unwrap();
        assert_ne!(a.identity(), b.identity());
        assert!(!a.identity().contains("ck1"));
    }

    #[test]
    fn cache_key_covers_every_secret_and_reveals_none() {
        let classic = |secret: &str| {
            Credentials::from_map(&map(&[
                ("applicationKey", "ak"),
                ("applicationSecret", secret),
                ("consumerKey", "ck-value"),
            ]))
            .unwrap()
        };
        let (right, wrong) = (classic("as-right-value"), classic("as-wrong-value"));
        // One consumer, one request budget; two clients.
        assert_eq!(right.identity(), wrong.identity());
        assert_ne!(right.cache_key(), wrong.cache_key());
        assert_eq!(right.cache_key(), classic("as-right-value").cache_key());
        let oauth = |secret: &str| {
            Credentials::from_map(&map(&[("clientId", "id"), ("clientSecret", secret)])).unwrap()
        };
        assert_eq!(oauth("cs-one").identity(), oauth("cs-two").identity());
        assert_ne!(oauth("cs-one").cache_key(), oauth("cs-two").cache_key());
        // The token URL is where the client secret goes: a change is another client.
        let with_token_url = Credentials::from_map(&map(&[
            ("clientId", "id"),
            ("clientSecret", "cs-one"),
            ("tokenUrl", "https://elsewhere.example/token"),
        ]))
        .unwrap();
        assert_ne!(with_token_url.cache_key(), oauth("cs-one").cache_key());
        for c in [&right, &wrong] {
            let key = c.cache_key();
            for secret in c.secret_values() {
                assert!(!key.contains(secret), "{key}");
            }
        }
    }
}
