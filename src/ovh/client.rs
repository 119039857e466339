//! The HTTP client for the OVH API: authentication (signatures with a server-time offset, or
//! OAuth2 bearer tokens), the shared request budget, retries and error decoding.
//!
//! Every request goes through [`OvhClient::execute`]. Request bodies may hold passwords, so
//! bodies are never logged; log lines carry the method, the route template, the status and the
//! `X-Ovh-QueryID` only.
use super::budget::Budget;
use super::credentials::{Auth, Credentials};
use super::error::{API_MESSAGE_LIMIT, ApiError, OvhError, TransportKind};
use super::model::ErrorBody;
use super::retry::RetryPolicy;
use super::secret::SecretString;
use super::signing;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The largest OVH answer read whole, in bytes, and the largest element of a list answer
/// (lists are read element by element: [`OvhClient::execute_list`]). Real objects are far
/// smaller (an account is about 1.3 KB); a larger one is a fault, and reading it whole once
/// grew the process to 24 GB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Settings of one client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time allowed for one attempt (connection, request and answer).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Told about every attempt (metrics, audit log); none by default.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// One attempt of a request, as [`OvhClient::execute`] reports it to a [`RequestObserver`].
/// It holds no body, header or path: only the route template, never ids or addresses.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub method: &'a Method,
    pub route: &'static str,
    /// The HTTP status; `None` when no answer came (transport error) or none was sent
    /// (a token or setup error).
    pub status: Option<u16>,
    /// What went wrong, when something did: [`OvhError::category`].
    pub error: Option<&'static str>,
    pub query_id: Option<&'a str>,
    /// Time from sending to the full answer.
    pub elapsed: Duration,
    /// Time spent waiting for the request budget before sending.
    pub budget_wait: Duration,
    /// Retries before this attempt (0 for the first).
    pub retries: u32,
}

/// Told about each attempt of each request, after it ended. Must be quick: it runs on the
/// request path.
pub trait RequestObserver: std::fmt::Debug + Send + Sync {
    fn attempt(&self, attempt: &Attempt<'_>);
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            user_agent: concat!("sendconnector-operator/", env!("CARGO_PKG_VERSION")).to_owned(),
            observer: None,
        }
    }
}

/// One request to make: the concrete path and the route template it came from (for logs,
/// metrics and errors, where ids and addresses would only add noise).
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub route: &'static str,
    /// Path below the endpoint's base URL, already percent-encoded, e.g. `/auth/time`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The exact JSON bytes to send; never printed.
    pub body: Option<Bytes>,
    pub headers: Vec<(&'static str, String)>,
    /// Unauthenticated calls (`/auth/time`) carry no signature.
    pub signed: bool,
}

impl Call {
    pub fn new(method: Method, route: &'static str, path: impl Into<String>) -> Self {
        Self {
            method,
            route,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            signed: true,
        }
    }

    pub fn json_body<T: serde::Serialize>(mut self, body: &T) -> Result<Self, OvhError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| OvhError::Setup(format!("cannot encode request body: {e}")))?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }
}

/// A successful answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub query_id: Option<String>,
}

