//! Watches scoped to the namespaces the operator serves: one watcher per namespace (or one
//! for the whole cluster), merged into one stream, and for the controllers' own kinds one
//! shared store fed by all of them.
//!
//! A reflector store cannot simply be fed merged watch streams: each watcher's (re)listing
//! ends with `InitDone`, which replaces the whole store, so one namespace's relist would wipe
//! the others. [`Merge`] turns the per-namespace listings into plain upserts and deletions
//! scoped to that namespace, and marks the store ready once every namespace was listed.
use super::decode::{Lenient, Undecodable};
use crate::telemetry::Telemetry;
use futures::channel::mpsc;
use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// One `Api` per namespace, or one for all namespaces when `namespaces` is empty.
pub(super) fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

/// The name of a watch in health reports: kind and namespace (`*` for all).
fn watch_name<K: Resource<DynamicType = ()>>(namespaces: &[String], i: usize) -> String {
    let kind = K::kind(&());
    match namespaces.get(i) {
        Some(ns) => format!("{kind}/{ns}"),
        None => format!("{kind}/*"),
    }
}

/// Tells the health state how a watch fares: a success resets its failure clock, an error
/// starts it.
fn report<K>(health: &Telemetry, name: &str, event: &Result<Event<K>, watcher::Error>) {
    match event {
        Ok(_) => health.health().watch_ok(name),
        Err(_) => health.health().watch_failed(name),
    }
}

/// Every object touched (created, changed, deleted, listed) in the watched namespaces.
pub(super) fn touched<K>(
    client: &Client,
    namespaces: &[String],
    config: &watcher::Config,
    telemetry: &Telemetry,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    stream::select_all(
        apis::<K>(client, namespaces)
            .into_iter()
            .enumerate()
            .map(|(i, api)| {
                let name = watch_name::<K>(namespaces, i);
                let telemetry = telemetry.clone();
                watcher(api, config.clone())
                    .default_backoff()
                    .inspect(move |event| report(&telemetry, &name, event))
                    .touched_objects()
                    .boxed()
            }),
    )
}

/// Like [`touched`], for a kind whose objects may not all decode: those are reported and
/// left out.
pub(super) fn touched_decoded<K>(
    client: &Client,
    namespaces: &[String],
    config: &watcher::Config,
    telemetry: &Telemetry,
    undecodable: &Undecodable,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let undecodable = undecodable.clone();
    touched::<Lenient<K>>(client, namespaces, config, telemetry).filter_map(move |obj| {
        let out = match obj {
            Ok(obj) => undecodable.decoded(obj).map(Ok),
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    })
}

/// `obj` without its `managedFields`, which nothing here reads: for a binding they describe
/// every mailbox of its status again, and a thousand bindings' took megabytes of the cache.
fn lean<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

/// One watcher event with its objects decoded: an object that does not decode is reported
/// and treated as gone (it is not reconciled on an older spec either).
fn decode_event<K>(
    event: Result<Event<Lenient<K>>, watcher::Error>,
    undecodable: &Undecodable,
    store: &Store<K>,
) -> Option<Result<Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let stored = |obj: &Lenient<K>| {
        let meta = obj.meta();
        let mut key = ObjectRef::<K>::new(meta.name.as_deref().unwrap_or_default());
        if let Some(ns) = meta.namespace.as_deref() {
            key = key.within(ns);
        }
        store.get(&key).map(|o| (*o).clone())
    };
    let event = match event {
        Ok(event) => event,
        Err(e) => return Some(Err(e)),
    };
    let decoded = |obj| undecodable.decoded(obj).map(lean);
    Some(Ok(match event {
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
        Event::InitApply(obj) => Event::InitApply(decoded(obj)?),
        Event::Apply(obj) => {
            let previous = stored(&obj);
            match decoded(obj) {
                Some(obj) => Event::Apply(obj),
                None => Event::Delete(previous?),
            }
        }
        Event::Delete(obj) => {
            let previous = stored(&obj);
            match decoded(obj) {
                Some(obj) => Event::Delete(obj),
                None => Event::Delete(previous?),
            }
        }
    }))
}

