//! Authentication: the classic signed requests (application key, consumer key, timestamp,
//! `$1$` signature over the URL the client actually requested), consumer-key access rules,
//! and OAuth2 client-credentials tokens accepted as `Authorization: Bearer`.
//!
//! Nothing here logs or returns a secret: errors carry fixed OVH messages only.
use super::errors::ApiError;
use super::seed::{AccessRule, ClassicCredential, OAuth2Credential, SeedCredential};
use super::settings::{Settings, StaleTimestampError};
use crate::secret::SecretString;
use crate::signing::{signature, signatures_equal};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The identities the simulator accepts.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub classic: Vec<ClassicCredential>,
    pub oauth2: Vec<OAuth2Credential>,
}

impl Credentials {
    pub fn from_seed(seed: &[SeedCredential]) -> Self {
        let mut creds = Self::default();
        for c in seed {
            match c {
                SeedCredential::Classic(c) => creds.classic.push(c.clone()),
                SeedCredential::OAuth2(c) => creds.oauth2.push(c.clone()),
            }
        }
        creds
    }

    fn knows_application(&self, ak: &str) -> bool {
        self.classic.iter().any(|c| c.application_key == ak)
    }
}

/// An issued OAuth2 access token.
#[derive(Clone, Debug)]
pub struct Token {
    pub rules: Vec<AccessRule>,
    pub expires_ms: i64,
}

/// Who made a request, and what it may call.
#[derive(Clone, Debug)]
pub struct Identity {
    pub rules: Vec<AccessRule>,
    pub bearer: bool,
}

/// What authentication looks at in a request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// `Host` header (or URI authority).
    pub host: &'a str,
    /// Path and query exactly as received.
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks a request's credentials. `now_s` is the server clock (with skew).
pub fn authenticate(
    creds: &Credentials,
    tokens: &HashMap<String, Token>,
    settings: &Settings,
    server_now_s: i64,
    now_ms: i64,
    req: &SignedRequest<'_>,
) -> Result<Identity, ApiError> {
    if let Some(auth) = header(req.headers, "authorization") {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth)
            .trim();
        return match tokens.get(token) {
            Some(t) if t.expires_ms > now_ms => Ok(Identity {
                rules: t.rules.clone(),
                bearer: true,
            }),
            _ => Err(ApiError::invalid_token()),
        };
    }
    let Some(ak) = header(req.headers, "x-ovh-application") else {
        return Err(ApiError::login_first());
    };
    if !creds.knows_application(ak) {
        return Err(ApiError::invalid_key());
    }
    let Some(ck) = header(req.headers, "x-ovh-consumer") else {
        return Err(ApiError::login_first());
    };
    let Some(cred) = creds
        .classic
        .iter()
        .find(|c| c.application_key == ak && signatures_equal(c.consumer_key.expose(), ck))
    else {
        return Err(ApiError::invalid_credential());
    };
    let Some(timestamp) =
        header(req.headers, "x-ovh-timestamp").and_then(|t| t.parse::<i64>().ok())
    else {
        return Err(ApiError::invalid_signature());
    };
    if (timestamp - server_now_s).abs() > settings.timestamp_tolerance_seconds {
        return Err(match settings.stale_timestamp_error {
            StaleTimestampError::InvalidSignature => ApiError::invalid_signature(),
            StaleTimestampError::InvalidKey => ApiError::invalid_key(),
        });
    }
    let Some(given) = header(req.headers, "x-ovh-signature") else {
        return Err(ApiError::invalid_signature());
    };
    let secret = cred.application_secret.expose();
    let ok = ["http", "https"].iter().any(|scheme| {
        let url = format!("{scheme}://{}{}", req.host, req.path_and_query);
        let expected = signature(secret, ck, req.method, &url, req.body, timestamp);
        signatures_equal(&expected, given)
    });
    if !ok {
        return Err(ApiError::invalid_signature());
    }
    Ok(Identity {
        rules: cred.access_rules.clone(),
        bearer: false,
    })
}

/// Whether an access rule list allows `method` on `path` (no `/1.0`, no query).
pub fn granted(rules: &[AccessRule], method: &str, path: &str, star_matches_slash: bool) -> bool {
    rules.iter().any(|r| {
        r.method.eq_ignore_ascii_case(method) && wildcard_match(&r.path, path, star_matches_slash)
    })
}