impl Reply {
    /// Decodes the JSON body. OVH answers `void` with `null`, an empty body or a 204, which
    /// all decode as `()` or `Option::None`.
    pub fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, OvhError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| decode_error(call, self.status, &e, &self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The token endpoint's answer.
#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The token endpoint's OAuth2 error body.
#[derive(serde::Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    credentials: Credentials,
    budget: Arc<Budget>,
    options: ClientOptions,
    /// Server time minus local time, in seconds, once read from `/auth/time`.
    time_offset: Mutex<Option<i64>>,
    token: Mutex<Option<CachedToken>>,
    /// Turns for requests in flight at once (see [`REQUESTS_IN_FLIGHT`]).
    in_flight: tokio::sync::Semaphore,
}

/// The requests of one client in flight at once. The budget paces them; this bounds the
/// connections they open: with a generous budget, a thousand creations at once opened
/// hundreds of connections, each with its buffers. Sixty-four keep well ahead of any rate
/// OVH allows (3,200 requests a second at 20 ms each).
pub const REQUESTS_IN_FLIGHT: usize = 64;

/// A client for one set of credentials. Cheap to clone; clones share the connection pool,
/// the clock offset, the token and the budget.
#[derive(Clone)]
pub struct OvhClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OvhClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvhClient")
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// Makes sure rustls has its crypto provider before any TLS client is built.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl OvhClient {
    pub fn new(
        credentials: Credentials,
        budget: Arc<Budget>,
        options: ClientOptions,
    ) -> Result<Self, OvhError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            // OVH's API does not redirect, and a redirect followed would carry the signed
            // headers, the bearer token or a body with a password to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| OvhError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                credentials,
                budget,
                options,
                time_offset: Mutex::new(None),
                token: Mutex::new(None),
                in_flight: tokio::sync::Semaphore::new(REQUESTS_IN_FLIGHT),
            }),
        })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.inner.budget
    }

    /// Sends a call and decodes its JSON answer.
    pub async fn call<T: DeserializeOwned>(&self, call: &Call) -> Result<T, OvhError> {
        self.execute(call).await?.json(call)
    }

    /// Sends a call under the budget, retrying what may be retried, and returns the answer or
    /// the classified error.
    ///
    /// Retries: GET, PUT and DELETE on 408/429/5xx/busy and transport errors, with backoff and
    /// `Retry-After`; a POST never, since a lost answer may hide an applied change (the
    /// reconciler finds out by reading). Any call answered with a clock or signature error is
    /// repeated once after re-reading `/auth/time`: OVH refused it before acting on it.
    pub async fn execute(&self, call: &Call) -> Result<Reply, OvhError> {
        self.execute_into(call, None).await
    }

    /// Like [`OvhClient::execute`] for a call answered with a JSON array: a successful
    /// answer's elements go to `elements` one by one as they arrive (its [`Reply::body`] is
    /// empty), so that a long list is never held whole as text. Each element may be up to
    /// [`MAX_ANSWER_BYTES`]; the array as a whole up to [`MAX_LIST_BYTES`].
    pub async fn execute_list(
        &self,
        call: &Call,
        elements: &mut dyn Elements,
    ) -> Result<Reply, OvhError> {
        self.execute_into(call, Some(elements)).await
    }

    async fn execute_into(
        &self,
        call: &Call,
        mut elements: Option<&mut dyn Elements>,
    ) -> Result<Reply, OvhError> {
        let mut retries = 0;
        let mut clock_reread = false;
        let mut token_renewed = false;
        loop {
            // The budget first: it orders requests by urgency, and a turn in flight is only
            // taken for as long as the request lasts.
            let waited = self.inner.budget.acquire().await;
            let turn = self.inner.in_flight.acquire().await;
            let started = Instant::now();
            let sink: Option<&mut dyn Elements> = match &mut elements {
                Some(e) => Some(&mut **e),
                None => None,
            };
            // Boxed: an attempt holds the request, the answer and its reader, and every
            // caller up to the reconciles would carry them inline.
            let result = Box::pin(self.attempt(call, sink)).await;
            drop(turn);
            let elapsed = started.elapsed();
            if let Some(observer) = &self.inner.options.observer {
                let (status, error, query_id) = match &result {
                    Ok(reply) => (Some(reply.status), None, reply.query_id.as_deref()),
                    Err(e) => (e.status(), Some(e.category()), e.query_id()),
                };
                observer.attempt(&Attempt {
                    method: &call.method,
                    route: call.route,
                    status,
                    error,
                    query_id,
                    elapsed,
                    budget_wait: waited,
                    retries,
                });
            }
            let error = match result {
                Ok(reply) => {
                    tracing::debug!(
                        method = %call.method, route = call.route, status = reply.status,
                        query_id = reply.query_id.as_deref().unwrap_or(""),
                        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                        budget_wait_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                        "OVH request"
                    );
                    return Ok(reply);
                }
                Err(e) => e,
            };
            tracing::debug!(
                method = %call.method, route = call.route, status = error.status(), category = error.category(),
                query_id = error.query_id().unwrap_or(""), retries, "OVH request failed"
            );
            if let OvhError::Api(api) = &error {
                if call.signed && !clock_reread && api.is_clock_or_signature() && self.is_signing()
                {
                    clock_reread = true;
                    *self.inner.time_offset.lock().await = None;
                    continue;
                }
                if api.status == 401 && !token_renewed && self.is_oauth2() {
                    token_renewed = true;
                    *self.inner.token.lock().await = None;
                    continue;
                }
            }
            // An oversized answer is not asked for again at once: it would come back as large
            // (the caller backs off instead).
            if call.method == Method::POST
                || !error.is_retryable()
                || matches!(error, OvhError::TooLarge { .. })
            {
                return Err(error);
            }
            let Some(delay) =
                self.inner
                    .options
                    .retry
                    .delay(retries, error.retry_after(), rand::random::<f64>())
            else {
                return Err(error);
            };
            retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    fn is_signing(&self) -> bool {
        matches!(self.inner.credentials.auth, Auth::Application { .. })
    }

    fn is_oauth2(&self) -> bool {
        matches!(self.inner.credentials.auth, Auth::OAuth2 { .. })
    }

    async fn attempt(
        &self,
        call: &Call,
        elements: Option<&mut dyn Elements>,
    ) -> Result<Reply, OvhError> {
        let mut url = reqwest::Url::parse(&self.inner.credentials.endpoint.url_for(&call.path))
            .map_err(|e| OvhError::Setup(format!("invalid URL for {}: {e}", call.route)))?;
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .header("Accept", "application/json");
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &call.body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.clone());
        }
        if call.signed {
            match &self.inner.credentials.auth {
                Auth::Application {
                    application_key,
                    application_secret,
                    consumer_key,
                } => {
                    let timestamp = self.server_time().await?;
                    // The signed URL is the one reqwest sends: `url` after the `Url` parser's
                    // normalisation, query string included.
                    let body = call.body.as_deref().unwrap_or_default();
                    let signature = signing::signature(
                        application_secret.expose(),
                        consumer_key.expose(),
                        call.method.as_str(),
                        url.as_str(),
                        body,
                        timestamp,
                    );
                    request = request
                        .header("X-Ovh-Application", application_key)
                        .header("X-Ovh-Consumer", sensitive(consumer_key.expose())?)
                        .header("X-Ovh-Timestamp", timestamp.to_string())
                        .header("X-Ovh-Signature", sensitive(&signature)?);
                }
                Auth::OAuth2 { .. } => {
                    let token = self.bearer_token().await?;
                    request = request.header(
                        "Authorization",
                        sensitive(&format!("Bearer {}", token.expose()))?,
                    );
                }
            }
        } else if let Auth::Application {
            application_key, ..
        } = &self.inner.credentials.auth
        {
            request = request.header("X-Ovh-Application", application_key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(call, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if response.status().is_redirection() {
            return Err(redirected(call, status, &headers, &url));
        }
        let query_id = headers
            .get("x-ovh-queryid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let (Some(elements), true) = (elements, status < 400) {
            elements.restart();
            read_elements(response, elements)
                .await
                .map_err(|e| e.for_call(call, status))?;
            return Ok(Reply {
                status,
                headers,
                body: Bytes::new(),
                query_id,
            });
        }
        let body = read_body(response)
            .await
            .map_err(|e| e.for_call(call, status))?;
        if status >= 400 {
            return Err(OvhError::Api(Box::new(api_error(
                call, status, &headers, &body, query_id,
            ))));
        }
        Ok(Reply {
            status,
            headers,
            body,
            query_id,
        })
    }

    /// The current OVH server time, from the local clock and the offset read once from
    /// `GET /auth/time` (read again after a clock or signature error).
    async fn server_time(&self) -> Result<i64, OvhError> {
        let mut offset = self.inner.time_offset.lock().await;
        let local = unix_now();
        if let Some(o) = *offset {
            return Ok(local + o);
        }
        let server = self.fetch_server_time().await?;
        let local = unix_now();
        let o = server - local;
        if o.abs() > 1 {
            tracing::info!(
                offset_seconds = o,
                "local clock differs from OVH's; using OVH's time for signatures"
            );
        }
        *offset = Some(o);
        Ok(local + o)
    }

    /// `GET /auth/time`: a bare integer, unauthenticated.
    async fn fetch_server_time(&self) -> Result<i64, OvhError> {
        let call = Call {
            signed: false,
            ..Call::new(Method::GET, "/auth/time", "/auth/time")
        };
        let url = reqwest::Url::parse(&self.inner.credentials.endpoint.url_for(&call.path))
            .map_err(|e| OvhError::Setup(format!("invalid URL for {}: {e}", call.route)))?;
        let response = self
            .inner
            .http
            .get(url.clone())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&call, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if response.status().is_redirection() {
            return Err(redirected(&call, status, &headers, &url));
        }
        let body = read_body(response)
            .await
            .map_err(|e| e.for_call(&call, status))?;
        let query_id = headers
            .get("x-ovh-queryid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status >= 400 {
            return Err(OvhError::Api(Box::new(api_error(
                &call, status, &headers, &body, query_id,
            ))));
        }
        Reply {
            status,
            headers,
            body,
            query_id,
        }
        .json(&call)
    }

    /// An OAuth2 access token, fetched with the client-credentials flow and renewed a minute
    /// (or a tenth of its lifetime) before it expires.
    async fn bearer_token(&self) -> Result<SecretString, OvhError> {
        let Auth::OAuth2 {
            client_id,
            client_secret,
        } = &self.inner.credentials.auth
        else {
            return Err(OvhError::Setup("not OAuth2 credentials".into()));
        };
        let mut cached = self.inner.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.value.clone());
        }
        let token_url = self.inner.credentials.endpoint.token_url().ok_or_else(|| {
            OvhError::Setup(format!(
                "OAuth2 is not offered by endpoint {}",
                self.inner.credentials.endpoint
            ))
        })?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("scope", "all"),
        ];
        let response = self
            .inner
            .http
            .post(token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| OvhError::Token {
                status: None,
                message: format!("{}: {}", classify_transport(&e), error_chain(&e)),
            })?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = redirect_origin(response.headers(), token_url)
                .map(|o| format!(" to {o}"))
                .unwrap_or_default();
            return Err(OvhError::Token {
                status: Some(status),
                message: format!(
                    "the token endpoint answered with a redirect{to}, not followed: OVH does not redirect; check the endpoint and tokenUrl"
                ),
            });
        }
        let body = read_body(response).await.map_err(|e| OvhError::Token {
            status: Some(status),
            message: match e {
                BodyError::TooLarge => {
                    format!("answer larger than {} MiB", MAX_ANSWER_BYTES >> 20)
                }
                BodyError::Transport(e) => error_chain(&e),
            },
        })?;
        if status >= 400 {
            let e: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            let message = if e.error.is_empty() {
                snippet(&body, 240)
            } else {
                crate::text::cut(
                    format!("{}: {}", e.error, e.error_description),
                    API_MESSAGE_LIMIT,
                )
            };
            return Err(OvhError::Token {
                status: Some(status),
                message,
            });
        }
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| OvhError::Token {
            status: Some(status),
            message: format!("unreadable token answer: {e}"),
        })?;
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(3600));
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        *cached = Some(CachedToken {
            value: reply.access_token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(reply.access_token)
    }
}