/// A store of `K` for the watched namespaces, the feed a controller subscribes to, and the
/// reflector stream that fills both. The stream must be polled all the time, whether or not
/// a controller runs (a standby keeps its caches warm and reports ready).
pub(super) fn reflect<K>(
    client: &Client,
    namespaces: &[String],
    config: &watcher::Config,
    telemetry: &Telemetry,
    undecodable: &Undecodable,
) -> (
    Store<K>,
    Feed<K>,
    impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + use<K>,
)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    let watches = apis::<Lenient<K>>(client, namespaces)
        .into_iter()
        .enumerate()
        .map(|(i, api)| {
            let name = watch_name::<K>(namespaces, i);
            let telemetry = telemetry.clone();
            let undecodable = undecodable.clone();
            let store = reader.clone();
            watcher(api, config.clone())
                .default_backoff()
                .inspect(move |event| report(&telemetry, &name, event))
                .filter_map(move |event| {
                    std::future::ready(decode_event(event, &undecodable, &store).map(|e| (i, e)))
                })
                .boxed()
        });
    let mut merge = Merge::new(scopes, reader.clone());
    let events = stream::select_all(watches)
        .flat_map(move |(i, event)| stream::iter(merge.handle(i, event)));
    let feed = Feed::default();
    let forward = feed.clone();
    let driven = reflector::reflector(writer, events).inspect(move |event| {
        if let Ok(event) = event {
            forward.forward(event);
        }
    });
    (reader, feed, driven)
}

/// The objects a reflector applies, forwarded to the controller subscribed at the moment, if
/// any. Nothing is buffered while nobody listens: a controller that subscribes late first
/// reconciles everything in the store.
pub(super) struct Feed<K> {
    subscriber: Arc<Mutex<Option<mpsc::UnboundedSender<K>>>>,
    /// Objects applied or deleted, once the store holds the change (see [`Feed::touched`]).
    touched: Arc<Mutex<Option<mpsc::UnboundedSender<K>>>>,
}

impl<K> Clone for Feed<K> {
    fn clone(&self) -> Self {
        Self {
            subscriber: self.subscriber.clone(),
            touched: self.touched.clone(),
        }
    }
}

impl<K> Default for Feed<K> {
    fn default() -> Self {
        Self {
            subscriber: Arc::default(),
            touched: Arc::default(),
        }
    }
}

/// Sends `obj` to the subscriber, if any; a subscriber that went away is forgotten.
fn send_to<K: Clone>(slot: &Mutex<Option<mpsc::UnboundedSender<K>>>, obj: &K) {
    let mut subscriber = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(tx) = subscriber.as_ref() {
        if tx.unbounded_send(obj.clone()).is_err() {
            *subscriber = None;
        }
    }
}

impl<K: Clone + Send + 'static> Feed<K> {
    /// The stream of objects applied from now on (replacing any earlier subscriber).
    pub(super) fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
        let (tx, rx) = mpsc::unbounded();
        *self
            .subscriber
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        rx.map(Ok)
    }

    /// The objects applied or deleted from now on, each sent once the store holds the change
    /// (so a mapper that reads the store sees it): for triggers on other objects, such as
    /// the resources a deleted one was in conflict with.
    pub(super) fn touched(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K> {
        let (tx, rx) = mpsc::unbounded();
        *self
            .touched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        rx.map(Ok)
    }

    fn forward(&self, event: &Event<K>) {
        match event {
            Event::Apply(obj) | Event::InitApply(obj) => {
                send_to(&self.subscriber, obj);
                send_to(&self.touched, obj);
            }
            Event::Delete(obj) => send_to(&self.touched, obj),
            Event::Init | Event::InitDone => {}
        }
    }
}

/// Turns the event streams of several scoped watchers into one stream a single store can
/// apply.
pub(super) struct Merge<K: Resource<DynamicType = ()> + 'static> {
    /// The namespace each watcher covers (`None`: all).
    scopes: Vec<Option<String>>,
    /// The objects of a listing in progress, per watcher.
    listing: Vec<Option<Vec<K>>>,
    /// Whether each watcher finished its first listing.
    listed: Vec<bool>,
    /// Until every watcher has listed once: the objects gathered so far.
    pending: Option<HashMap<ObjectRef<K>, K>>,
    /// The store being fed, to find objects a relist no longer has.
    store: Store<K>,
}

impl<K> Merge<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + 'static,
{
    pub(super) fn new(scopes: Vec<Option<String>>, store: Store<K>) -> Self {
        let n = scopes.len();
        Self {
            scopes,
            listing: vec![None; n],
            listed: vec![false; n],
            pending: Some(HashMap::new()),
            store,
        }
    }

    fn in_scope(&self, i: usize, obj: &K) -> bool {
        match &self.scopes[i] {
            None => true,
            Some(ns) => obj.namespace().as_deref() == Some(ns.as_str()),
        }
    }

