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

/// The OVH client for a resource of `namespace` whose credentials Secret is `own` (or the
/// operator's default, where that namespace may use it).
pub async fn exchange_client(
    ctx: &Context,
    namespace: &str,
    own: Option<&str>,
) -> Result<ExchangeClient, Error> {
    let (secret_ns, secret_name) = match own {
        Some(name) => (namespace.to_owned(), name.to_owned()),
        None => match &ctx.config.default_credentials_secret {
            Some((ns, name))
                if ctx
                    .config
                    .default_credentials_namespaces
                    .iter()
                    .any(|n| n == namespace || n == "*") =>
            {
                (ns.clone(), name.clone())
            }
            Some(_) => {
                return Err(Error::NoCredentials(format!(
                    "namespace {namespace} may not use the operator's default OVH credentials; set spec.credentialsSecretRef"
                )));
            }
            None => {
                return Err(Error::NoCredentials(
                    "no spec.credentialsSecretRef and no default OVH credentials".into(),
                ));
            }
        },
    };
    let Some(secret) = get_secret(ctx, &secret_ns, &secret_name).await? else {
        return Err(Error::CredentialsSecretMissing {
            namespace: secret_ns,
            name: secret_name,
        });
    };
    let credentials =
        Credentials::from_map(&secret_strings(&secret)).map_err(|e| Error::InvalidCredentials {
            name: format!("{secret_ns}/{secret_name}"),
            message: e.to_string(),
        })?;
    let identity = credentials.identity();
    let mut clients = ctx
        .ovh_clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = clients.get(&identity) {
        return Ok(c.clone());
    }
    let client = OvhClient::new(
        credentials,
        ctx.budgets.budget_for(&identity),
        ctx.config.ovh.clone(),
    )
    .map_err(Error::Ovh)?;
    let exchange = ExchangeClient::new(client);
    clients.insert(identity, exchange.clone());
    Ok(exchange)
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
