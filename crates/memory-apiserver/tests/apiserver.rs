//! The fake API server, driven through kube-rs' real client and runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, ValidationDirective,
    WatchEvent, WatchParams,
};
use kube::core::{ApiResource, PartialObjectMeta, Status};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use memory_apiserver::{ApiServer, Config};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

/// A small custom resource with a status subresource.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub size: i32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct WidgetStatus {
    pub observed: i32,
}

const DEADLINE: Duration = Duration::from_secs(10);

/// The finalizer the `finalizer()` helper test manages.
const NAME: &str = "test.example.com/cleanup";

fn server() -> ApiServer {
    let server = ApiServer::new();
    server.register_crd(&Widget::crd());
    server
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn widget(name: &str, size: i32) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size });
    w.metadata.namespace = Some("default".to_owned());
    w
}

fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn api_status<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `check` until it holds, failing the test after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server stops persisting writes for a whole `quiet` period.
async fn settle(server: &ApiServer, quiet: Duration) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let before = server.write_count();
        sleep(quiet).await;
        let after = server.write_count();
        if after == before {
            return after;
        }
        assert!(Instant::now() < deadline, "writes never stopped");
    }
}

fn spawn_stream<T: Send + 'static>(
    stream: impl Stream<Item = T> + Send + 'static,
) -> mpsc::UnboundedReceiver<T> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// Receives items until one satisfies `predicate`, failing after [`DEADLINE`].
async fn wait_for<T: std::fmt::Debug>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut predicate: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let item = timeout(deadline - Instant::now(), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("stream ended while waiting for {what}"));
        if predicate(&item) {
            return item;
        }
    }
}

fn applied_name<K: Resource>(event: &Result<watcher::Event<K>, watcher::Error>) -> Option<String> {
    match event {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o.meta().name.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn configmap_crud_and_error_statuses() {
    let server = server();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm = ConfigMap {
        metadata: meta("settings"),
        data: Some([("a".to_owned(), "1".to_owned())].into()),
        ..ConfigMap::default()
    };
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv = created.resource_version().unwrap();

    let exists = api_status(api.create(&PostParams::default(), &cm).await);
    assert_eq!(
        (exists.code, exists.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut changed = created.clone();
    changed.data = Some([("a".to_owned(), "2".to_owned())].into());
    let replaced = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version().unwrap(), rv);
    // `changed` still carries the old resourceVersion.
    let stale = api_status(
        api.replace("settings", &PostParams::default(), &changed)
            .await,
    );
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    let missing = api_status(api.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(api.get_opt("nope").await.unwrap(), None);

    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        listed
            .metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );

    api.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(code(api.get("settings").await), 404);
    assert_eq!(
        code(api.delete("settings", &DeleteParams::default()).await),
        404
    );
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let server = server();
    let api: Api<Secret> = Api::namespaced(server.client(), "default");
    let secret = Secret {
        metadata: meta("creds"),
        string_data: Some([("password".to_owned(), "hunter2".to_owned())].into()),
        data: Some([("user".to_owned(), ByteString(b"me".to_vec()))].into()),
        ..Secret::default()
    };
    let created = api.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(created.string_data, None);
    let data = created.data.unwrap();
    assert_eq!(data["password"], ByteString(b"hunter2".to_vec()));
    assert_eq!(data["user"], ByteString(b"me".to_vec()));
    let stored = server
        .get_object(&ApiResource::erase::<Secret>(&()), Some("default"), "creds")
        .unwrap();
    assert_eq!(stored["data"]["password"], "aHVudGVyMg==");
    assert!(stored.get("stringData").is_none());
}

#[tokio::test]
async fn generation_moves_with_spec_only() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"observed": 1}});
    let after_status = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_eq!(after_status.status, Some(WidgetStatus { observed: 1 }));

    let labels = json!({"metadata": {"labels": {"a": "b"}}});
    let after_labels = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(after_labels.metadata.generation, Some(1));

    let spec = json!({"spec": {"size": 2}});
    let after_spec = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(after_spec.status, Some(WidgetStatus { observed: 1 }));
}

