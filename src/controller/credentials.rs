//! Which OVH credentials a resource uses, read from its Secret when needed (Secret data is
//! never cached), and the one shared OVH client per set of credentials.
use super::context::Context;
use super::error::Error;
use crate::crd::SecretKeyRef;
use crate::ovh::{Credentials, ExchangeClient, OvhClient, SecretString};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::collections::BTreeMap;

/// The data of a Secret as UTF-8 strings.
fn secret_strings(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| String::from_utf8(v.0.clone()).ok().map(|s| (k.clone(), s)))
        .collect()
}

async fn get_secret(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Secret>, Error> {
    Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| Error::Kube {
            action: "read Secret",
            source,
        })
}

/// Reads and parses the OVH credentials Secret `namespace/name`.
async fn secret_credentials(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Credentials, Error> {
    let Some(secret) = get_secret(ctx, namespace, name).await? else {
        return Err(Error::CredentialsSecretMissing {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    };
    Credentials::from_map(&secret_strings(&secret)).map_err(|e| Error::InvalidCredentials {
        name: format!("{namespace}/{name}"),
        message: e.to_string(),
    })
}

/// The OVH client for a resource of `namespace` whose credentials Secret is `own`, or else
/// the operator's default credentials (its Secret, or failing that the `OVH_*` environment
/// variables), where that namespace may use them. A refusal costs no OVH request. With an
/// endpoint override ([`ControllerConfig::endpoint_override`](super::ControllerConfig)), the
/// credentials are used there and nowhere else.
pub async fn exchange_client(
    ctx: &Context,
    namespace: &str,
    own: Option<&str>,
) -> Result<ExchangeClient, Error> {
    let config = &ctx.config;
    let mut credentials = match own {
        Some(name) => secret_credentials(ctx, namespace, name).await?,
        None if !config.has_default_credentials() => {
            return Err(Error::NoCredentials(
                "no spec.credentialsSecretRef and no default OVH credentials".into(),
            ));
        }
        None if !config.may_use_default_credentials(namespace) => {
            return Err(Error::NoCredentials(format!(
                "namespace {namespace} may not use the operator's default OVH credentials; set spec.credentialsSecretRef"
            )));
        }
        None => match (
            &config.default_credentials_secret,
            &config.default_credentials_env,
        ) {
            (Some((ns, name)), _) => secret_credentials(ctx, ns, name).await?,
            (None, Some(env)) => env.clone(),
            (None, None) => {
                return Err(Error::NoCredentials(
                    "no spec.credentialsSecretRef and no default OVH credentials".into(),
                ));
            }
        },
    };
    if let Some(endpoint) = &config.endpoint_override {
        credentials.endpoint = endpoint.clone();
    }
    // One client per set of credentials, every field counted (a Secret whose secret changes
    // gets a new client at once); one request budget per consumer, whatever its secret.
    let key = credentials.cache_key();
    let now = tokio::time::Instant::now();
    let mut clients = ctx
        .ovh_clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((client, last_used)) = clients.get_mut(&key) {
        *last_used = now;
        return Ok(client.clone());
    }
    // Clients of credentials nobody has used for a while (a Secret since changed) go.
    let idle = ctx
        .config
        .resync_interval
        .max(ctx.config.stalled_retry)
        .saturating_mul(2);
    clients.retain(|_, (_, last_used)| now.duration_since(*last_used) < idle);
    let budget = ctx.budgets.budget_for(&credentials.identity());
    let client = OvhClient::new(credentials, budget, ctx.config.ovh.clone()).map_err(Error::Ovh)?;
    let exchange = ExchangeClient::new(client);
    clients.insert(key, (exchange.clone(), now));
    Ok(exchange)
}

/// The OVH API of a connector's Exchange service (the one its connector was created under,
/// once recorded), with the credentials the connector names (or the operator's default).
pub async fn service_api(
    ctx: &Context,
    connector: &crate::crd::SendConnector,
) -> Result<crate::ovh::ExchangeApi, Error> {
    let namespace = kube::ResourceExt::namespace(connector).unwrap_or_default();
    let own = connector
        .spec
        .credentials_secret_ref
        .as_ref()
        .map(|r| r.name.as_str());
    let exchange = exchange_client(ctx, &namespace, own).await?;
    let service = connector.exchange_service();
    Ok(exchange.service(&service.organization, &service.service))
}

/// The relay password and the Secret version it came from.
pub struct Password {
    pub value: SecretString,
    pub uid: String,
    pub resource_version: String,
}

/// Reads the password Secret a connector refers to.
pub async fn password(
    ctx: &Context,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<Password, Error> {
    let Some(secret) = get_secret(ctx, namespace, &reference.name).await? else {
        return Err(Error::PasswordSecretMissing {
            name: reference.name.clone(),
            key: reference.key.clone(),
        });
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .ok_or_else(|| Error::PasswordSecretMissing {
            name: reference.name.clone(),
            key: reference.key.clone(),
        })?;
    Ok(Password {
        value: SecretString::new(value.trim_end_matches(['\n', '\r'])),
        uid: secret.metadata.uid.unwrap_or_default(),
        resource_version: secret.metadata.resource_version.unwrap_or_default(),
    })
}
