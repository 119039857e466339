//! The kube-runtime wiring: one controller per kind, the metadata-only Secret watch that
//! triggers them, and the shared context (OVH clients per credentials, stores, Events).
mod binding;
mod conditions;
mod connector;
mod context;
mod credentials;
mod error;
mod watches;

pub use context::{Context, ControllerConfig};
pub use error::Error;

use crate::crd::{MailboxBinding, SendConnector};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as RunConfig, Controller};
use kube::runtime::reflector::ObjectRef;
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
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    check_crds(&client).await?;
    let namespaces = config.namespaces.clone();
    let wc = watcher::Config::default();
    let (connector_store, connector_trigger) =
        watches::reflect::<SendConnector>(&client, &namespaces, &wc);
    let (binding_store, binding_trigger) =
        watches::reflect::<MailboxBinding>(&client, &namespaces, &wc);
    let connectors = Controller::for_stream(connector_trigger, connector_store.clone());
    let bindings = Controller::for_stream(binding_trigger, binding_store.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        connector_store,
        binding_store,
    ));

    // Secrets are watched for their metadata only (no data is cached): a change to a Secret
    // a resource uses reconciles that resource at once.
    let secret_events = || watches::touched::<PartialObjectMeta<Secret>>(&client, &namespaces, &wc);
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
    let bindings = bindings.watches_stream(
        watches::touched::<SendConnector>(&client, &namespaces, &wc),
        move |c| {
            m_ctx
                .bindings_of(&c.namespace().unwrap_or_default(), &c.name_any())
                .into_iter()
                .map(|b| ObjectRef::from_obj(&*b))
                .collect::<Vec<_>>()
        },
    );

    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        let mut rx = rx;
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let stop2 = {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let run_config = RunConfig::default().concurrency(8);
    let connectors = connectors
        .with_config(run_config.clone())
        .graceful_shutdown_on(stop)
        .run(connector::reconcile, connector::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                log_run_error("SendConnector", &e);
            }
        });
    let bindings = bindings
        .with_config(run_config)
        .graceful_shutdown_on(stop2)
        .run(binding::reconcile, binding::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                log_run_error("MailboxBinding", &e);
            }
        });
    tokio::join!(connectors, bindings);
    Ok(())
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