#[tokio::test]
async fn writes_that_change_nothing_keep_the_resource_version_and_emit_no_event() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let status =
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "status": {"observed": 1}});
    let ssa = PatchParams::apply("test").force();
    let with_status = api
        .patch_status("w", &ssa, &Patch::Apply(&status))
        .await
        .unwrap();
    let rv = with_status.resource_version().unwrap();
    let writes = server.write_count();

    let again = api
        .patch_status("w", &ssa, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(again.resource_version().unwrap(), rv);
    let replaced = api
        .replace("w", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.resource_version().unwrap(), rv);
    let same_spec = json!({"spec": {"size": 1}});
    let merged = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&same_spec))
        .await
        .unwrap();
    assert_eq!(merged.resource_version().unwrap(), rv);
    assert_eq!(server.write_count(), writes);
    assert_eq!(merged.metadata.uid, created.metadata.uid);

    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let changes: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e, WatchEvent::Bookmark(_)))
        .collect();
    assert!(changes.is_empty(), "unexpected watch events: {changes:?}");
}

#[tokio::test]
async fn status_is_isolated_from_the_main_resource_both_ways() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let mut with_status = widget("w", 1);
    with_status.status = Some(WidgetStatus { observed: 7 });
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(created.status, None, "create must drop status");

    let status = json!({"status": {"observed": 1}});
    let mut current = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    current.spec.size = 5;
    current.status = Some(WidgetStatus { observed: 99 });
    let replaced = api
        .replace("w", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(replaced.spec.size, 5);
    assert_eq!(replaced.status, Some(WidgetStatus { observed: 1 }));

    let mut status_write = replaced.clone();
    status_write.spec.size = 100;
    status_write.status = Some(WidgetStatus { observed: 5 });
    let after = api
        .replace_status("w", &PostParams::default(), &status_write)
        .await
        .unwrap();
    assert_eq!(after.spec.size, 5);
    assert_eq!(after.status, Some(WidgetStatus { observed: 5 }));
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["test/hold".to_owned()]);
    api.create(&PostParams::default(), &w).await.unwrap();

    let deleted = api.delete("w", &DeleteParams::default()).await.unwrap();
    let marked = deleted
        .left()
        .expect("object returned while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("w")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let add = json!({"metadata": {"finalizers": ["test/hold", "test/other"]}});
    let refused = api_status(
        api.patch("w", &PatchParams::default(), &Patch::Merge(&add))
            .await,
    );
    assert_eq!(refused.code, 422);
    let clear_deletion = json!({"metadata": {"deletionTimestamp": null}});
    let kept = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&clear_deletion))
        .await
        .unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());

    let remove = json!({"metadata": {"finalizers": null}});
    api.patch("w", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(code(api.get("w").await), 404);
}

#[tokio::test]
async fn finalizer_helper_adds_then_cleans_up() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();

    let current = Arc::new(api.get("w").await.unwrap());
    finalizer(&api, NAME, current, |_| async {
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    let with_finalizer = api.get("w").await.unwrap();
    assert_eq!(with_finalizer.finalizers(), [NAME]);

    let applied = Arc::new(AtomicUsize::new(0));
    let seen = applied.clone();
    finalizer(&api, NAME, Arc::new(with_finalizer), |event| async move {
        if let FinalizerEvent::Apply(_) = event {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1);

    api.delete("w", &DeleteParams::default()).await.unwrap();
    let deleting = Arc::new(api.get("w").await.unwrap());
    let cleaned = Arc::new(AtomicUsize::new(0));
    let seen = cleaned.clone();
    finalizer(&api, NAME, deleting, |event| async move {
        if let FinalizerEvent::Cleanup(_) = event {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert_eq!(code(api.get("w").await), 404);
}

#[tokio::test]
async fn server_side_apply_creates_and_writes_status() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let ssa = PatchParams::apply("test").force();
    let manifest = json!({
        "apiVersion": "test.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 3}
    });
    let created = api
        .patch("w", &ssa, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 3);
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));

    let status =
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "status": {"observed": 3}});
    let with_status = api
        .patch_status("w", &ssa, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(with_status.status, Some(WidgetStatus { observed: 3 }));
    assert_eq!(with_status.spec.size, 3);

    let entries = with_status
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e.manager.as_deref() == Some("test")
                && e.subresource.as_deref() == Some("status")),
        "{entries:?}"
    );

    // Fields a manager stops applying are removed.
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let manifest = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data});
    cms.patch(
        "applied",
        &ssa,
        &Patch::Apply(manifest(json!({"a": "1", "b": "2"}))),
    )
    .await
    .unwrap();
    let trimmed = cms
        .patch("applied", &ssa, &Patch::Apply(manifest(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(
        trimmed.data,
        Some([("a".to_owned(), "1".to_owned())].into())
    );

    let missing = api_status(api.patch_status("nope", &ssa, &Patch::Apply(&status)).await);
    assert_eq!(missing.code, 404);

    let strategic = api_status(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 4}})),
        )
        .await,
    );
    assert_eq!(strategic.code, 415);
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields_and_default_prunes_them() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let unknown = json!({"spec": {"size": 2, "colour": "red"}});
    let strict = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    };
    // A patch: upstream decodes the patched object strictly and refuses it as the `patch`.
    let rejected = api_status(api.patch("w", &strict, &Patch::Merge(&unknown)).await);
    assert_eq!((rejected.code, rejected.reason.as_str()), (422, "Invalid"));
    assert!(
        rejected
            .message
            .starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
        "{}",
        rejected.message
    );
    assert!(
        rejected.message.contains("spec.colour"),
        "{}",
        rejected.message
    );

    api.patch("w", &PatchParams::default(), &Patch::Merge(&unknown))
        .await
        .unwrap();
    let stored = server
        .get_object(&ApiResource::erase::<Widget>(&()), Some("default"), "w")
        .unwrap();
    assert_eq!(stored["spec"], json!({"size": 2}));
}

