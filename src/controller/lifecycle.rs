//! What both reconcilers do around their own decisions: the finalizer, Events, what follows a
//! failed attempt (count, log, back off or hold), and the status report with its kstatus
//! conditions, written only when it changed.
use super::conditions::{self, Verdict, now, write_status};
use super::context::Context;
use super::error::Error;
use crate::crd::{
    Condition, FINALIZER, MailboxBindingStatus, RECONCILE_REQUESTED_AT_ANNOTATION,
    SendConnectorStatus,
};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// `namespace/Kind/name`: the key of backoffs, holds and log lines.
pub fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        obj.namespace().unwrap_or_default(),
        K::kind(&()),
        obj.name_any()
    )
}

pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

/// Sets the finalizers, guarded by the object's resourceVersion (a stale copy gets a
/// conflict and is retried rather than overwriting someone else's finalizer).
async fn set_finalizers<K>(
    api: &Api<K>,
    obj: &K,
    finalizers: &[String],
    action: &'static str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::Kube { action, source }),
    }
}

pub async fn add_finalizer<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let with_ours = |obj: &K| {
        let mut finalizers = obj.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        finalizers
    };
    match set_finalizers(api, obj, &with_ours(obj), "add the finalizer").await {
        // The copy is older than the stored object: most often because a reconcile followed
        // the one that added the finalizer before the watch cache showed it, or one of the
        // operator's status writes. Looked at afresh, it either has the finalizer already or
        // gets it on the current version (a second conflict is retried with the reconcile).
        Err(Error::Kube {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 409 => {
            let current = api
                .get(&obj.name_any())
                .await
                .map_err(|source| Error::Kube {
                    action: "read the object to add the finalizer",
                    source,
                })?;
            if has_finalizer(&current) {
                return Ok(());
            }
            set_finalizers(api, &current, &with_ours(&current), "add the finalizer").await
        }
        other => other,
    }
}

/// Removes this operator's finalizer, guarded by the finalizer list itself rather than the
/// resourceVersion: the copy a deletion reconcile holds is often older than this operator's own
/// last status write, which changes the resourceVersion but not the finalizers. Someone else's
/// change to the list in between fails the test and is retried.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    use json_patch::{PatchOperation, RemoveOperation, ReplaceOperation, TestOperation};
    let current = obj.finalizers();
    let remaining: Vec<&String> = current.iter().filter(|f| *f != FINALIZER).collect();
    let list = json_patch::jsonptr::PointerBuf::from_tokens(["metadata", "finalizers"]);
    let change = if remaining.is_empty() {
        PatchOperation::Remove(RemoveOperation { path: list.clone() })
    } else {
        PatchOperation::Replace(ReplaceOperation {
            path: list.clone(),
            value: serde_json::json!(remaining),
        })
    };
    let guarded = json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: list,
            value: serde_json::json!(current),
        }),
        change,
    ]);
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(guarded),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing left to hold.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            action: "remove the finalizer",
            source,
        }),
    }
}

/// Publishes an Event about `obj`; a failure to publish is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let note = event_note(note);
    let fact = super::events::Fact {
        type_,
        reason,
        action,
        note,
    };
    super::events::publish(ctx, obj, fact).await;
}

/// The most an Event's note holds, in bytes: events.k8s.io/v1 refuses longer ones.
const EVENT_NOTE_LIMIT: usize = 1024;

/// An Event's note as Kubernetes takes it: cut to [`EVENT_NOTE_LIMIT`], with a note of how
/// much was left out. Every Event goes through [`publish`] (or, for objects that do not
/// decode, through `decode`), so through this.
pub(super) fn event_note(note: String) -> String {
    crate::text::cut(note, EVENT_NOTE_LIMIT)
}

/// After a failed attempt: counted, logged, and held (see [`Context::held_for`]) for this
/// resource's backoff when it may pass by itself, or for the slow safety timer when it cannot.
pub fn after_error(ctx: &Context, kind: &str, key: &str, e: &Error) -> Action {
    ctx.metrics().reconcile_failed(kind, e.category());
    if e.is_retryable() {
        tracing::debug!(resource = %key, error = %e, "{kind} reconcile will be retried");
        Action::requeue(ctx.next_backoff(key))
    } else {
        tracing::warn!(resource = %key, error = %e, "{kind} reconcile stalled");
        ctx.hold(key, ctx.config.stalled_retry);
        Action::requeue(ctx.config.stalled_retry)
    }
}

