//! Watch streams: newline-delimited JSON events replayed from the history, then live.
//!
//! Each watch runs as a task that drains the shared history from its last resourceVersion
//! whenever the global counter moves, so a slow reader never misses a change (it may only fall
//! behind the retained history, which it learns as a 410 `ERROR` event, like from a real
//! server). Bookmarks go out periodically and when `timeoutSeconds` ends the stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::repr;
use super::resources::ResourceKind;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{Change, ChangeType};
use super::table::{self, IncludeObject};

/// Lines buffered between the watch task and the response body.
const BUFFERED_EVENTS: usize = 256;

/// Everything a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// Kind watched.
    pub kind: ResourceKind,
    /// Only this namespace (`None`: all namespaces, or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// `labelSelector` and `fieldSelector`.
    pub selectors: Selectors,
    /// `resourceVersion` to resume after; `None`, `""` and `"0"` start with the current state.
    pub resource_version: Option<String>,
    /// `sendInitialEvents=true`: a streaming list.
    pub send_initial_events: bool,
    /// `allowWatchBookmarks=true`.
    pub allow_bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// Objects as `PartialObjectMetadata`.
    pub metadata_only: bool,
    /// Objects as one-row `Table`s (`kubectl get -w`), with what each row carries.
    pub table: Option<IncludeObject>,
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        let namespace_ok = self.namespace.as_deref().is_none_or(|wanted| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(wanted)
        });
        namespace_ok && self.selectors.matches(object)
    }

    fn line(&self, event_type: &str, object: &Value) -> Bytes {
        let mut shown = repr::present(&self.kind, object, self.metadata_only);
        if let Some(include) = self.table {
            let metadata = json!({
                "resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            });
            shown = table::table(&self.kind, &[shown], &metadata, include);
        }
        let event = json!({ "type": event_type, "object": shown });
        encode(&event)
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Bytes {
        let object = repr::bookmark(
            &self.kind,
            resource_version,
            initial_events_end,
            self.metadata_only,
        );
        encode(&json!({ "type": "BOOKMARK", "object": object }))
    }

    /// The event this watch reports for `change`, if any: objects entering or leaving the
    /// selection show up as additions and deletions.
    fn render(&self, change: &Change) -> Option<Bytes> {
        if change.resource != self.kind.key() {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.previous.as_deref().is_some_and(|p| self.selects(p));
        let event_type = match (change.event, before, now) {
            (ChangeType::Added, _, true) | (ChangeType::Modified, false, true) => "ADDED",
            (ChangeType::Modified, true, true) => "MODIFIED",
            (ChangeType::Modified, true, false)
            | (ChangeType::Deleted, true, _)
            | (ChangeType::Deleted, false, true) => "DELETED",
            _ => return None,
        };
        Some(self.line(event_type, &change.object))
    }
}

fn encode(event: &Value) -> Bytes {
    let mut line = event.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

/// Starts the watch task and answers with its stream. The starting point (and, for watches
/// that begin with the current state, that state) is fixed before answering, so writes made
/// after the request returns are always reported as changes.
pub fn respond(shared: Arc<Shared>, request: WatchRequest) -> Result<Response, ApiError> {
    let resume_from = match request.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(_) if request.send_initial_events => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let start = if let Some(rv) = resume_from {
        Start {
            initial: Vec::new(),
            after: rv,
        }
    } else {
        initial_state(&shared, &request)
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(BUFFERED_EVENTS);
    tokio::spawn(run(shared, request, start, sender));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(line), receiver))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The current state as synthetic `ADDED` events, taken under one lock.
fn initial_state(shared: &Shared, request: &WatchRequest) -> Start {
    let state = shared.lock();
    let mut initial: Vec<Bytes> = state
        .store
        .list(&request.kind.key(), request.namespace.as_deref())
        .filter(|(_, object)| request.selects(object))
        .map(|(_, object)| request.line("ADDED", object))
        .collect();
    let current = state.store.resource_version();
    if request.send_initial_events {
        initial.push(request.bookmark(current, true));
    }
    Start {
        initial,
        after: current,
    }
}

/// Where a watch begins.
struct Start {
    /// Lines sent before any change: synthetic `ADDED` events (and the end-of-initial-events
    /// bookmark of streaming lists).
    initial: Vec<Bytes>,
    /// Changes after this resourceVersion are streamed.
    after: u64,
}

/// The watch loop.
async fn run(
    shared: Arc<Shared>,
    request: WatchRequest,
    start: Start,
    sender: mpsc::Sender<Bytes>,
) {
    let mut wake = shared.changes.subscribe();
    wake.borrow_and_update();
    let deadline = Instant::now() + request.timeout;
    let period = shared
        .config
        .bookmark_interval
        .max(Duration::from_millis(10));
    let mut bookmarks = tokio::time::interval(period);
    bookmarks.tick().await;
    for line in start.initial {
        if sender.send(line).await.is_err() {
            return;
        }
    }
    let mut last = start.after;

    loop {
        let batch = shared.lock().store.changes_since(last);
        match batch {
            Err(expired) => {
                let status = ApiError::gone(last, expired.oldest).to_status();
                let _ = sender
                    .send(encode(&json!({ "type": "ERROR", "object": status })))
                    .await;
                return;
            }
            Ok((changes, up_to)) => {
                for line in changes.iter().filter_map(|change| request.render(change)) {
                    if sender.send(line).await.is_err() {
                        return;
                    }
                }
                last = last.max(up_to);
            }
        }
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep_until(deadline) => {
                if request.allow_bookmarks {
                    let _ = sender.send(request.bookmark(last, false)).await;
                }
                return;
            }
            result = wake.changed() => {
                if result.is_err() {
                    return;
                }
            }
            _ = bookmarks.tick() => {
                if request.allow_bookmarks && sender.send(request.bookmark(last, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