#[tokio::test]
async fn watcher_sees_initial_state_then_changes() {
    let server = server();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm = |name: &str| ConfigMap {
        metadata: meta(name),
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let mut events = spawn_stream(watcher(api.clone(), watcher::Config::default()));
    let _ = wait_for(&mut events, "Init", |e| {
        matches!(e, Ok(watcher::Event::Init))
    })
    .await;
    let first = wait_for(&mut events, "InitApply", |e| {
        matches!(e, Ok(watcher::Event::InitApply(_)))
    })
    .await;
    assert_eq!(applied_name(&first).as_deref(), Some("before"));
    let _ = wait_for(&mut events, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;

    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    let added = wait_for(&mut events, "Apply", |e| {
        matches!(e, Ok(watcher::Event::Apply(_)))
    })
    .await;
    assert_eq!(applied_name(&added).as_deref(), Some("after"));
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = wait_for(&mut events, "Delete", |e| {
        matches!(e, Ok(watcher::Event::Delete(_)))
    })
    .await;
    let Ok(watcher::Event::Delete(gone)) = deleted else {
        unreachable!()
    };
    assert_eq!(gone.name_any(), "before");
}

#[tokio::test]
async fn watcher_resumes_across_server_timeouts_without_missing_events() {
    let server = server();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut events = spawn_stream(watcher(api.clone(), watcher::Config::default().timeout(1)));
    let _ = wait_for(&mut events, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;
    // Spread creations over several one-second watch windows, including reconnects.
    for i in 0..6 {
        let cm = ConfigMap {
            metadata: meta(&format!("cm{i}")),
            ..ConfigMap::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
        sleep(Duration::from_millis(400)).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 6 {
        let event = wait_for(&mut events, "all creations", |e| applied_name(e).is_some()).await;
        seen.insert(applied_name(&event).unwrap());
    }
    assert_eq!(seen.len(), 6);
}

#[tokio::test]
async fn compacted_history_makes_the_watcher_relist_and_converge() {
    let server = server();
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let config = watcher::Config::default().timeout(1).disable_bookmarks();
    let mut events = spawn_stream(watcher(api.clone(), config));
    let _ = wait_for(&mut events, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;

    // Move the global resourceVersion past the watcher's, then forget the history.
    let secret = Secret {
        metadata: meta("unrelated"),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    server.compact_history();
    let cm = ConfigMap {
        metadata: meta("after-compaction"),
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap();

    let _ = wait_for(
        &mut events,
        "410 Gone",
        |e| matches!(e, Err(watcher::Error::WatchError(status)) if status.code == 410),
    )
    .await;
    let _ = wait_for(&mut events, "relist", |e| {
        matches!(e, Ok(watcher::Event::Init))
    })
    .await;
    let seen = wait_for(&mut events, "object after relist", |e| {
        applied_name(e).is_some()
    })
    .await;
    assert_eq!(applied_name(&seen).as_deref(), Some("after-compaction"));
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &widget("old", 1))
        .await
        .unwrap();
    let mut events = spawn_stream(watcher(
        api.clone(),
        watcher::Config::default().streaming_lists(),
    ));
    let first = wait_for(&mut events, "InitApply", |e| {
        matches!(e, Ok(watcher::Event::InitApply(_)))
    })
    .await;
    assert_eq!(applied_name(&first).as_deref(), Some("old"));
    let _ = wait_for(&mut events, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;
    api.create(&PostParams::default(), &widget("new", 1))
        .await
        .unwrap();
    let live = wait_for(&mut events, "Apply", |e| {
        matches!(e, Ok(watcher::Event::Apply(_)))
    })
    .await;
    assert_eq!(applied_name(&live).as_deref(), Some("new"));
}

#[tokio::test]
async fn metadata_watcher_on_secrets_works() {
    let server = server();
    let api: Api<Secret> = Api::namespaced(server.client(), "default");
    let secret = |name: &str| Secret {
        metadata: meta(name),
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Secret::default()
    };
    api.create(&PostParams::default(), &secret("one"))
        .await
        .unwrap();
    // kube 5's replacement for `metadata_watcher`: metadata-only requests through the Api type.
    let metadata_api: Api<PartialObjectMeta<Secret>> = Api::namespaced(server.client(), "default");
    let mut events = spawn_stream(watcher(metadata_api, watcher::Config::default()));
    let first = wait_for(&mut events, "InitApply", |e| {
        matches!(e, Ok(watcher::Event::InitApply(_)))
    })
    .await;
    assert_eq!(applied_name(&first).as_deref(), Some("one"));
    let _ = wait_for(&mut events, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;
    api.create(&PostParams::default(), &secret("two"))
        .await
        .unwrap();
    let live = wait_for(&mut events, "Apply", |e| {
        matches!(e, Ok(watcher::Event::Apply(_)))
    })
    .await;
    assert_eq!(applied_name(&live).as_deref(), Some("two"));
    let meta_only = api.get_metadata("two").await.unwrap();
    assert_eq!(meta_only.metadata.name.as_deref(), Some("two"));
}

#[tokio::test]
async fn bookmarks_decode_for_full_and_metadata_watches() {
    let server = ApiServer::with_config(Config {
        bookmark_interval: Duration::from_millis(100),
        ..Config::default()
    });
    let client = server.client();
    let full: Api<Secret> = Api::namespaced(client.clone(), "default");
    let metadata: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, "default");
    let params = WatchParams::default().timeout(1);
    let full_events: Vec<_> = full.watch(&params, "0").await.unwrap().collect().await;
    let meta_events: Vec<_> = metadata.watch(&params, "0").await.unwrap().collect().await;
    for events in [
        full_events
            .iter()
            .map(|e| e.as_ref().map(|_| ()).map_err(ToString::to_string))
            .collect::<Vec<_>>(),
        meta_events
            .iter()
            .map(|e| e.as_ref().map(|_| ()).map_err(ToString::to_string))
            .collect(),
    ] {
        assert!(
            events.len() >= 5,
            "expected periodic bookmarks, got {events:?}"
        );
        assert!(events.iter().all(Result::is_ok), "{events:?}");
    }
    assert!(
        full_events
            .iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_))))
    );
    assert!(
        meta_events
            .iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_))))
    );
}

