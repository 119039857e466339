//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! reconciles (writes to OVH and to status) at a time.
//!
//! Every change to the Lease is a `replace` that carries the `resourceVersion` it was read at,
//! so two instances can never both believe they took it. The holder renews every third of the
//! lease duration. Another instance takes over only when the holder's `renewTime +
//! leaseDurationSeconds` has passed *and* it has itself seen the Lease unchanged for that long
//! (so a clock that runs ahead cannot steal a live lease). A holder that cannot renew within
//! two thirds of the duration gives up first, a third of the duration before anyone may take
//! over; the operator then stops its controllers and exits with an error so that Kubernetes
//! restarts it as a standby. A holder that stops normally (SIGTERM) releases the Lease so a
//! standby takes over at once.
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Duration;
use tokio::time::Instant;

/// The Lease's name unless told otherwise.
pub const DEFAULT_LEASE_NAME: &str = "sendconnector-operator";

/// Leader election settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This instance's name in `holderIdentity`; unique among the replicas.
    pub identity: String,
    /// How long a Lease holds without renewal (whole seconds on the Lease, rounded up).
    pub lease_duration: Duration,
}

impl LeaderElection {
    pub fn new(
        namespace: impl Into<String>,
        identity: impl Into<String>,
        lease_duration: Duration,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: DEFAULT_LEASE_NAME.to_owned(),
            identity: identity.into(),
            lease_duration,
        }
    }

    /// The identity of this process: `POD_NAME` when set, else the host name with a random
    /// suffix (two processes on one host stay distinct).
    pub fn default_identity(env: impl Fn(&str) -> Option<String>) -> String {
        if let Some(pod) = env("POD_NAME").filter(|p| !p.trim().is_empty()) {
            return pod.trim().to_owned();
        }
        let host = env("HOSTNAME")
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "sendconnector-operator".to_owned());
        format!("{host}-{:08x}", rand::random::<u32>())
    }

    /// The Lease's namespace: `POD_NAMESPACE` when set, else `default`.
    pub fn default_namespace(env: impl Fn(&str) -> Option<String>) -> String {
        env("POD_NAMESPACE")
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// How often the holder renews, and a standby looks.
    pub fn retry_period(&self) -> Duration {
        self.lease_duration / 3
    }

    /// How long after its last renewal a holder that cannot renew gives up.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    fn duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// Why this instance no longer leads.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipLost {
    #[error("Lease {namespace}/{name} is now held by {holder}")]
    TakenBy {
        namespace: String,
        name: String,
        holder: String,
    },
    #[error(
        "Lease {namespace}/{name} could not be renewed within {deadline_ms} ms of the last renewal ({last_error})"
    )]
    NotRenewed {
        namespace: String,
        name: String,
        deadline_ms: u128,
        last_error: String,
    },
}

/// One look at the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// This instance holds it (just created, taken or renewed).
    Leading,
    /// Another instance holds it and may still be alive.
    HeldBy(String),
    /// Someone changed it between our read and our write: look again.
    Raced,
}

/// One instance's side of the election.
pub struct Leader {
    api: Api<Lease>,
    settings: LeaderElection,
    /// The Lease's resourceVersion when last read, and when we first saw that version.
    observed: Option<(String, Instant)>,
    /// When the last successful write of ours was sent.
    renewed_at: Option<Instant>,
    /// The holder last reported, to log a change once.
    last_holder: Option<String>,
}