    /// The events to apply to the store for event `event` of watcher `i`.
    pub(super) fn handle(
        &mut self,
        i: usize,
        event: Result<Event<K>, watcher::Error>,
    ) -> Vec<Result<Event<K>, watcher::Error>> {
        let event = match event {
            Ok(event) => event,
            Err(e) => return vec![Err(e)],
        };
        match event {
            Event::Init => {
                self.listing[i] = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                self.listing[i].get_or_insert_with(Vec::new).push(obj);
                Vec::new()
            }
            Event::InitDone => {
                let objects = self.listing[i].take().unwrap_or_default();
                self.listed[i] = true;
                if self.pending.is_some() {
                    self.initial_listing_done(i, objects)
                } else {
                    self.relisted(i, objects)
                }
            }
            Event::Apply(obj) => match &mut self.pending {
                Some(pending) => {
                    pending.insert(ObjectRef::from_obj(&obj), obj);
                    Vec::new()
                }
                None => vec![Ok(Event::Apply(obj))],
            },
            Event::Delete(obj) => match &mut self.pending {
                Some(pending) => {
                    pending.remove(&ObjectRef::from_obj(&obj));
                    Vec::new()
                }
                None => vec![Ok(Event::Delete(obj))],
            },
        }
    }

    /// Before the store is ready: gather, and list everything at once when all watchers are
    /// done.
    fn initial_listing_done(
        &mut self,
        i: usize,
        objects: Vec<K>,
    ) -> Vec<Result<Event<K>, watcher::Error>> {
        let scope = self.scopes[i].clone();
        let Some(pending) = &mut self.pending else {
            return Vec::new();
        };
        pending.retain(|_, obj| match &scope {
            None => false,
            Some(ns) => obj.namespace().as_deref() != Some(ns.as_str()),
        });
        for obj in objects {
            pending.insert(ObjectRef::from_obj(&obj), obj);
        }
        if !self.listed.iter().all(|l| *l) {
            return Vec::new();
        }
        let Some(pending) = self.pending.take() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(pending.len() + 2);
        out.push(Ok(Event::Init));
        out.extend(pending.into_values().map(|obj| Ok(Event::InitApply(obj))));
        out.push(Ok(Event::InitDone));
        out
    }

    /// After the store is ready: a relist of one watcher upserts what it found and deletes
    /// what it no longer has, in its own scope only.
    fn relisted(&self, i: usize, objects: Vec<K>) -> Vec<Result<Event<K>, watcher::Error>> {
        let present: std::collections::HashSet<ObjectRef<K>> =
            objects.iter().map(ObjectRef::from_obj).collect();
        let gone = self
            .store
            .state()
            .into_iter()
            .filter(|obj| self.in_scope(i, obj) && !present.contains(&ObjectRef::from_obj(&**obj)))
            .map(|obj| Ok(Event::Delete((*obj).clone())));
        let kept = objects.into_iter().map(|obj| Ok(Event::Apply(obj)));
        kept.chain(gone).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SendConnector;
    use serde_json::json;

    fn sc(ns: &str, name: &str) -> SendConnector {
        serde_json::from_value(json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"organization": "org", "smartHost": "relay.example.com"}
        }))
        .unwrap()
    }

    fn names(store: &Store<SendConnector>) -> Vec<String> {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others() {
        let (reader, mut writer) = reflector::store::<SendConnector>();
        let mut merge = Merge::new(vec![Some("a".into()), Some("b".into())], reader.clone());
        let mut feed = |merge: &mut Merge<SendConnector>, i: usize, e: Event<SendConnector>| {
            for out in merge.handle(i, Ok(e)) {
                writer.apply_watcher_event(&out.unwrap());
            }
        };
        feed(&mut merge, 0, Event::Init);
        feed(&mut merge, 0, Event::InitApply(sc("a", "one")));
        feed(&mut merge, 0, Event::InitDone);
        assert!(names(&reader).is_empty(), "not ready before b is listed");
        feed(&mut merge, 1, Event::Init);
        feed(&mut merge, 1, Event::InitApply(sc("b", "two")));
        feed(&mut merge, 1, Event::InitDone);
        assert_eq!(names(&reader), ["a/one", "b/two"]);

        // b relists (after a 410 Gone, say): a is untouched, b's vanished object goes.
        feed(&mut merge, 1, Event::Init);
        feed(&mut merge, 1, Event::InitApply(sc("b", "three")));
        feed(&mut merge, 1, Event::InitDone);
        assert_eq!(names(&reader), ["a/one", "b/three"]);

        feed(&mut merge, 0, Event::Apply(sc("a", "four")));
        feed(&mut merge, 0, Event::Delete(sc("a", "one")));
        assert_eq!(names(&reader), ["a/four", "b/three"]);
    }
}
