//! The kube-runtime wiring: one controller per kind, the metadata-only Secret watch that
//! triggers them, and the shared context (OVH clients per credentials, stores, Events).
mod binding;
mod conditions;
mod connector;
mod context;
mod credentials;
mod error;

pub use context::{Context, ControllerConfig};
pub use error::Error;

use crate::crd::{MailboxBinding, SendConnector};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as RunConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::future::Future;
use std::sync::Arc;

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Checks that both CRDs are installed, with a message that says what to do when not.
pub async fn check_crds(client: &Client) -> Result<(), Error> {
    for (api, kind) in [
        (
            Api::<SendConnector>::all(client.clone())
                .list(&kube::api::ListParams::default().limit(1))
                .await
                .map(drop),
            "SendConnector",
        ),
        (
            Api::<MailboxBinding>::all(client.clone())
                .list(&kube::api::ListParams::default().limit(1))
                .await
                .map(drop),
            "MailboxBinding",
        ),
    ] {
        if let Err(e) = api {
            return Err(Error::CrdsMissing {
                kind,
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Runs both controllers until `shutdown` resolves. Watches one namespace, or all when
/// `config.namespace` is `None`.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    check_crds(&client).await?;
    let namespace = config.namespace.clone();
    let ns = namespace.as_deref();
    let wc = watcher::Config::default();
    let connectors = Controller::new(api_for::<SendConnector>(&client, ns), wc.clone());
    let bindings = Controller::new(api_for::<MailboxBinding>(&client, ns), wc.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        connectors.store(),
        bindings.store(),
    ));

    // Secrets are watched for their metadata only (no data is cached): a change to a Secret
    // a resource uses reconciles that resource at once.
    let secret_events = || {
        watcher(
            api_for::<PartialObjectMeta<Secret>>(&client, ns),
            wc.clone(),
        )
        .touched_objects()
    };
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
    let bindings = bindings.watches(
        api_for::<SendConnector>(&client, ns),
        wc.clone(),
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
                tracing::debug!(error = %e, "SendConnector reconcile ended with an error");
            }
        });
    let bindings = bindings
        .with_config(run_config)
        .graceful_shutdown_on(stop2)
        .run(binding::reconcile, binding::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "MailboxBinding reconcile ended with an error");
            }
        });
    tokio::join!(connectors, bindings);
    Ok(())
}

/// Requeue delay for "look again soon" (a task runs, a creation may be in flight).
pub(crate) fn soon() -> Action {
    Action::requeue(std::time::Duration::from_secs(2))
}