/// The error for a 3xx answer, which is never followed.
fn redirected(call: &Call, status: u16, headers: &HeaderMap, url: &reqwest::Url) -> OvhError {
    OvhError::Redirected {
        method: call.method.to_string(),
        route: call.route.to_owned(),
        path: call.path.clone(),
        status,
        location: redirect_origin(headers, url),
    }
}

/// Where a redirect points, as scheme, host and port only: its path and query string are
/// left out, as they could carry anything.
fn redirect_origin(headers: &HeaderMap, base: &reqwest::Url) -> Option<String> {
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    let target = base.join(location).ok()?;
    target
        .has_host()
        .then(|| target.origin().ascii_serialization())
}

/// Why an answer's body could not be read.
enum BodyError {
    /// Longer than [`MAX_ANSWER_BYTES`], declared or as it arrived (for a list: one element
    /// longer than that, or the whole longer than [`MAX_LIST_BYTES`]).
    TooLarge,
    Transport(reqwest::Error),
}

impl BodyError {
    fn for_call(self, call: &Call, status: u16) -> OvhError {
        match self {
            Self::TooLarge => OvhError::TooLarge {
                method: call.method.to_string(),
                route: call.route.to_owned(),
                path: call.path.clone(),
                status,
            },
            Self::Transport(e) => transport_error(call, &e),
        }
    }
}