impl Leader {
    pub fn new(client: Client, settings: LeaderElection) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            renewed_at: None,
            last_holder: None,
        }
    }

    pub fn settings(&self) -> &LeaderElection {
        &self.settings
    }

    /// Waits until this instance holds the Lease. Errors are logged and retried.
    pub async fn acquire(&mut self) {
        tracing::info!(
            lease = %self.lease(),
            identity = self.settings.identity,
            "waiting to lead"
        );
        loop {
            match self.try_once().await {
                Ok(Outcome::Leading) => {
                    tracing::info!(
                        lease = %self.lease(),
                        identity = self.settings.identity,
                        "leading"
                    );
                    return;
                }
                Ok(Outcome::HeldBy(holder)) => {
                    if self.last_holder.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.lease(), holder, "another instance leads; standing by");
                        self.last_holder = Some(holder);
                    }
                }
                Ok(Outcome::Raced) => continue,
                Err(e) => {
                    tracing::warn!(lease = %self.lease(), error = %e, "cannot read or take the Lease; retrying");
                }
            }
            let jitter = 0.9 + rand::random::<f64>() * 0.2;
            tokio::time::sleep(self.settings.retry_period().mul_f64(jitter)).await;
        }
    }

    /// Renews the Lease until that fails; returns why this instance no longer leads. Call
    /// only after [`Self::acquire`].
    pub async fn hold(&mut self) -> LeadershipLost {
        let retry = self.settings.retry_period();
        let mut last_error = String::from("no answer");
        let mut next = self.renewed_at.unwrap_or_else(Instant::now) + retry;
        loop {
            let renewed_at = self.renewed_at.unwrap_or_else(Instant::now);
            let deadline = renewed_at + self.settings.renew_deadline();
            tokio::time::sleep_until(next.min(deadline)).await;
            if Instant::now() >= deadline {
                return self.not_renewed(last_error);
            }
            match tokio::time::timeout_at(deadline, self.try_once()).await {
                Err(_) => return self.not_renewed("the request did not finish in time".into()),
                Ok(Ok(Outcome::Leading)) => {
                    next = self.renewed_at.unwrap_or_else(Instant::now) + retry;
                }
                Ok(Ok(Outcome::HeldBy(holder))) => {
                    return LeadershipLost::TakenBy {
                        namespace: self.settings.namespace.clone(),
                        name: self.settings.lease_name.clone(),
                        holder,
                    };
                }
                Ok(Ok(Outcome::Raced)) => {
                    last_error = "the Lease changed under us".into();
                    next = Instant::now();
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lease(), error = %e, "cannot renew the Lease; retrying");
                    last_error = e.to_string();
                    next = Instant::now() + retry / 4;
                }
            }
        }
    }

    /// Gives the Lease up (on a normal stop) so that a standby takes over at once. Best
    /// effort: on failure the Lease simply expires.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.lease_name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.settings.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lease(), "released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.lease(), error = %e, "cannot release the Lease; it will expire");
            }
        }
        self.renewed_at = None;
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.lease_name)
    }

    fn not_renewed(&self, last_error: String) -> LeadershipLost {
        LeadershipLost::NotRenewed {
            namespace: self.settings.namespace.clone(),
            name: self.settings.lease_name.clone(),
            deadline_ms: self.settings.renew_deadline().as_millis(),
            last_error,
        }
    }

    /// Reads the Lease and creates, takes or renews it when this instance may.
    async fn try_once(&mut self) -> Result<Outcome, kube::Error> {
        let sent = Instant::now();
        let now = jiff::Timestamp::now();
        let name = self.settings.lease_name.clone();
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(self.settings.duration_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.renewed_at = Some(sent);
                    Ok(Outcome::Leading)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Raced),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(v, _)| *v != version) {
            self.observed = Some((version, sent));
        }
        let mut spec = lease.spec.take().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() != Some(self.settings.identity.as_str()) {
            if let Some(holder) = holder.as_ref() {
                if !self.expired(&spec, now) {
                    self.renewed_at = None;
                    return Ok(Outcome::HeldBy(holder.clone()));
                }
                tracing::info!(lease = %self.lease(), previous = holder, "the Lease expired; taking it over");
            }
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.settings.duration_seconds());
        lease.spec = Some(spec);
        // `lease` carries the resourceVersion it was read at: the write fails if anyone
        // changed it since.
        match self
            .api
            .replace(&self.settings.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.renewed_at = Some(sent);
                if let Some(v) = written.metadata.resource_version {
                    self.observed = Some((v, sent));
                }
                Ok(Outcome::Leading)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Raced),
            Err(e) => Err(e),
        }
    }

    /// Whether another holder's Lease has run out: by its own `renewTime` and, so that clock
    /// skew cannot hand it over early, by how long we have seen it unchanged.
    fn expired(&self, spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
        let seconds = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(self.settings.lease_duration.as_secs());
        let duration = Duration::from_secs(seconds);
        let by_renew_time = spec.renew_time.as_ref().is_none_or(|t| {
            jiff::SignedDuration::try_from(duration)
                .ok()
                .and_then(|d| t.0.checked_add(d).ok())
                .is_none_or(|end| end < now)
        });
        let unchanged_long_enough = self
            .observed
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= duration);
        by_renew_time && unchanged_long_enough
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_namespace_from_the_pod() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            LeaderElection::default_identity(env(&[("POD_NAME", "op-7d9f-x2")])),
            "op-7d9f-x2"
        );
        let a = LeaderElection::default_identity(env(&[("HOSTNAME", "laptop")]));
        let b = LeaderElection::default_identity(env(&[("HOSTNAME", "laptop")]));
        assert!(a.starts_with("laptop-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(
            LeaderElection::default_namespace(env(&[("POD_NAMESPACE", "operators")])),
            "operators"
        );
        assert_eq!(LeaderElection::default_namespace(env(&[])), "default");
    }

    #[test]
    fn timings() {
        let s = LeaderElection::new("ns", "me", Duration::from_millis(1500));
        assert_eq!(s.duration_seconds(), 2);
        assert_eq!(s.retry_period(), Duration::from_millis(500));
        assert_eq!(s.renew_deadline(), Duration::from_secs(1));
        assert_eq!(
            LeaderElection::new("ns", "me", Duration::from_secs(15)).duration_seconds(),
            15
        );
    }
}
