//! The kube-runtime wiring: one controller per kind, the metadata-only Secret watch that
//! triggers them, and the shared context (OVH clients per credentials, stores, Events).
mod binding;
mod changes;
mod conditions;
mod connector;
mod context;
mod credentials;
mod decode;
mod error;
mod events;
pub mod leader;
mod lifecycle;
mod watches;

pub use context::{Context, ControllerConfig};
pub use error::Error;
pub use leader::LeaderElection;

use crate::crd::{MailboxBinding, SendConnector};
use crate::ovh::{budget, shared_reads};
use crate::telemetry::metrics;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as RunConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::future::Future;
use std::sync::Arc;

/// The API group and version both CRDs serve.
const API_VERSION: &str = "sendconnector.io/v1alpha1";

/// Checks that both CRDs are installed, with a message that says what to do when not. Uses
/// discovery, which needs no permission on the resources themselves (a namespace-limited
/// operator may not list them cluster-wide).
pub async fn check_crds(client: &Client) -> Result<(), Error> {
    let served = match client.list_api_group_resources(API_VERSION).await {
        Ok(list) => list.resources,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(source) => {
            return Err(Error::Kube {
                action: "ask the Kubernetes API whether the sendconnector.io CRDs are installed",
                source,
            });
        }
    };
    for (kind, plural) in [
        ("SendConnector", "sendconnectors"),
        ("MailboxBinding", "mailboxbindings"),
    ] {
        if !served.iter().any(|r| r.name == plural) {
            return Err(Error::CrdsMissing {
                kind,
                message: format!("the API server does not serve {plural}.{API_VERSION}"),
            });
        }
    }
    Ok(())
}

