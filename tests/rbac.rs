//! The operator's shipped RBAC on a real kube-apiserver, in the mode `SENDCONNECTOR_TEST_RBAC`
//! names (`deploy/`'s ClusterRole, or the chart's Roles for `watchNamespaces`): the operator
//! converges as its ServiceAccount, and SubjectAccessReviews show what it may and may not do.
//! Always on a real API server (the shared one of the real pass, or a private one this
//! process starts): the in-memory API has no authorization to ask.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backend::{self, Backend, Kind, Rbac};
use common::operator_identity;
use common::*;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// Whether the API server allows the operator's ServiceAccount (in `home`) `verb` on
/// `group/resource[/subresource]` in `namespace` ("" for every namespace).
async fn allowed(h: &Harness, home: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (resource, None),
    };
    let (group, resource) = match resource.split_once('.') {
        Some((resource, group)) => (group, resource),
        None => ("", resource),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(operator_identity::user(home)),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{home}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(h.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap()
        .allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_converges_with_the_shipped_rbac_and_can_do_nothing_else() {
    let mut h = Harness::start_idle_on(Kind::Real, SEED).await;
    let elsewhere = h.unwatched_namespace("elsewhere").await;
    h.start_controller(HOUR);
    bound_pair(&h).await;
    let home = format!("{}-system", h.ns);
    let ns = h.ns.clone();
    let mode = backend::rbac_mode();

    // What it needs, in a watched namespace.
    for (verb, resource) in [
        ("list", "sendconnectors.sendconnector.io"),
        ("watch", "mailboxbindings.sendconnector.io"),
        ("get", "sendconnectors.sendconnector.io"),
        ("get", "mailboxbindings.sendconnector.io"),
        ("patch", "sendconnectors.sendconnector.io"),
        ("patch", "mailboxbindings.sendconnector.io/status"),
        ("get", "secrets"),
        ("watch", "secrets"),
        ("create", "events.events.k8s.io"),
        ("patch", "events.events.k8s.io"),
    ] {
        assert!(
            allowed(&h, &home, verb, resource, &ns).await,
            "{mode:?}: the operator may {verb} {resource}"
        );
    }
    // What it must not: write Secrets, create or delete its own kinds, touch other kinds.
    for (verb, resource) in [
        ("create", "secrets"),
        ("update", "secrets"),
        ("patch", "secrets"),
        ("delete", "secrets"),
        ("create", "sendconnectors.sendconnector.io"),
        ("delete", "sendconnectors.sendconnector.io"),
        ("update", "mailboxbindings.sendconnector.io"),
        ("delete", "mailboxbindings.sendconnector.io"),
        ("get", "configmaps"),
        ("list", "configmaps"),
        ("create", "pods"),
        ("list", "deployments.apps"),
        ("get", "leases.coordination.k8s.io"),
        ("create", "events"),
        ("delete", "events.events.k8s.io"),
        ("delete", "namespaces"),
    ] {
        assert!(
            !allowed(&h, &home, verb, resource, &ns).await,
            "{mode:?}: the operator must not {verb} {resource}"
        );
    }
    // Outside the watched namespaces: Secrets only with the cluster-wide rules.
    let cluster_wide = mode == Rbac::Cluster;
    for (verb, namespace) in [
        ("get", elsewhere.as_str()),
        ("list", elsewhere.as_str()),
        ("list", ""),
    ] {
        assert_eq!(
            allowed(&h, &home, verb, "secrets", namespace).await,
            cluster_wide,
            "{mode:?}: may the operator {verb} Secrets in {namespace:?}?"
        );
    }
    assert_eq!(
        allowed(&h, &home, "list", "sendconnectors.sendconnector.io", "").await,
        cluster_wide,
        "{mode:?}: may the operator list SendConnectors in every namespace?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_rbac_refuses_is_recorded() {
    let h = Harness::start_idle_on(Kind::Real, SEED).await;
    let mut config = test_config(HOUR);
    let client = h.controller_client(&mut config).await;
    let Backend::Real(real) = &h.k8s else {
        unreachable!()
    };
    let refused = Api::<ConfigMap>::namespaced(client.clone(), &h.ns)
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "{refused:?}"
    );
    // A request it may make is not recorded.
    h.connectors().list(&ListParams::default()).await.unwrap();
    Api::<sendconnector_operator::crd::SendConnector>::namespaced(client, &h.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let denied = std::mem::take(&mut *real.denied.lock().unwrap());
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert!(
        denied[0].starts_with(&format!("GET /api/v1/namespaces/{}/configmaps", h.ns)),
        "{denied:#?}"
    );
    assert!(denied[0].contains("cannot list resource"), "{denied:#?}");
}