#[tokio::test]
#[allow(deprecated)]
async fn legacy_metadata_watcher_on_secrets_works() {
    let server = server();
    let api: Api<Secret> = Api::namespaced(server.client(), "default");
    api.create(
        &PostParams::default(),
        &Secret {
            metadata: meta("one"),
            ..Secret::default()
        },
    )
    .await
    .unwrap();
    let mut events = spawn_stream(kube::runtime::metadata_watcher(
        api.clone(),
        watcher::Config::default(),
    ));
    let first = wait_for(&mut events, "InitApply", |e| {
        matches!(e, Ok(watcher::Event::InitApply(_)))
    })
    .await;
    assert_eq!(applied_name(&first).as_deref(), Some("one"));
    api.delete("one", &DeleteParams::default()).await.unwrap();
    let _ = wait_for(&mut events, "Delete", |e| {
        matches!(e, Ok(watcher::Event::Delete(_)))
    })
    .await;
}

#[tokio::test]
async fn watches_honour_selectors_and_report_objects_leaving_them() {
    let server = server();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let labelled = |name: &str, colour: &str| {
        let mut metadata = meta(name);
        metadata.labels = Some([("colour".to_owned(), colour.to_owned())].into());
        ConfigMap {
            metadata,
            ..ConfigMap::default()
        }
    };
    api.create(&PostParams::default(), &labelled("a", "red"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &labelled("b", "red"))
        .await
        .unwrap();
    let by_name = api
        .watch(
            &WatchParams::default().fields("metadata.name=a").timeout(5),
            "0",
        )
        .await
        .unwrap();
    let by_label = api
        .watch(&WatchParams::default().labels("colour=red").timeout(5), "0")
        .await
        .unwrap();
    let mut by_name = spawn_stream(by_name);
    let mut by_label = spawn_stream(by_label);
    let kind = |e: &Result<WatchEvent<ConfigMap>, kube::Error>| match e {
        Ok(WatchEvent::Added(o)) => format!("ADDED {}", o.name_any()),
        Ok(WatchEvent::Modified(o)) => format!("MODIFIED {}", o.name_any()),
        Ok(WatchEvent::Deleted(o)) => format!("DELETED {}", o.name_any()),
        other => format!("{other:?}"),
    };
    let first = wait_for(&mut by_name, "a", |e| matches!(e, Ok(WatchEvent::Added(_)))).await;
    assert_eq!(kind(&first), "ADDED a");

    let recolour = json!({"metadata": {"labels": {"colour": "blue"}}});
    api.patch("b", &PatchParams::default(), &Patch::Merge(&recolour))
        .await
        .unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(&recolour))
        .await
        .unwrap();
    let mut label_events = Vec::new();
    while label_events.len() < 4 {
        let event = wait_for(&mut by_label, "label events", |e| {
            !matches!(e, Ok(WatchEvent::Bookmark(_)))
        })
        .await;
        label_events.push(kind(&event));
    }
    label_events[..2].sort();
    assert_eq!(
        label_events,
        ["ADDED a", "ADDED b", "DELETED b", "DELETED a"]
    );
    let next = wait_for(&mut by_name, "a modified", |e| {
        !matches!(e, Ok(WatchEvent::Bookmark(_)))
    })
    .await;
    assert_eq!(kind(&next), "MODIFIED a");
}