/// Runs both controllers until `shutdown` resolves. Watches the namespaces in
/// `config.namespaces` (one watch per namespace and kind, so Roles in those namespaces
/// suffice), or the whole cluster when the list is empty.
///
/// The resource caches are filled at once and kept warm (readiness, metrics). With
/// `config.leader_election`, the controllers start only once this instance holds the Lease;
/// if it loses the Lease they stop at once and `run` returns an error (the process should
/// exit so that Kubernetes restarts it as a standby). Everything runs inside the returned
/// future: dropping it stops all of it, Lease renewal included.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    check_crds(&client).await?;
    let mut config = config;
    let telemetry = config.telemetry.clone();
    if config.ovh.observer.is_none() {
        config.ovh.observer = Some(telemetry.request_observer());
    }
    let namespaces = config.namespaces.clone();
    let wc = watcher::Config::default();
    let undecodable = decode::Undecodable::new(Some(context::recorder(&client)));
    let (connector_store, connector_feed, connector_reflector) =
        watches::reflect::<SendConnector>(&client, &namespaces, &wc, &telemetry, &undecodable);
    let (binding_store, binding_feed, binding_reflector) =
        watches::reflect::<MailboxBinding>(&client, &namespaces, &wc, &telemetry, &undecodable);
    telemetry.count_resources_with({
        let (connectors, bindings) = (connector_store.clone(), binding_store.clone());
        move || resource_counts(&connectors, &bindings)
    });
    let election = config.leader_election.clone();
    let ctx = Arc::new(Context::new(
        with_requests_in_flight(&client, KUBERNETES_REQUESTS_IN_FLIGHT),
        config,
        connector_store.clone(),
        binding_store.clone(),
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let forward_shutdown = {
        let telemetry = telemetry.clone();
        async move {
            shutdown.await;
            telemetry.health().set_stopping();
            let _ = stop_tx.send(true);
            std::future::pending::<()>().await;
        }
    };
    let readiness = {
        let telemetry = telemetry.clone();
        let (connectors, bindings) = (connector_store.clone(), binding_store.clone());
        async move {
            if connectors.wait_until_ready().await.is_ok()
                && bindings.wait_until_ready().await.is_ok()
            {
                tracing::info!("resource caches filled");
                telemetry.health().set_ready(true);
            }
            std::future::pending::<()>().await;
        }
    };
    // Boxed: the watch streams are large, and callers keep `run` on their stack.
    let reflectors = async {
        let mut connectors = Box::pin(connector_reflector);
        let mut bindings = Box::pin(binding_reflector);
        loop {
            tokio::select! {
                event = connectors.next() => if event.is_none() { break },
                event = bindings.next() => if event.is_none() { break },
            }
        }
    };
    // Boxed: the controllers' state is large, and callers keep `run` on their stack.
    let work = Box::pin(lead_and_reconcile(
        &client,
        &ctx,
        election,
        (connector_feed, binding_feed),
        &stop_rx,
    ));

    let result = tokio::select! {
        result = work => result,
        () = reflectors => Err(stopped("keep watching the resources", "the watch streams ended")),
        () = forward_shutdown => Ok(()),
        () = readiness => Ok(()),
    };
    telemetry.metrics().set_leader(false);
    telemetry.health().set_ready(false);
    if let Err(e) = &result {
        telemetry.health().set_dead(e.to_string());
    }
    result
}

/// Waits until a stop is asked for.
async fn stop_requested(stop: &tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop.clone();
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Waits for full caches and for the Lease (when there is an election), then runs the
/// controllers until a stop is asked for or the Lease is lost.
async fn lead_and_reconcile(
    client: &Client,
    ctx: &Arc<Context>,
    election: Option<leader::LeaderElection>,
    feeds: (watches::Feed<SendConnector>, watches::Feed<MailboxBinding>),
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(), Error> {
    let telemetry = ctx.config.telemetry.clone();
    // The controllers start on full caches: everything in them is reconciled once, and
    // every change after that triggers its object.
    tokio::select! {
        _ = futures::future::join(
            ctx.connectors.wait_until_ready(),
            ctx.bindings.wait_until_ready(),
        ) => {}
        () = stop_requested(stop) => return Ok(()),
    }
    let mut leader = election.map(|settings| leader::Leader::new(client.clone(), settings));
    if let Some(leader) = leader.as_mut() {
        tokio::select! {
            () = leader.acquire() => {}
            () = stop_requested(stop) => return Ok(()),
        }
    }
    telemetry.metrics().set_leader(true);
    let controllers = controllers(client, ctx, feeds, stop);
    let Some(mut leader) = leader else {
        controllers.await;
        return Ok(());
    };
    let lost = tokio::select! {
        () = controllers => None,
        lost = leader.hold() => Some(lost),
    };
    telemetry.metrics().set_leader(false);
    match lost {
        None => {
            leader.release().await;
            Ok(())
        }
        Some(lost) => {
            tracing::error!(error = %lost, "lost the leader election: stopped reconciling");
            Err(stopped("keep the leader election Lease", lost.to_string()))
        }
    }
}

/// Both controllers, until a stop is asked for (they finish the reconciles in progress).
async fn controllers(
    client: &Client,
    ctx: &Arc<Context>,
    (connector_feed, binding_feed): (watches::Feed<SendConnector>, watches::Feed<MailboxBinding>),
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let namespaces = &ctx.config.namespaces;
    let telemetry = &ctx.config.telemetry;
    let wc = watcher::Config::default();
    let everything = || futures::stream::once(std::future::ready(()));
    let connectors = Controller::for_stream(connector_feed.subscribe(), ctx.connectors.clone())
        .reconcile_all_on(everything());
    let bindings = Controller::for_stream(binding_feed.subscribe(), ctx.bindings.clone())
        .reconcile_all_on(everything());

    // Secrets are watched for their metadata only (no data is cached): a change to a Secret
    // a resource uses reconciles that resource at once.
    let secret_events =
        || watches::touched::<PartialObjectMeta<Secret>>(client, namespaces, &wc, telemetry);
    let c_ctx = ctx.clone();
    let connectors = connectors.watches_stream(secret_events(), move |secret| {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        c_ctx
            .connectors_using_secret(&ns, &name)
            .into_iter()
            .map(|c| ObjectRef::from_obj(&*c))
            .collect::<Vec<_>>()
    });
    let b_ctx = ctx.clone();
    let bindings = bindings.watches_stream(secret_events(), move |secret| {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        b_ctx
            .bindings_using_secret(&ns, &name)
            .into_iter()
            .map(|b| ObjectRef::from_obj(&*b))
            .collect::<Vec<_>>()
    });
    // A connector that gets its id, changes or goes away concerns the bindings that use it.
    let m_ctx = ctx.clone();
    // Undecodable connectors were reported by the connector watch already; this one only
    // leaves them out.
    let quiet = decode::Undecodable::new(None);
    let bindings = bindings.watches_stream(
        watches::touched_decoded::<SendConnector>(client, namespaces, &wc, telemetry, &quiet),
        move |c| {
            m_ctx
                .bindings_of(&c.namespace().unwrap_or_default(), &c.name_any())
                .into_iter()
                .map(|b| ObjectRef::from_obj(&*b))
                .collect::<Vec<_>>()
        },
    );

    // A binding that goes away, or drops a mailbox or domain, ends the conflicts it won: the
    // bindings that lost them proceed at once (not at their next resync).
    let w_ctx = ctx.clone();
    let bindings = bindings.watches_stream(binding_feed.touched(), move |b| {
        w_ctx
            .bindings_in_conflict_with(&b)
            .into_iter()
            .map(|o| ObjectRef::from_obj(&*o))
            .collect::<Vec<_>>()
    });
    // Likewise for a SendConnector that held a connector name others claim too.
    let s_ctx = ctx.clone();
    let connectors = connectors.watches_stream(connector_feed.touched(), move |c| {
        s_ctx
            .connectors_in_conflict_with(&c)
            .into_iter()
            .map(|o| ObjectRef::from_obj(&*o))
            .collect::<Vec<_>>()
    });

    // Reconciles at once are bounded only to bound memory (see `RECONCILES_AT_ONCE`): the
    // request budget is what paces OVH, and it serves a recent change ahead of a bulk one,
    // which it can only do for reconciles that are running.
    let run_config = RunConfig::default().concurrency(RECONCILES_AT_ONCE);
    let connectors = connectors
        .with_config(run_config.clone())
        .graceful_shutdown_on(stop_requested_owned(stop.clone()))
        .run(
            |sc, ctx| {
                let since = ctx.change_began(&*sc);
                let wave = lifecycle::resync_wave(&ctx, &*sc, sc.status.as_ref());
                measured(
                    "SendConnector",
                    ctx.clone(),
                    budget::with_urgency(
                        since,
                        shared_reads::in_resync_wave(wave, connector::reconcile(sc, ctx)),
                    ),
                )
            },
            connector::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                log_run_error("SendConnector", &e);
            }
        });
    let bindings = bindings
        .with_config(run_config)
        .graceful_shutdown_on(stop_requested_owned(stop.clone()))
        .run(
            |mb, ctx| {
                let since = ctx.change_began(&*mb);
                let wave = lifecycle::resync_wave(&ctx, &*mb, mb.status.as_ref());
                measured(
                    "MailboxBinding",
                    ctx.clone(),
                    budget::with_urgency(
                        since,
                        shared_reads::in_resync_wave(wave, binding::reconcile(mb, ctx)),
                    ),
                )
            },
            binding::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                log_run_error("MailboxBinding", &e);
            }
        });
    tokio::join!(connectors, bindings);
}