/// Why a list answer could not be read.
enum ListError {
    Body(BodyError),
    /// Not one JSON array; with its first bytes.
    NotAList {
        head: Vec<u8>,
        why: &'static str,
    },
    /// An element that does not decode, with its text.
    Element {
        error: serde_json::Error,
        text: Vec<u8>,
    },
}

impl ListError {
    fn for_call(self, call: &Call, status: u16) -> OvhError {
        match self {
            Self::Body(e) => e.for_call(call, status),
            Self::NotAList { head, why } => OvhError::Decode {
                method: call.method.to_string(),
                route: call.route.to_owned(),
                path: call.path.clone(),
                status,
                message: format!("expected a JSON array: {why}"),
                excerpt: snippet(&head, 120),
            },
            Self::Element { error, text } => decode_error(call, status, &error, &text),
        }
    }
}

/// The largest list answer read element by element, in bytes: never held whole, but a list
/// that long (fifty thousand accounts) is a fault.
pub const MAX_LIST_BYTES: usize = 64 << 20;

/// What [`OvhClient::execute_list`] hands a list answer to.
pub trait Elements: Send {
    /// A new attempt begins: what an earlier one handed over is to be forgotten.
    fn restart(&mut self);
    /// The next element of the answer's array, as JSON text.
    fn element(&mut self, json: &[u8]) -> Result<(), serde_json::Error>;
}

