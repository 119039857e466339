//! Switches for every behaviour the reference marks as inferred, and the faults injected on
//! demand. Both are serde (camelCase) so the admin API and a YAML file can set them.
use serde::{Deserialize, Serialize};

/// Which error a request whose `X-Ovh-Timestamp` is outside the tolerated skew gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum StaleTimestampError {
    /// 400 `INVALID_SIGNATURE` "Invalid signature" (community reports of skewed clocks).
    #[default]
    InvalidSignature,
    /// 403 `INVALID_KEY` "This application key is invalid" (another community report).
    InvalidKey,
}

/// Behaviour switches. Defaults are the most likely real behaviour.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)]
pub struct Settings {
    /// Seconds a new task stays `todo`.
    pub task_todo_seconds: f64,
    /// Seconds a task then stays `doing` before it ends.
    pub task_doing_seconds: f64,
    /// Finished tasks answer 404 at once instead of staying readable.
    pub vanishing_tasks: bool,
    /// How long finished tasks stay readable (and listed) when they do not vanish.
    pub task_retention_seconds: u64,
    /// `GET P/task` and `GET P/account/{a}/tasks` list finished tasks too.
    pub task_list_includes_finished: bool,
    /// `PUT P/sendConnector/{id}` runs a `setSendConnector` task.
    pub put_connector_creates_task: bool,
    /// `PUT P/account/{a}` runs a `setAccount` task.
    pub put_account_creates_task: bool,
    /// The task function `changeAuthentication` produces.
    pub change_authentication_function: String,
    /// `spamAndVirusConfiguration.deleteVirus: false` in an account PUT is rejected with 400.
    pub reject_delete_virus_false: bool,
    /// An account PUT without `spamAndVirusConfiguration` is rejected with 400.
    pub reject_partial_account_put: bool,
    /// Deleting a connector still used by an account or a domain default is rejected (403);
    /// when off, those references fall back to 0 when the delete task finishes.
    pub reject_delete_of_used_connector: bool,
    /// A new connector shows in `GET P/sendConnector` only once its creation task is done.
    pub list_connector_when_created: bool,
    /// Read-only keys in a PUT body are rejected with 400 instead of ignored.
    pub reject_read_only_keys: bool,
    /// A mutation of an object whose task is still running is rejected with 409.
    pub reject_mutation_while_pending: bool,
    /// `X-Ovh-Batch` is honoured on single-object GETs; when off the header is ignored.
    pub batch: bool,
    /// With batch on, a missing key fails the whole call with 404 instead of an element error.
    pub batch_missing_key_fails: bool,
    /// `X-Pagination-Mode: CachedObjectList-Pages` is honoured on list routes.
    pub iceberg: bool,
    /// Tolerated difference between `X-Ovh-Timestamp` and the server clock.
    pub timestamp_tolerance_seconds: i64,
    /// The error a stale timestamp gets.
    pub stale_timestamp_error: StaleTimestampError,
    /// In access rules, `*` also matches `/` (OVH's behaviour); when off it stops at `/`.
    pub access_rule_star_matches_slash: bool,
    /// `expires_in` of OAuth2 tokens, and how long they are accepted.
    pub oauth2_token_expires_in_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            task_todo_seconds: 0.2,
            task_doing_seconds: 0.5,
            vanishing_tasks: false,
            task_retention_seconds: 48 * 3600,
            task_list_includes_finished: true,
            put_connector_creates_task: true,
            put_account_creates_task: true,
            change_authentication_function: "setSendConnector".to_owned(),
            reject_delete_virus_false: true,
            reject_partial_account_put: false,
            reject_delete_of_used_connector: false,
            list_connector_when_created: false,
            reject_read_only_keys: false,
            reject_mutation_while_pending: false,
            batch: true,
            batch_missing_key_fails: false,
            iceberg: true,
            timestamp_tolerance_seconds: 300,
            stale_timestamp_error: StaleTimestampError::InvalidSignature,
            access_rule_star_matches_slash: true,
            oauth2_token_expires_in_seconds: 3599,
        }
    }
}

