//! The kstatus triple (`Ready`, `Reconciling`, `Stalled`) from one verdict, and status
//! writes that happen only when something changed.
use super::error::Error;
use crate::crd::{Condition, ConditionStatus, FIELD_MANAGER, reasons, set_condition, types};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a resource stands after a reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// OVH matches the spec.
    Ready(String),
    /// Work is under way or will be retried by itself (a task runs, a backoff is scheduled).
    Progressing {
        reason: &'static str,
        message: String,
    },
    /// Nothing will change until someone changes the spec, a Secret or OVH.
    Stalled {
        reason: &'static str,
        message: String,
    },
    /// Paused by annotation: neither progress nor failure (Ready=False reason `Paused`).
    Paused(String),
    /// `--dry-run`: the calls are planned in `status.plan`, nothing is written (Ready=False
    /// reason `DryRun`).
    Planned(String),
}

impl Verdict {
    /// The first word on a new resource, before OVH has answered anything.
    pub fn waiting_for_ovh() -> Self {
        Self::Progressing {
            reason: reasons::PROGRESSING,
            message: "reconciling: waiting for OVH".into(),
        }
    }
}

/// A spec the operator refuses to act on (it breaks a rule of the CRD, or names another
/// Exchange service than its connector's): Stalled, nothing sent to OVH, looked at again on
/// a spec change or the slow safety timer.
pub fn invalid_spec(
    ctx: &super::context::Context,
    why: &impl std::fmt::Display,
) -> (Verdict, kube::runtime::controller::Action) {
    (
        Verdict::Stalled {
            reason: reasons::INVALID_SPEC,
            message: format!("{why}; nothing is sent to OVH until the spec is fixed"),
        },
        kube::runtime::controller::Action::requeue(ctx.config.stalled_retry),
    )
}

/// Sets the three conditions; returns whether any changed.
pub fn apply(
    conditions: &mut Vec<Condition>,
    verdict: &Verdict,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let (ready, reconciling, stalled, reason, message) = match verdict {
        Verdict::Ready(m) => (true, false, false, reasons::READY, m.as_str()),
        Verdict::Progressing { reason, message } => (false, true, false, *reason, message.as_str()),
        Verdict::Stalled { reason, message } => (false, false, true, *reason, message.as_str()),
        Verdict::Paused(m) => (false, false, false, reasons::PAUSED, m.as_str()),
        Verdict::Planned(m) => (false, false, false, reasons::DRY_RUN, m.as_str()),
    };
    let make = |type_: &str, on: bool, reason: &str, message: &str| {
        Condition::new(type_, ConditionStatus::from(on), reason, message)
            .with_generation(generation)
    };
    let mut changed = set_condition(conditions, make(types::READY, ready, reason, message), now);
    let (r_reason, r_message) = if reconciling {
        (reason, message)
    } else {
        (reasons::READY, "")
    };
    changed |= set_condition(
        conditions,
        make(types::RECONCILING, reconciling, r_reason, r_message),
        now,
    );
    let (s_reason, s_message) = if stalled {
        (reason, message)
    } else {
        (reasons::READY, "")
    };
    changed |= set_condition(
        conditions,
        make(types::STALLED, stalled, s_reason, s_message),
        now,
    );
    changed
}

/// The verdict for an error: retryable ones keep reconciling, terminal ones stall.
pub fn verdict_for(error: &Error) -> Verdict {
    let message = error.to_string();
    if error.is_retryable() {
        Verdict::Progressing {
            reason: error.reason(),
            message,
        }
    } else {
        Verdict::Stalled {
            reason: error.reason(),
            message,
        }
    }
}

/// Writes `status` with server-side apply on `/status`, unless it equals `old`.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(status) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::Kube {
        action: "write status",
        source,
    })?;
    Ok(true)
}

pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// The `resourceVersion` of a Secret (`-` when it does not exist), read as metadata only.
pub async fn secret_version(client: &kube::Client, namespace: &str, name: &str) -> String {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_metadata_opt(name).await {
        Ok(Some(m)) => m.metadata.resource_version.unwrap_or_default(),
        Ok(None) => "-".to_owned(),
        // Unknown: never equal to a recorded value, so the resource is retried.
        Err(_) => format!("?{}", rand::random::<u64>()),
    }
}
