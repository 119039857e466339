//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) shared by both resources.
//!
//! The shape follows `metav1.Condition`, so `kubectl wait --for=condition=Ready`, Flux
//! `wait: true` and Argo CD health checks read it unchanged. The helpers are pure: they take
//! the current time as an argument and report whether anything changed, so the controller can
//! skip status writes that would change nothing.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Condition types (kstatus).
pub mod types {
    /// The resource matches its spec on OVH. `kubectl wait --for=condition=Ready` uses it.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec (a task is running, a retry is scheduled).
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress until someone changes the spec, a Secret or OVH.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons: one word in UpperCamelCase, stable, usable in alerts.
pub mod reasons {
    /// Everything matches the spec.
    pub const READY: &str = "Ready";
    /// The `sendconnector.io/paused` annotation is `"true"`: no OVH writes.
    pub const PAUSED: &str = "Paused";
    /// An OVH task ended in `error` or `cancelled`.
    pub const TASK_FAILED: &str = "TaskFailed";
    /// An OVH task is still running; the next step waits for it.
    pub const TASK_PENDING: &str = "TaskPending";
    /// Another resource claims the same connector, mailbox or domain.
    pub const CONFLICT: &str = "Conflict";
    /// Deletion waits for something (bindings that still reference the connector, a task).
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    /// A mailbox named in the spec does not exist on OVH.
    pub const MAILBOX_NOT_FOUND: &str = "MailboxNotFound";
    /// A domain named in the spec does not exist on OVH.
    pub const DOMAIN_NOT_FOUND: &str = "DomainNotFound";
    /// The referenced SendConnector does not exist or has no connector id yet.
    pub const CONNECTOR_NOT_READY: &str = "ConnectorNotReady";
    /// No OVH API credentials are available to this resource.
    pub const NO_CREDENTIALS: &str = "NoCredentials";
    /// A Secret referenced by the spec is missing or lacks the key.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// Work is in progress (creating, updating, polling).
    pub const PROGRESSING: &str = "Progressing";
    /// OVH answered with an error; the message carries its class, text and query id.
    pub const OVH_ERROR: &str = "OvhError";
    /// The spec cannot be carried out as written.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The resource is being deleted.
    pub const DELETING: &str = "Deleting";
    /// The referenced SendConnector is being deleted: no mailbox or domain is attached to it.
    pub const CONNECTOR_DELETING: &str = "ConnectorDeleting";
    /// `--dry-run`: the planned calls are in `status.plan`; nothing was written to OVH.
    pub const DRY_RUN: &str = "DryRun";
}

/// The most a condition message holds, in bytes (so in characters too). Condition messages
/// can carry text from elsewhere (an OVH error, a list of mailboxes); an unbounded one makes
/// the status write fail and shows no condition at all.
pub const MESSAGE_LIMIT: usize = 1024;

/// The value of a condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation about the resource, in the shape of `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: `Ready`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One-word machine-readable reason in UpperCamelCase, e.g. `TaskFailed` or `Conflict`.
    pub reason: String,
    /// Human-readable details: what happened and, when it needs a person, what to do.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (not when the reason or message last changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition without a transition time; [`set_condition`] fills it in.
    pub fn new(
        type_: impl Into<String>,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// Sets `observedGeneration`.
    #[must_use]
    pub fn with_generation(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// A condition message cut to [`MESSAGE_LIMIT`] (with a note of how much was left out):
/// what every condition set through [`set_condition`] holds.
pub fn bounded_message(message: String) -> String {
    crate::text::cut(message, MESSAGE_LIMIT)
}

/// Puts `new` into `conditions`, replacing the condition of the same type; its message is
/// bounded ([`bounded_message`]).
///
/// `lastTransitionTime` is kept when the status did not change and set to `now` when it did
/// (or when the condition is new). Returns whether anything changed, so a caller can skip a
/// status write that would change nothing.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition, now: &Time) -> bool {
    let mut new = new;
    new.message = bounded_message(new.message);
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        new.last_transition_time = Some(now.clone());
        conditions.push(new);
        return true;
    };
    new.last_transition_time = if existing.status == new.status {
        existing
            .last_transition_time
            .clone()
            .or_else(|| Some(now.clone()))
    } else {
        Some(now.clone())
    };
    if *existing == new {
        return false;
    }
    *existing = new;
    true
}

/// Removes the condition of type `type_`; returns whether one was there.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(Condition::is_true)
}

/// The status of the condition of type `type_`, `None` when absent.
pub fn condition_status(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    find_condition(conditions, type_).map(|c| c.status)
}