/// Reads a list answer chunk by chunk, handing each element of its array to `elements` as
/// soon as it is whole; only the element being read is held as text.
async fn read_elements(
    mut response: reqwest::Response,
    elements: &mut dyn Elements,
) -> Result<(), ListError> {
    use super::json_array::{Fed, SplitError, Splitter};
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_LIST_BYTES as u64 {
        return Err(ListError::Body(BodyError::TooLarge));
    }
    let mut splitter = Splitter::new(MAX_ANSWER_BYTES);
    let mut head: Vec<u8> = Vec::new();
    let mut read = 0usize;
    let not_a_list = |head: Vec<u8>, e: SplitError| match e {
        SplitError::ElementTooLarge => ListError::Body(BodyError::TooLarge),
        SplitError::NotAnArray => ListError::NotAList {
            head,
            why: "it is something else",
        },
        SplitError::Truncated => ListError::NotAList {
            head,
            why: "it ends before its closing bracket",
        },
    };
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ListError::Body(BodyError::Transport(e)))?
    {
        read += chunk.len();
        if read > MAX_LIST_BYTES {
            return Err(ListError::Body(BodyError::TooLarge));
        }
        if head.len() < 240 {
            head.extend_from_slice(&chunk[..chunk.len().min(240 - head.len())]);
        }
        splitter
            .feed(&chunk, |text| {
                elements.element(text).map_err(|error| ListError::Element {
                    error,
                    text: text.to_vec(),
                })
            })
            .map_err(|e| match e {
                Fed::Split(e) => not_a_list(std::mem::take(&mut head), e),
                Fed::Element(e) => e,
            })?;
    }
    splitter.finish().map_err(|e| not_a_list(head, e))
}

/// Reads a body of at most [`MAX_ANSWER_BYTES`], chunk by chunk: a longer one is refused as
/// soon as its `Content-Length` or its running count says so, and the rest is never read
/// (dropping the response closes the connection). The client's timeout covers the whole
/// read, so a body that trickles in forever times out too.
async fn read_body(mut response: reqwest::Response) -> Result<Bytes, BodyError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_ANSWER_BYTES as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body =
        bytes::BytesMut::with_capacity(usize::try_from(declared).unwrap_or(MAX_ANSWER_BYTES));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A header value that HTTP libraries print as `Sensitive`, whatever their log level.
fn sensitive(value: &str) -> Result<reqwest::header::HeaderValue, OvhError> {
    let mut v = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        OvhError::Setup("a credential holds characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn classify_transport(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else if e.is_request() || e.is_body() || e.is_decode() {
        TransportKind::Interrupted
    } else {
        TransportKind::Other
    }
}