/// `*` matches any run of characters (stopping at `/` unless `star_matches_slash`).
pub fn wildcard_match(pattern: &str, text: &str, star_matches_slash: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // dp[j]: pattern prefix matched so far matches text prefix of length j.
    let mut dp = vec![false; t.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            next[0] = dp[0];
            for j in 1..=t.len() {
                next[j] = dp[j] || (next[j - 1] && (star_matches_slash || t[j - 1] != '/'));
            }
        } else {
            for j in 1..=t.len() {
                next[j] = dp[j - 1] && t[j - 1] == pc;
            }
        }
        dp = next;
    }
    dp[t.len()]
}

pub fn random_hex(bytes: usize) -> String {
    let data: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(data)
}

/// `POST /auth/oauth2/token` (form body): issues a token for a known client.
pub fn issue_token(
    creds: &Credentials,
    tokens: &mut HashMap<String, Token>,
    settings: &Settings,
    now_ms: i64,
    headers: &HeaderMap,
    form: &[u8],
) -> Result<Value, ApiError> {
    let mut fields: HashMap<String, String> =
        url::form_urlencoded::parse(form).into_owned().collect();
    // Clients may send the client id and secret as HTTP Basic credentials instead.
    if let Some((id, secret)) = basic_credentials(headers) {
        fields.entry("client_id".to_owned()).or_insert(id);
        fields.entry("client_secret".to_owned()).or_insert(secret);
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return Err(ApiError::oauth2(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type is not supported",
        ));
    }
    let client = creds.oauth2.iter().find(|c| {
        c.client_id == get("client_id")
            && signatures_equal(c.client_secret.expose(), get("client_secret"))
    });
    let Some(client) = client else {
        let status = if get("client_id").is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        return Err(ApiError::oauth2(
            status,
            "invalid_client",
            "ovhcloud oauth2 client does not exists",
        ));
    };
    let token = format!("eyJ{}", random_hex(32));
    let expires_in = settings.oauth2_token_expires_in_seconds;
    let expires_ms = now_ms.saturating_add(i64::try_from(expires_in).unwrap_or(0) * 1000);
    tokens.retain(|_, t| t.expires_ms > now_ms);
    tokens.insert(
        token.clone(),
        Token {
            rules: client.access_rules.clone(),
            expires_ms,
        },
    );
    Ok(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in, "scope": "all"}),
    )
}

/// `Authorization: Basic base64(id:secret)` (each part form-encoded, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = header(headers, "authorization")?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
    };
    Some((unescape(id), unescape(secret)))
}

/// `POST /auth/credential`: a new consumer key for a known application, valid at once
/// (there is no person to open the validation URL).
pub fn create_credential(
    creds: &mut Credentials,
    headers: &HeaderMap,
    host: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let Some(ak) = header(headers, "x-ovh-application") else {
        return Err(ApiError::invalid_key());
    };
    let Some(app) = creds.classic.iter().find(|c| c.application_key == ak) else {
        return Err(ApiError::invalid_key());
    };
    let parsed: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request("Body parameter accessRules isn't formated correctly")
    })?;
    let rules: Vec<AccessRule> = parsed
        .get("accessRules")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .ok_or_else(|| {
            ApiError::bad_request("Body parameter accessRules isn't formated correctly")
        })?;
    let ck = random_hex(16);
    let new = ClassicCredential {
        application_key: ak.to_owned(),
        application_secret: app.application_secret.clone(),
        consumer_key: SecretString::new(ck.clone()),
        access_rules: rules,
    };
    creds.classic.push(new);
    Ok(json!({
        "validationUrl": format!("http://{host}/auth/validate?credentialToken={}", random_hex(16)),
        "consumerKey": ck,
        "state": "pendingValidation",
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("/*", "/email/exchange/a/service/b", true));
        assert!(!wildcard_match("/*", "/email/exchange/a", false));
        assert!(wildcard_match(
            "/email/exchange/*",
            "/email/exchange/x",
            false
        ));
        assert!(wildcard_match(
            "/email/exchange/*/service/*/sendConnector",
            "/email/exchange/o/service/s/sendConnector",
            false
        ));
        assert!(!wildcard_match(
            "/email/exchange",
            "/email/exchange/x",
            true
        ));
        assert!(wildcard_match("/a*b*c", "/axxbyyc", true));
        assert!(!wildcard_match("/a*b*c", "/axxbyy", true));
    }

    #[test]
    fn rules_need_the_method() {
        let rules = vec![AccessRule::new("GET", "/email/*")];
        assert!(granted(&rules, "GET", "/email/exchange", true));
        assert!(!granted(&rules, "PUT", "/email/exchange", true));
        assert!(!granted(&rules, "GET", "/me", true));
    }
}
