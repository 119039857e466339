//! The Events the reconcilers publish (events.k8s.io/v1): one Event per fact, a fact
//! repeated word for word counted in that Event's `series` instead of a new one.
//!
//! kube's `Recorder` counts every Event with the same object, type, reason and action as a
//! repeat of the first, whatever its note, and keeps a copy of each Event it published. Here
//! a note that differs starts a new Event, and only the Event's name and count are kept per
//! series (a thousand resources publish thousands of Events).
use super::context::Context;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::time::Duration;

/// How long a series is kept for repeats; a fact repeated later starts a new Event.
pub(super) const SERIES_TTL: Duration = Duration::from_secs(600);

/// One published fact: its Event and how many times it was seen.
pub(super) struct Series {
    note: String,
    name: String,
    count: i32,
    used: tokio::time::Instant,
}

/// What one Event says.
pub(super) struct Fact<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: String,
}

/// Publishes `fact` about `obj`: a new Event, or one more of the Event that said the same
/// last under the same object, type, reason and action. Failures are logged at debug
/// level only: an Event is never worth failing a reconcile for.
pub(super) async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, fact: Fact<'_>) {
    let key = format!(
        "{}|{:?}|{}|{}",
        obj.uid().unwrap_or_else(|| super::lifecycle::key_of(obj)),
        fact.type_,
        fact.reason,
        fact.action
    );
    let regarding = obj.object_ref(&());
    let namespace = regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let events: Api<KubeEvent> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = tokio::time::Instant::now();
    let repeat = {
        let mut all = ctx
            .event_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|_, s| now.duration_since(s.used) < SERIES_TTL);
        all.get_mut(&key).filter(|s| s.note == fact.note).map(|s| {
            s.count += 1;
            s.used = now;
            (s.name.clone(), s.count)
        })
    };
    let time = MicroTime(k8s_openapi::jiff::Timestamp::now());
    if let Some((name, count)) = repeat {
        let patch = serde_json::json!({"series": {"count": count, "lastObservedTime": time}});
        match events
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            // Gone (expired, deleted): the fact starts a new Event.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::debug!(error = %e, "could not publish an Event");
                return;
            }
        }
    }
    let event = new_event(&regarding, &namespace, &fact, time);
    let name = event.metadata.name.clone().unwrap_or_default();
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "could not publish an Event");
        return;
    }
    ctx.event_series
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            key,
            Series {
                note: fact.note,
                name,
                count: 1,
                used: now,
            },
        );
}

/// A new Event about `regarding`, named after it and the time (as kube's recorder names
/// them), reported by the operator.
fn new_event(
    regarding: &ObjectReference,
    namespace: &str,
    fact: &Fact<'_>,
    time: MicroTime,
) -> KubeEvent {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or("object"),
        time.0.as_nanosecond()
    );
    KubeEvent {
        action: Some(fact.action.to_owned()),
        reason: Some(fact.reason.to_owned()),
        note: Some(fact.note.clone()),
        type_: Some(
            match fact.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(crate::crd::FIELD_MANAGER.to_owned()),
        reporting_instance: Some(
            std::env::var("POD_NAME").unwrap_or_else(|_| crate::crd::FIELD_MANAGER.to_owned()),
        ),
        event_time: Some(time),
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        ..KubeEvent::default()
    }
}