impl Settings {
    pub fn from_yaml(yaml: &str) -> Result<Self, serde_saphyr::Error> {
        serde_saphyr::from_str(yaml)
    }
}

/// Faults injected into API requests (never into `/_simulator/`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every API request before it is handled.
    pub latency_ms: u64,
    /// Seed of the dice that decide which requests a rule with a `probability` hits: the same
    /// seed and the same requests give the same faults, so a failing run can be replayed.
    /// Absent: seeded from the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The first rule that matches a request (and wins its probability roll) applies.
    pub rules: Vec<FaultRule>,
}

/// One fault: which requests it hits, what happens, how many times.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Substring of the request path (as received, without the query) to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    pub kind: FaultKind,
    /// How many more requests it hits; `None` means forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    /// Chance (0..=1) that a matching request is hit; always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl FaultKind {
    /// The kind's name, as in its JSON form.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status500 => "status500",
            Self::TooManyRequests { .. } => "tooManyRequests",
            Self::Status400 { .. } => "status400",
            Self::Html408 => "html408",
            Self::ConnectionReset => "connectionReset",
            Self::Timeout => "timeout",
            Self::LoseResponse => "loseResponse",
            Self::Latency { .. } => "latency",
        }
    }
}

impl FaultRule {
    /// A rule hitting every request, forever.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            method: None,
            path_contains: None,
            kind,
            remaining: None,
            probability: None,
        }
    }

    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    #[must_use]
    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    #[must_use]
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 500 `{"class":"Server::InternalServerError","message":"Internal server error"}`.
    Status500,
    /// 429 with `Retry-After` and `{"class":"Client::TooManyRequests","message":"Too many requests"}`.
    #[serde(rename_all = "camelCase")]
    TooManyRequests { retry_after_seconds: u64 },
    /// 400 `{"class":"Client::BadRequest","message":…}` whose message is `messageBytes` long:
    /// an error text far larger than any real one.
    #[serde(rename_all = "camelCase")]
    Status400 { message_bytes: usize },
    /// 408 with the HTML body seen from OVH's front end under load.
    Html408,
    /// The connection is closed without any response; nothing is applied.
    ConnectionReset,
    /// No answer at all: the connection is held until the client gives up (or 10 minutes).
    Timeout,
    /// The request is applied, then the connection is closed without any response.
    LoseResponse,
    /// The request is handled normally, after this much extra latency (a spike).
    #[serde(rename_all = "camelCase")]
    Latency { ms: u64 },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_in_camel_case() {
        let faults = Faults {
            latency_ms: 5,
            seed: None,
            rules: vec![
                FaultRule::new(FaultKind::TooManyRequests {
                    retry_after_seconds: 3,
                })
                .method("GET")
                .times(2),
                FaultRule::new(FaultKind::Html408),
                FaultRule::new(FaultKind::Status400 { message_bytes: 10 }),
            ],
        };
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(
            json["rules"][0]["kind"],
            serde_json::json!({"tooManyRequests": {"retryAfterSeconds": 3}})
        );
        assert_eq!(json["rules"][1]["kind"], "html408");
        assert_eq!(
            json["rules"][2]["kind"],
            serde_json::json!({"status400": {"messageBytes": 10}})
        );
        let back: Faults = serde_json::from_value(json).unwrap();
        assert_eq!(back, faults);
    }

    #[test]
    fn settings_from_partial_yaml() {
        let s = Settings::from_yaml("vanishingTasks: true\ntaskTodoSeconds: 1.5\n").unwrap();
        assert!(s.vanishing_tasks);
        assert!((s.task_todo_seconds - 1.5).abs() < f64::EPSILON);
        assert!(s.batch);
        assert!(Settings::from_yaml("noSuchSwitch: true\n").is_err());
    }
}