struct Context {
    api: Api<Widget>,
    reconciles: AtomicUsize,
}

async fn reconcile(widget: Arc<Widget>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let status = json!({
        "apiVersion": "test.example.com/v1",
        "kind": "Widget",
        "status": {"observed": widget.spec.size}
    });
    ctx.api
        .patch_status(
            &widget.name_any(),
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(&status),
        )
        .await?;
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)]
fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn controller_converges_and_goes_idle() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let ctx = Arc::new(Context {
        api: api.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    api.create(&PostParams::default(), &widget("w", 2))
        .await
        .unwrap();
    let observed = |size: i32| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move { api.get("w").await.unwrap().status == Some(WidgetStatus { observed: size }) }
        }
    };
    eventually("status observed 2", observed(2)).await;
    let writes = settle(&server, Duration::from_millis(300)).await;
    let reconciles = ctx.reconciles.load(Ordering::SeqCst);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(server.write_count(), writes, "controller kept writing");
    assert_eq!(
        ctx.reconciles.load(Ordering::SeqCst),
        reconciles,
        "controller kept reconciling"
    );

    let spec = json!({"spec": {"size": 5}});
    api.patch("w", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    eventually("status observed 5", observed(5)).await;
    settle(&server, Duration::from_millis(300)).await;
    handle.abort();
}