/// Reconciles of one kind running at once. Each running reconcile holds its resource's
/// status, its mailboxes' accounts, its requests and their answers: a thousand bindings and a
/// thousand connectors at once took 150 MiB. This many keep the request budget busy at any
/// rate OVH allows (a reconcile waits for its turn mostly there); more queue, oldest first,
/// and a change made meanwhile waits for a free place among them, not for all of them.
const RECONCILES_AT_ONCE: u16 = 128;

/// The reconcilers' Kubernetes requests in flight at once. Without this each running
/// reconcile could hold a connection of its own to the API server (hundreds, each with its
/// buffers).
const KUBERNETES_REQUESTS_IN_FLIGHT: usize = 32;

/// `client`, sending at most `limit` requests at once (the others wait their turn). The
/// watches keep the unlimited client: their requests last.
///
/// Each request waits for its turn and is sent from a task of its own, so that its turn goes
/// back as soon as its answer is in even when its caller is not polling it just then: a
/// reconcile stays paused while its slow-work announcement is written (`announced_if_slow`),
/// and a turn held by a paused request (or given to one queued) would otherwise be kept from
/// that very announcement: with a thousand reconciles at once, every turn was held so.
fn with_requests_in_flight(client: &Client, limit: usize) -> Client {
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let inner = client.clone();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (inner, permits) = (inner.clone(), permits.clone());
        let sent = tokio::spawn(async move {
            let _turn = permits.acquire_owned().await;
            inner.send(request).await
        });
        async move {
            sent.await
                .map_err(|e| kube::Error::Service(Box::new(e)))
                .and_then(|answer| answer)
        }
    });
    Client::new(service, client.default_namespace().to_owned())
}

async fn stop_requested_owned(stop: tokio::sync::watch::Receiver<bool>) {
    stop_requested(&stop).await;
}

