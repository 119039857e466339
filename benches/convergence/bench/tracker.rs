//! Follows every SendConnector and MailboxBinding through a watch: each change of an object
//! (a new resourceVersion) is a Kubernetes write, classified as a finalizer, status or other
//! change, and the moment every object is Ready for its generation is recorded.
use super::workload::NS;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::watcher;
use sendconnector_operator::crd::{MailboxBinding, SendConnector};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Kubernetes writes to the watched objects, summed over them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectWrites {
    pub objects: u64,
    pub status: u64,
    pub finalizer: u64,
    /// Changes that touched neither (spec or other metadata).
    pub other: u64,
    /// How many objects went through each sequence of status writes, each write named by its
    /// Ready condition's reason (`A > B > C`): where writes beyond the needed ones come from.
    pub sequences: BTreeMap<String, u64>,
}

impl ObjectWrites {
    pub fn total(&self) -> u64 {
        self.status + self.finalizer + self.other
    }
}

#[derive(Default)]
struct Seen {
    resource_version: String,
    finalizers: Value,
    status: Value,
    ready: bool,
    ready_at: Option<Instant>,
    writes: ObjectWrites,
    /// The Ready reason of each status write.
    steps: Vec<String>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Seen>,
}

/// The watch and what it saw.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    changed: tokio::sync::watch::Sender<u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Ready with `status: True` for the object's current generation.
pub fn is_ready(object: &Value) -> bool {
    let generation = &object["metadata"]["generation"];
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && &c["observedGeneration"] == generation
            })
        })
}

impl Tracker {
    /// Starts watching both kinds in the workload namespace; call before creating objects,
    /// so that the first sight of each object is its creation.
    pub fn start(client: &kube::Client) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (changed, _) = tokio::sync::watch::channel(0);
        let tasks = [
            ApiResource::erase::<SendConnector>(&()),
            ApiResource::erase::<MailboxBinding>(&()),
        ]
        .into_iter()
        .map(|resource| {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
            let state = state.clone();
            let changed = changed.clone();
            tokio::spawn(async move {
                let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
                while let Some(event) = events.next().await {
                    let object = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                        Ok(_) => continue,
                        Err(error) => {
                            eprintln!("bench: watch of {}: {error}", resource.kind);
                            continue;
                        }
                    };
                    let Ok(object) = serde_json::to_value(&object) else {
                        continue;
                    };
                    let key = format!(
                        "{}/{}",
                        resource.kind,
                        object["metadata"]["name"].as_str().unwrap_or("")
                    );
                    observe(&state, key, &object);
                    changed.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
        Self {
            state,
            changed,
            tasks,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Objects seen, and how many of them are Ready now.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        let ready = state.objects.values().filter(|s| s.ready).count();
        (state.objects.len(), ready)
    }

    /// When `name` (`Kind/name`) last became Ready, if it is Ready now.
    pub fn ready_at(&self, key: &str) -> Option<Instant> {
        self.lock().objects.get(key).and_then(|s| s.ready_at)
    }

    /// Waits until `expected` objects are seen and all of them are Ready, or `deadline`.
    /// Returns the moment they were, or `None` at the deadline.
    pub async fn wait_all_ready(&self, expected: usize, deadline: Instant) -> Option<Instant> {
        let mut changed = self.changed.subscribe();
        loop {
            {
                let state = self.lock();
                if state.objects.len() >= expected && state.objects.values().all(|s| s.ready) {
                    return state.objects.values().filter_map(|s| s.ready_at).max();
                }
            }
            let wait = tokio::time::timeout_at(deadline.into(), changed.changed());
            if !matches!(wait.await, Ok(Ok(()))) {
                return None;
            }
        }
    }

    /// Waits until the object `key` is Ready, or `deadline`.
    pub async fn wait_ready(&self, key: &str, deadline: Instant) -> Option<Instant> {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(at) = self.ready_at(key) {
                return Some(at);
            }
            let wait = tokio::time::timeout_at(deadline.into(), changed.changed());
            if !matches!(wait.await, Ok(Ok(()))) {
                return None;
            }
        }
    }

    /// Writes per kind (`SendConnector`, `MailboxBinding`).
    pub fn writes(&self) -> BTreeMap<String, ObjectWrites> {
        let state = self.lock();
        let mut by_kind: BTreeMap<String, ObjectWrites> = BTreeMap::new();
        for (key, seen) in &state.objects {
            let kind = key.split('/').next().unwrap_or("").to_owned();
            let sum = by_kind.entry(kind).or_default();
            sum.objects += 1;
            sum.status += seen.writes.status;
            sum.finalizer += seen.writes.finalizer;
            sum.other += seen.writes.other;
            *sum.sequences.entry(seen.steps.join(" > ")).or_default() += 1;
        }
        by_kind
    }

    /// Which objects are not Ready (at most `limit` names), for error messages.
    pub fn not_ready(&self, limit: usize) -> Vec<String> {
        let state = self.lock();
        state
            .objects
            .iter()
            .filter(|(_, s)| !s.ready)
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn observe(state: &Mutex<State>, key: String, object: &Value) {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let rv = object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let finalizers = object["metadata"]["finalizers"].clone();
    let status = object["status"].clone();
    let ready = is_ready(object);
    match state.objects.get_mut(&key) {
        None => {
            state.objects.insert(
                key,
                Seen {
                    resource_version: rv,
                    finalizers,
                    status,
                    ready,
                    ready_at: ready.then(Instant::now),
                    writes: ObjectWrites::default(),
                    steps: Vec::new(),
                },
            );
        }
        Some(seen) if seen.resource_version == rv => {}
        Some(seen) => {
            if seen.finalizers != finalizers {
                seen.writes.finalizer += 1;
            } else if seen.status != status {
                seen.writes.status += 1;
                seen.steps.push(ready_reason(object));
            } else {
                seen.writes.other += 1;
            }
            seen.resource_version = rv;
            seen.finalizers = finalizers;
            seen.status = status;
            if ready && !seen.ready {
                seen.ready_at = Some(Instant::now());
            } else if !ready {
                seen.ready_at = None;
            }
            seen.ready = ready;
        }
    }
}

/// The reason of the object's Ready condition, `-` without one.
fn ready_reason(object: &Value) -> String {
    object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("-")
        .to_owned()
}