#[tokio::test]
async fn recorder_creates_events_and_patches_series() {
    let server = server();
    let client = server.client();
    let api: Api<Widget> = Api::namespaced(client.clone(), "default");
    let w = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "widget-controller".to_owned(),
            instance: None,
        },
    );
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Synced".to_owned(),
        note: Some("all good".to_owned()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(events[0]["reason"], "Synced");
    assert_eq!(events[0]["regarding"]["name"], "w");
    assert_eq!(events[0]["series"]["count"], 2);

    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(server.client(), "default");
    core.create(
        &PostParams::default(),
        &k8s_openapi::api::core::v1::Event {
            metadata: meta("legacy"),
            reason: Some("Old".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(server.events().len(), 2);
}

#[tokio::test]
async fn namespace_deletion_cascades_and_respects_finalizers() {
    let server = server();
    let client = server.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta("doomed"),
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let widgets: Api<Widget> = Api::namespaced(client, "doomed");
    let cm = |name: &str| ConfigMap {
        metadata: meta(name),
        ..ConfigMap::default()
    };
    cms.create(&PostParams::default(), &cm("plain"))
        .await
        .unwrap();
    let mut held = Widget::new("held", WidgetSpec { size: 1 });
    held.metadata.finalizers = Some(vec!["test/hold".to_owned()]);
    widgets.create(&PostParams::default(), &held).await.unwrap();

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = namespaces.get("doomed").await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(code(cms.get("plain").await), 404);
    assert!(
        widgets
            .get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let refused = api_status(cms.create(&PostParams::default(), &cm("late")).await);
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));

    let remove = json!({"metadata": {"finalizers": null}});
    widgets
        .patch("held", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(code(widgets.get("held").await), 404);
    assert_eq!(code(namespaces.get("doomed").await), 404);

    // Creating in a namespace that has no Namespace object is tolerated.
    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "never-created");
    elsewhere
        .create(&PostParams::default(), &cm("fine"))
        .await
        .unwrap();
}

#[tokio::test]
async fn lease_writes_with_stale_resource_versions_conflict() {
    let server = server();
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    let lease = Lease {
        metadata: meta("leader"),
        spec: Some(LeaseSpec {
            holder_identity: Some("a".to_owned()),
            ..LeaseSpec::default()
        }),
    };
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(code(api.create(&PostParams::default(), &lease).await), 409);

    let mut take = created.clone();
    take.spec.as_mut().unwrap().holder_identity = Some("b".to_owned());
    let taken = api
        .replace("leader", &PostParams::default(), &take)
        .await
        .unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));

    let mut late = created;
    late.spec.as_mut().unwrap().holder_identity = Some("c".to_owned());
    let conflict = api_status(api.replace("leader", &PostParams::default(), &late).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    let stale_patch =
        json!({"metadata": {"resourceVersion": "1"}, "spec": {"holderIdentity": "c"}});
    assert_eq!(
        code(
            api.patch(
                "leader",
                &PatchParams::default(),
                &Patch::Merge(&stale_patch)
            )
            .await
        ),
        409
    );
}

#[tokio::test]
async fn lists_page_and_filter_by_selectors() {
    let server = server();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..5 {
        let mut metadata = meta(&format!("cm{i}"));
        metadata.labels = Some(
            [(
                "parity".to_owned(),
                (if i % 2 == 0 { "even" } else { "odd" }).to_owned(),
            )]
            .into(),
        );
        api.create(
            &PostParams::default(),
            &ConfigMap {
                metadata,
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = api.list(&params).await.unwrap();
        names.extend(page.items.iter().map(ResourceExt::name_any));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names, ["cm0", "cm1", "cm2", "cm3", "cm4"]);

    let even = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 3);
    let one = api
        .list(&ListParams::default().fields("metadata.name=cm3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(server.client());
    let none = all
        .list(&ListParams::default().fields("metadata.namespace=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(
        server
            .list_objects(&ApiResource::erase::<ConfigMap>(&()), None)
            .len(),
        5
    );
}

#[tokio::test]
async fn serves_over_tcp() {
    let server = ApiServer::with_config(Config::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = server.clone();
    let handle = tokio::spawn(async move { serving.serve(listener).await });

    let url: http::Uri = format!("http://{address}").parse().unwrap();
    let client = kube::Client::try_from(kube::Config::new(url)).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: meta("over-tcp"),
            ..ConfigMap::default()
        },
    )
    .await
    .unwrap();
    assert!(
        server
            .get_object(
                &ApiResource::erase::<ConfigMap>(&()),
                Some("default"),
                "over-tcp"
            )
            .is_some()
    );
    handle.abort();
}

#[tokio::test]
async fn discovery_lists_builtin_and_registered_kinds() {
    let server = server();
    let client = server.client();
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (widgets, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            "test.example.com",
            "v1",
            "Widget",
        ))
        .expect("Widget is discoverable");
    assert_eq!(widgets.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "status"));
    assert!(
        discovery
            .resolve_gvk(&kube::core::GroupVersionKind::gvk(
                "coordination.k8s.io",
                "v1",
                "Lease"
            ))
            .is_some()
    );
    let core = client.list_core_api_resources("v1").await.unwrap();
    let namespaces = core
        .resources
        .iter()
        .find(|r| r.name == "namespaces")
        .unwrap();
    assert!(!namespaces.namespaced);
}

#[tokio::test]
async fn await_condition_and_delete_collection_work() {
    let server = server();
    let api: Api<Widget> = Api::namespaced(server.client(), "default");
    let observed = kube::runtime::wait::await_condition(api.clone(), "w", |w: Option<&Widget>| {
        w.and_then(|w| w.status.as_ref())
            .is_some_and(|s| s.observed == 4)
    });
    let waiter = tokio::spawn(observed);
    api.create(&PostParams::default(), &widget("w", 4))
        .await
        .unwrap();
    api.create(&PostParams::default(), &widget("other", 1))
        .await
        .unwrap();
    let status = json!({"status": {"observed": 4}});
    api.patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let done = timeout(DEADLINE, waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(done.unwrap().name_any(), "w");

    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