/// The reason of the condition of type `type_`, `None` when absent.
pub fn condition_reason<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    find_condition(conditions, type_).map(|c| c.reason.as_str())
}

/// Whether `Ready` is `True` and was computed from `generation`: the usual "done" test.
pub fn is_ready_for_generation(conditions: &[Condition], generation: Option<i64>) -> bool {
    find_condition(conditions, types::READY)
        .is_some_and(|c| c.is_true() && c.observed_generation == generation)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn at(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn ready(status: ConditionStatus, reason: &str) -> Condition {
        Condition::new(types::READY, status, reason, "").with_generation(Some(1))
    }

    #[test]
    fn a_new_condition_gets_now_as_its_transition_time() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, reasons::READY),
            &t0
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Some(t0));
    }

    #[test]
    fn transition_time_is_kept_while_the_status_is_unchanged() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        let t1 = at("2025-01-01T00:05:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, reasons::PROGRESSING),
            &t0,
        );

        // Same everything: nothing changes, so nothing needs writing.
        let same = ready(ConditionStatus::False, reasons::PROGRESSING);
        assert!(!set_condition(&mut conditions, same, &t1));
        assert_eq!(conditions[0].last_transition_time, Some(t0.clone()));

        // Same status, new reason and message: updated, transition time kept.
        let mut other = ready(ConditionStatus::False, reasons::TASK_PENDING);
        other.message = "waiting for task 7".into();
        assert!(set_condition(&mut conditions, other, &t1));
        assert_eq!(conditions[0].reason, reasons::TASK_PENDING);
        assert_eq!(conditions[0].message, "waiting for task 7");
        assert_eq!(conditions[0].last_transition_time, Some(t0));
    }

    #[test]
    fn transition_time_moves_when_the_status_flips() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        let t1 = at("2025-01-01T00:05:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, reasons::PROGRESSING),
            &t0,
        );
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, reasons::READY),
            &t1
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, ConditionStatus::True);
        assert_eq!(conditions[0].last_transition_time, Some(t1));
    }

    #[test]
    fn a_new_generation_alone_is_a_change() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, reasons::READY),
            &t0,
        );
        let next = ready(ConditionStatus::True, reasons::READY).with_generation(Some(2));
        assert!(set_condition(
            &mut conditions,
            next,
            &at("2025-01-02T00:00:00Z")
        ));
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, Some(t0));
    }

    #[test]
    fn other_types_are_left_alone() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, reasons::OVH_ERROR),
            &t0,
        );
        let stalled = Condition::new(
            types::STALLED,
            ConditionStatus::True,
            reasons::OVH_ERROR,
            "",
        );
        set_condition(&mut conditions, stalled, &t0);
        assert_eq!(conditions.len(), 2);
        assert_eq!(
            condition_status(&conditions, types::READY),
            Some(ConditionStatus::False)
        );
        assert!(is_condition_true(&conditions, types::STALLED));
        assert_eq!(
            condition_reason(&conditions, types::STALLED),
            Some(reasons::OVH_ERROR)
        );
        assert!(find_condition(&conditions, types::RECONCILING).is_none());

        assert!(remove_condition(&mut conditions, types::STALLED));
        assert!(!remove_condition(&mut conditions, types::STALLED));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn ready_for_generation_needs_true_and_the_same_generation() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        assert!(!is_ready_for_generation(&conditions, Some(1)));
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, reasons::READY),
            &t0,
        );
        assert!(is_ready_for_generation(&conditions, Some(1)));
        assert!(!is_ready_for_generation(&conditions, Some(2)));
    }

    #[test]
    fn messages_are_bounded() {
        let mut conditions = Vec::new();
        let t0 = at("2025-01-01T00:00:00Z");
        let mut huge = ready(ConditionStatus::False, reasons::OVH_ERROR);
        huge.message = format!("OVH API error (HTTP 400): {}", "x".repeat(3 << 20));
        assert!(set_condition(&mut conditions, huge.clone(), &t0));
        let message = &conditions[0].message;
        assert!(message.len() <= MESSAGE_LIMIT, "{}", message.len());
        assert!(message.starts_with("OVH API error (HTTP 400): xxx"));
        assert!(message.ends_with(" more characters)"), "{message}");
        // The same long message again changes nothing: no status write.
        assert!(!set_condition(&mut conditions, huge, &t0));
    }

    #[test]
    fn serializes_like_metav1_condition() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, reasons::READY),
            &at("2025-01-01T00:00:00Z"),
        );
        assert_eq!(
            serde_json::to_value(&conditions[0]).unwrap(),
            serde_json::json!({
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
                "observedGeneration": 1
            })
        );
    }
}