/// A reconcile, counted and timed.
async fn measured(
    kind: &'static str,
    ctx: Arc<Context>,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    ctx.metrics().reconciled(
        kind,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    result
}

/// `sendconnector_resources`: the resources in the caches by kind and condition.
fn resource_counts(
    connectors: &Store<SendConnector>,
    bindings: &Store<MailboxBinding>,
) -> metrics::ResourceCounts {
    let mut counts = metrics::count_conditions(
        "SendConnector",
        connectors.state().iter().map(|c| {
            let conditions = c.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
            metrics::resource_condition(c.is_paused(), conditions, c.metadata.generation)
        }),
    );
    counts.extend(metrics::count_conditions(
        "MailboxBinding",
        bindings.state().iter().map(|b| {
            let conditions = b.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
            metrics::resource_condition(b.is_paused(), conditions, b.metadata.generation)
        }),
    ));
    counts
}

/// Why `run` ended without being asked to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Stopped(String);

fn stopped(action: &'static str, why: impl Into<String>) -> Error {
    Error::Kube {
        action,
        source: kube::Error::Service(Box::new(Stopped(why.into()))),
    }
}

/// Reconcile failures are reported in the resource's status and Events, so they are only
/// debug lines here; a failing watch (the API unreachable, a namespace the operator may not
/// read) stops everything from being seen and is a warning.
fn log_run_error<E: std::error::Error, Q: std::error::Error>(
    kind: &str,
    error: &kube::runtime::controller::Error<E, Q>,
) {
    use kube::runtime::controller::Error as RunError;
    match error {
        RunError::QueueError(e) => {
            tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
        }
        RunError::RunnerError(e) => tracing::warn!(kind, error = %e, "controller runner error"),
        other => tracing::debug!(kind, error = %other, "reconcile ended with an error"),
    }
}

/// Requeue delay for "look again soon" (a task runs, a creation may be in flight).
pub(crate) fn soon() -> Action {
    Action::requeue(std::time::Duration::from_secs(2))
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A client whose every request is answered 20 ms after it arrives, counting arrivals.
    fn slow_client(arrived: Arc<AtomicUsize>) -> kube::Client {
        let service = tower::service_fn(move |_: http::Request<kube::client::Body>| {
            arrived.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(
                    b"{}".to_vec(),
                )))
            }
        });
        kube::Client::new(service, "default")
    }

    fn request() -> http::Request<kube::client::Body> {
        http::Request::get("/version")
            .body(kube::client::Body::from(Vec::new()))
            .unwrap()
    }

    /// Polls `request` until the limit lets it through to the server (`arrived` grows), then
    /// leaves it unpolled.
    async fn send_then_pause(
        client: &kube::Client,
        arrived: &AtomicUsize,
    ) -> impl std::future::Future<Output = Result<http::Response<kube::client::Body>, kube::Error>>
    {
        let before = arrived.load(Ordering::SeqCst);
        let mut pending = Box::pin(client.send(request()));
        while arrived.load(Ordering::SeqCst) == before {
            assert!(futures::poll!(&mut pending).is_pending());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        pending
    }

    /// A reconcile can be paused between two polls of a Kubernetes request (its slow-work
    /// announcement is written meanwhile): the limit's turn it holds goes back all the same
    /// once the answer is in, and a turn that comes to it while it is paused is not kept from
    /// others. Were it kept, a thousand paused reconciles would hold every turn while their
    /// announcements wait for one. On the test clock: the answers' 20 ms and the polls' pauses
    /// are counted exactly, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn a_paused_request_holds_no_turn_of_the_in_flight_limit() {
        let arrived = Arc::new(AtomicUsize::new(0));
        let client = super::with_requests_in_flight(&slow_client(arrived.clone()), 1);
        // The next request gets its turn and its answer.
        let next_is_answered = async |what: &str| {
            let next = tokio::time::timeout(Duration::from_secs(5), client.send(request())).await;
            assert!(
                next.is_ok(),
                "{what}: {} requests arrived",
                arrived.load(Ordering::SeqCst)
            );
        };

        // Paused while its answer comes in.
        let _paused = send_then_pause(&client, &arrived).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        next_is_answered("a request after a paused one").await;

        // Paused while it waits for its turn.
        let mut first = Box::pin(client.send(request()));
        let mut queued = Box::pin(client.send(request()));
        for _ in 0..10 {
            assert!(futures::poll!(&mut first).is_pending());
            assert!(futures::poll!(&mut queued).is_pending());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        first.await.unwrap();
        next_is_answered("a request after a queued paused one").await;
    }

    fn size<F: std::future::Future>(_: &F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Reconciles are not limited in number, so what each one holds while it waits counts
    /// many times over: the branches of a reconcile are boxed, and only the one running is
    /// allocated (the whole state machine was 14 to 18 KB before).
    #[tokio::test]
    async fn a_reconcile_in_flight_holds_little_memory() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (connectors, _) = kube::runtime::reflector::store();
        let (bindings, _) = kube::runtime::reflector::store();
        let ctx = Arc::new(super::Context::new(
            client,
            super::ControllerConfig::default(),
            connectors,
            bindings,
        ));
        let sc: crate::crd::SendConnector = serde_json::from_value(serde_json::json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": "a"},
            "spec": {"organization": "o", "smartHost": "h", "credentialsSecretRef": {"name": "x"}}
        }))
        .unwrap();
        let mb: crate::crd::MailboxBinding = serde_json::from_value(serde_json::json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": "a"},
            "spec": {"connectorRef": {"name": "a"}, "mailboxes": ["a@b.c"]}
        }))
        .unwrap();
        let connector = size(&super::connector::reconcile(Arc::new(sc), ctx.clone()));
        let binding = size(&super::binding::reconcile(Arc::new(mb), ctx.clone()));
        assert!(
            connector <= 4096,
            "a SendConnector reconcile: {connector} bytes"
        );
        assert!(
            binding <= 4096,
            "a MailboxBinding reconcile: {binding} bytes"
        );
    }
}
