//! Where the OVH API lives: a named region (`ovh-eu`, …) or a URL, and where its OAuth2 tokens
//! come from.
use std::fmt;
use url::Url;

/// An OVH API endpoint: the `/1.0` base URL and, where OAuth2 is offered, the token URL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    base: Url,
    token_url: Option<Url>,
}

/// Named endpoints of the official clients: (name, base URL, OAuth2 token URL).
const NAMED: &[(&str, &str, Option<&str>)] = &[
    (
        "ovh-eu",
        "https://eu.api.ovh.com/1.0",
        Some("https://www.ovh.com/auth/oauth2/token"),
    ),
    (
        "ovh-ca",
        "https://ca.api.ovh.com/1.0",
        Some("https://ca.ovh.com/auth/oauth2/token"),
    ),
    (
        "ovh-us",
        "https://api.us.ovhcloud.com/1.0",
        Some("https://us.ovhcloud.com/auth/oauth2/token"),
    ),
    ("kimsufi-eu", "https://eu.api.kimsufi.com/1.0", None),
    ("kimsufi-ca", "https://ca.api.kimsufi.com/1.0", None),
    ("soyoustart-eu", "https://eu.api.soyoustart.com/1.0", None),
    ("soyoustart-ca", "https://ca.api.soyoustart.com/1.0", None),
    ("ks-eu", "https://eu.api.kimsufi.com/1.0", None),
    ("ks-ca", "https://ca.api.kimsufi.com/1.0", None),
    ("sys-eu", "https://eu.api.soyoustart.com/1.0", None),
    ("sys-ca", "https://ca.api.soyoustart.com/1.0", None),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error(
        "unknown OVH endpoint {0:?}: use ovh-eu, ovh-ca, ovh-us, kimsufi-*, soyoustart-* or an http(s) URL"
    )]
    Unknown(String),
    #[error("invalid OVH endpoint URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl Endpoint {
    /// Parses a name or a URL. For a URL, `token_url` overrides the default token URL
    /// (`<scheme>://<host>/auth/oauth2/token`, which is what the simulator serves).
    pub fn parse(name_or_url: &str, token_url: Option<&str>) -> Result<Self, EndpointError> {
        let trimmed = name_or_url.trim();
        if let Some((_, base, token)) = NAMED.iter().find(|(name, _, _)| *name == trimmed) {
            let base = parse_url(base)?;
            let token_url = match token_url {
                Some(t) => Some(parse_url(t)?),
                None => token.map(parse_url).transpose()?,
            };
            return Ok(Self { base, token_url });
        }
        if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
            return Err(EndpointError::Unknown(trimmed.to_owned()));
        }
        let mut base = parse_url(trimmed.trim_end_matches('/'))?;
        // `http://host:port` alone means the API root `http://host:port/1.0`.
        if base.path() == "/" || base.path().is_empty() {
            base.set_path("/1.0");
        }
        let token_url = if let Some(t) = token_url {
            parse_url(t)?
        } else {
            let mut t = base.clone();
            t.set_path("/auth/oauth2/token");
            t.set_query(None);
            t
        };
        Ok(Self {
            base,
            token_url: Some(token_url),
        })
    }

    /// The base URL, e.g. `https://eu.api.ovh.com/1.0`, without a trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The OAuth2 token URL, if this endpoint offers OAuth2.
    pub fn token_url(&self) -> Option<&Url> {
        self.token_url.as_ref()
    }

    /// The absolute URL of an API path such as `/email/exchange/x/service/x/sendConnector`.
    ///
    /// Like the official clients, a path starting with `/v1/` or `/v2/` replaces the base's
    /// own version segment.
    pub fn url_for(&self, path: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        if path.starts_with("/v1/") || path.starts_with("/v2/") {
            if let Some(root) = base.strip_suffix("/1.0") {
                return format!("{root}{path}");
            }
        }
        format!("{base}{path}")
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str())
    }
}

fn parse_url(s: &str) -> Result<Url, EndpointError> {
    Url::parse(s).map_err(|e| EndpointError::InvalidUrl {
        url: s.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_endpoints() {
        let eu = Endpoint::parse("ovh-eu", None).unwrap();
        assert_eq!(
            eu.url_for("/auth/time"),
            "https://eu.api.ovh.com/1.0/auth/time"
        );
        assert_eq!(eu.url_for("/v1/call"), "https://eu.api.ovh.com/v1/call");
        assert_eq!(
            eu.token_url().unwrap().as_str(),
            "https://www.ovh.com/auth/oauth2/token"
        );
        assert!(
            Endpoint::parse("kimsufi-eu", None)
                .unwrap()
                .token_url()
                .is_none()
        );
        assert_eq!(
            Endpoint::parse("ovh-ca", None)
                .unwrap()
                .token_url()
                .unwrap()
                .as_str(),
            "https://ca.ovh.com/auth/oauth2/token"
        );
    }

    #[test]
    fn url_endpoints_default_their_token_url() {
        let e = Endpoint::parse("http://127.0.0.1:8089/1.0/", None).unwrap();
        assert_eq!(
            e.url_for("/auth/time"),
            "http://127.0.0.1:8089/1.0/auth/time"
        );
        assert_eq!(
            e.token_url().unwrap().as_str(),
            "http://127.0.0.1:8089/auth/oauth2/token"
        );
        let bare = Endpoint::parse("http://127.0.0.1:8089", Some("http://idp/token")).unwrap();
        assert_eq!(bare.url_for("/x"), "http://127.0.0.1:8089/1.0/x");
        assert_eq!(bare.token_url().unwrap().as_str(), "http://idp/token");
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(
            Endpoint::parse("ovh-mars", None),
            Err(EndpointError::Unknown("ovh-mars".into()))
        );
    }
}