/// Runs `work` (a reconcile's OVH part). A resource without any condition yet that is still
/// waiting after `announce_after` (OVH slow to answer, or not answering at all) says so in
/// its status; one that converges sooner, or whose `work` has written a status meanwhile
/// (a creation intent), costs no write for it: written over that status, the announcement
/// would erase what it records. `base`: its status before the reconcile, `None` when it
/// needs no announcement. `work` is not polled while the announcement is written, so the
/// two never write at once.
pub async fn announced_if_slow<K, S, T>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    base: Option<S>,
    work: impl Future<Output = T>,
) -> T
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Report,
{
    let Some(mut base) = base.filter(|_| obj.meta().deletion_timestamp.is_none()) else {
        return work.await;
    };
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = &mut work => out,
        () = tokio::time::sleep(ctx.config.announce_after) => {
            let uid = obj.uid().unwrap_or_default();
            let said = ctx
                .remembered_status::<S>(&uid)
                .is_some_and(|mut s| !s.conditions_mut().is_empty());
            if said {
                return work.await;
            }
            if let Err(e) = announce(ctx, api, obj, &mut base).await {
                tracing::warn!(resource = %obj.name_any(), error = %e, "could not say the resource waits for OVH");
            }
            work.await
        }
    }
}

/// The status a reconcile starts from, and whether it still needs an announcement (no
/// condition yet).
pub fn needs_announcement<S: Report + Clone>(status: &mut S) -> Option<S> {
    status.conditions_mut().is_empty().then(|| status.clone())
}

pub trait Report: Serialize + DeserializeOwned + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// The `reconcile-requested-at` value last handled.
    fn handled(&self) -> Option<&str>;
    fn set_handled(&mut self, generation: Option<i64>, requested_at: Option<String>);
}

/// Whether `status`, the last report of `obj`, says it is at rest: Ready for its current
/// generation, with any requested reconcile handled.
pub fn at_rest<K: Resource, S: Report>(obj: &K, status: &S) -> bool {
    let ready = status.conditions().iter().any(|c| {
        c.type_ == "Ready"
            && c.status == crate::crd::ConditionStatus::True
            && c.observed_generation == obj.meta().generation
    });
    ready
        && status.handled()
            == obj
                .annotations()
                .get(RECONCILE_REQUESTED_AT_ANNOTATION)
                .map(String::as_str)
}

/// The resync tick `obj`'s reconcile starting now answers, if any (see
/// [`Context::resync_wave`]), judged on its last report: the one this process wrote, else
/// `reported`, the one on the object.
pub fn resync_wave<K: Resource, S: Report + Clone>(
    ctx: &Context,
    obj: &K,
    reported: Option<&S>,
) -> Option<tokio::time::Instant> {
    let last: Option<S> = ctx
        .remembered_status(&obj.uid().unwrap_or_default())
        .or_else(|| reported.cloned());
    ctx.resync_wave(last.is_some_and(|s| at_rest(obj, &s)))
}

impl Report for SendConnectorStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn handled(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
    fn set_handled(&mut self, generation: Option<i64>, requested_at: Option<String>) {
        self.observed_generation = generation;
        self.last_handled_reconcile_at = requested_at;
    }
}

impl Report for MailboxBindingStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn handled(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
    fn set_handled(&mut self, generation: Option<i64>, requested_at: Option<String>) {
        self.observed_generation = generation;
        self.last_handled_reconcile_at = requested_at;
    }
}

/// Puts the verdict into the status and writes it (server-side apply on `/status`) unless
/// it equals `old`, or the reconcile deferred it ([`Context::defer_report`]: then it is kept
/// as a draft for the next reconcile); the written status is remembered for the next
/// reconcile.
pub async fn report<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: Option<&S>,
    status: &mut S,
    verdict: &Verdict,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Report,
{
    put_verdict(obj, status, verdict);
    if ctx.keep_draft(&obj.uid().unwrap_or_default(), status) {
        return Ok(());
    }
    write_and_remember(ctx, api, obj, old, status).await
}