/// reqwest's message with its causes ("error sending request: connection closed …").
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn transport_error(call: &Call, e: &reqwest::Error) -> OvhError {
    OvhError::Transport {
        method: call.method.to_string(),
        route: call.route.to_owned(),
        path: call.path.clone(),
        kind: classify_transport(e),
        message: error_chain(e),
    }
}

pub(super) fn api_error(
    call: &Call,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    query_id: Option<String>,
) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (class, message, error_code) = match parsed {
        Some(b) if !b.message.is_empty() || b.class.is_some() => (
            b.class.map(|c| crate::text::cut(c, 200)),
            bounded_api_message(call, status, query_id.as_deref(), b.message),
            b.error_code.map(|c| crate::text::cut(c, 200)),
        ),
        // Overloaded front ends answer HTML (e.g. a 408 page): keep a short, readable excerpt.
        _ => (None, snippet(body, 240), None),
    };
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    ApiError {
        method: call.method.to_string(),
        route: call.route.to_owned(),
        path: call.path.clone(),
        status,
        class,
        message,
        error_code,
        query_id,
        retry_after,
    }
}

/// OVH's error text, cut to [`API_MESSAGE_LIMIT`]; a longer one is logged whole, at debug
/// level only.
fn bounded_api_message(
    call: &Call,
    status: u16,
    query_id: Option<&str>,
    message: String,
) -> String {
    if message.len() <= API_MESSAGE_LIMIT {
        return message;
    }
    tracing::debug!(
        method = %call.method, route = call.route, status, query_id = query_id.unwrap_or(""),
        message = %message, "OVH error text, whole"
    );
    crate::text::cut(message, API_MESSAGE_LIMIT)
}

/// The error for an answer that does not decode as the call's type: serde's reason (its
/// middle left out when long: a mistyped value may be megabytes of text) and the start of
/// the answer, both short.
pub(super) fn decode_error(
    call: &Call,
    status: u16,
    error: &serde_json::Error,
    body: &[u8],
) -> OvhError {
    OvhError::Decode {
        method: call.method.to_string(),
        route: call.route.to_owned(),
        path: call.path.clone(),
        status,
        message: crate::text::elide_middle(&error.to_string(), 240).into_owned(),
        excerpt: snippet(body, 120),
    }
}

/// The start of a body as one line of text of at most `max_bytes`: tags, control characters
/// and runs of white space become single spaces, and a longer text ends in `…`.
fn snippet(body: &[u8], max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut line = String::new();
    let mut in_tag = false;
    let mut more = false;
    for c in text.chars() {
        let c = match c {
            '<' => {
                in_tag = true;
                continue;
            }
            '>' => {
                in_tag = false;
                ' '
            }
            _ if in_tag => continue,
            c if c.is_whitespace() || c.is_control() => ' ',
            c => c,
        };
        if c == ' ' && (line.is_empty() || line.ends_with(' ')) {
            continue;
        }
        if line.len() + c.len_utf8() > max_bytes {
            more = true;
            break;
        }
        line.push(c);
    }
    let mut line = line.trim_end().to_owned();
    if more {
        while line.len() + '…'.len_utf8() > max_bytes {
            line.pop();
        }
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_huge_error_message_is_cut_in_the_error() {
        let call = Call::new(
            Method::POST,
            "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector",
            "/email/exchange/org-1/service/svc-1/sendConnector",
        );
        let body = serde_json::json!({
            "class": "Client::BadRequest",
            "message": format!("Invalid parameter: {}", "x".repeat(3 << 20)),
        })
        .to_string();
        let e = api_error(&call, 400, &HeaderMap::new(), body.as_bytes(), None);
        assert!(e.message.len() <= 4096, "{}", e.message.len());
        assert!(e.message.starts_with("Invalid parameter: xxx"));
        assert!(e.to_string().len() <= 4096 + 200);
        assert_eq!(e.class.as_deref(), Some("Client::BadRequest"));
    }

    #[test]
    fn html_bodies_become_one_readable_line() {
        let body = b"<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n";
        assert_eq!(
            snippet(body, 240),
            "408 Request Time-out Your browser didn't send a complete request in time."
        );
    }
}