/// Writes `status` with the waiting-for-OVH verdict, whatever the reconcile in progress
/// decides about its own report.
async fn announce<K, S>(ctx: &Context, api: &Api<K>, obj: &K, status: &mut S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Report,
{
    put_verdict(obj, status, &Verdict::waiting_for_ovh());
    write_and_remember(ctx, api, obj, None, status).await
}

/// Puts the verdict and the bookkeeping every report carries into the status.
fn put_verdict<K: Resource<DynamicType = ()>, S: Report>(
    obj: &K,
    status: &mut S,
    verdict: &Verdict,
) {
    conditions::apply(
        status.conditions_mut(),
        verdict,
        obj.meta().generation,
        &now(),
    );
    status.set_handled(
        obj.meta().generation,
        obj.annotations()
            .get(RECONCILE_REQUESTED_AT_ANNOTATION)
            .cloned(),
    );
}

/// Writes `status` unless it equals `old`, and remembers it as written.
async fn write_and_remember<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: Option<&S>,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Report,
{
    write_status(api, &obj.name_any(), old, status).await?;
    ctx.remember_status(&obj.uid().unwrap_or_default(), status);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_fit_what_kubernetes_accepts() {
        // events.k8s.io/v1 refuses notes over 1 KiB.
        let note = event_note(format!("dry run, not written: {}", "PUT /x; ".repeat(5000)));
        assert!(note.len() <= 1024, "{}", note.len());
        assert!(note.starts_with("dry run, not written: PUT /x; "));
        assert!(note.ends_with(" more characters)"), "{note}");
        assert_eq!(event_note("attached".into()), "attached");
    }

    /// A connector carrying this operator's finalizer (and `others`), stored in an in-memory
    /// API, and the copy of it a reconcile would hold.
    async fn stored_connector(
        others: &[&str],
    ) -> (Api<crate::crd::SendConnector>, crate::crd::SendConnector) {
        let mut finalizers = vec![FINALIZER];
        finalizers.extend(others);
        stored_connector_with(&finalizers).await
    }

    /// A connector carrying `finalizers` alone, as [`stored_connector`].
    async fn stored_connector_with(
        finalizers: &[&str],
    ) -> (Api<crate::crd::SendConnector>, crate::crd::SendConnector) {
        let server = memory_apiserver::ApiServer::new();
        for crd in crate::crd::crds() {
            server.register_crd(&crd);
        }
        let api: Api<crate::crd::SendConnector> = Api::namespaced(server.client(), "mail");
        let object: crate::crd::SendConnector = serde_json::from_value(serde_json::json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": "relay", "namespace": "mail", "finalizers": finalizers},
            "spec": {"organization": "private-zz111111-1", "smartHost": "smtp.example.com"},
        }))
        .unwrap();
        let held = api
            .create(&kube::api::PostParams::default(), &object)
            .await
            .unwrap();
        (api, held)
    }

    #[tokio::test]
    async fn the_finalizer_goes_even_when_the_held_copy_predates_a_status_write() {
        let (api, held) = stored_connector(&["example.com/other"]).await;
        // The operator's own status write moves the resourceVersion on.
        let status = serde_json::json!({"status": {"state": "ok"}});
        api.patch_status("relay", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        remove_finalizer(&api, &held).await.unwrap();
        let stored = api.get("relay").await.unwrap();
        assert_eq!(stored.finalizers(), ["example.com/other"]);
        // The last finalizer removes the list.
        let (api, held) = stored_connector(&[]).await;
        remove_finalizer(&api, &held).await.unwrap();
        assert!(api.get("relay").await.unwrap().finalizers().is_empty());
    }

    #[tokio::test]
    async fn removing_the_finalizer_never_drops_one_added_since() {
        let (api, held) = stored_connector(&[]).await;
        let added =
            serde_json::json!({"metadata": {"finalizers": [FINALIZER, "example.com/late"]}});
        api.patch("relay", &PatchParams::default(), &Patch::Merge(&added))
            .await
            .unwrap();
        let refused = remove_finalizer(&api, &held).await;
        assert!(refused.is_err(), "{refused:?}");
        let stored = api.get("relay").await.unwrap();
        assert_eq!(stored.finalizers(), [FINALIZER, "example.com/late"]);
    }

    #[tokio::test]
    async fn a_copy_older_than_the_finalizer_it_lacks_adds_nothing_twice() {
        // A second reconcile can follow the first before the watch cache shows the first's
        // finalizer: its copy lacks it, and is older than the stored object.
        let (api, held) = stored_connector_with(&["example.com/other"]).await;
        add_finalizer(&api, &held).await.unwrap();
        add_finalizer(&api, &held).await.unwrap();
        let stored = api.get("relay").await.unwrap();
        assert_eq!(stored.finalizers(), ["example.com/other", FINALIZER]);
    }

    #[tokio::test]
    async fn the_finalizer_is_added_over_a_copy_older_than_a_status_write() {
        let (api, held) = stored_connector_with(&[]).await;
        let status = serde_json::json!({"status": {"state": "ok"}});
        api.patch_status("relay", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        add_finalizer(&api, &held).await.unwrap();
        assert_eq!(api.get("relay").await.unwrap().finalizers(), [FINALIZER]);
    }

    #[tokio::test]
    async fn a_finalizer_added_by_someone_else_since_is_kept() {
        let (api, held) = stored_connector_with(&[]).await;
        let added = serde_json::json!({"metadata": {"finalizers": ["example.com/late"]}});
        api.patch("relay", &PatchParams::default(), &Patch::Merge(&added))
            .await
            .unwrap();
        add_finalizer(&api, &held).await.unwrap();
        let stored = api.get("relay").await.unwrap();
        assert_eq!(stored.finalizers(), ["example.com/late", FINALIZER]);
    }
}
