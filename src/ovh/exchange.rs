//! The typed `/email/exchange` calls of the send-connector guide, on one Exchange service.
//!
//! Reads of many objects use OVH's bulk forms where the server honours them (`X-Ovh-Batch`
//! batch GETs, `CachedObjectList-Pages` list expansion) and fall back to one GET per object
//! where it does not; which form works is remembered per client.
use super::client::{Call, OvhClient, decode_error};
use super::error::OvhError;
use super::model::{
    Account, AccountConnectorUpdate, ChangeAuthentication, ChangeDefaultSbr, Domain,
    NewSendConnector, SendConnector, SendConnectorUpdate, Task,
};
use super::shared_reads::{self, Listing, SharedReads, Snapshot};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::time::Instant;

/// Route templates, as OVH's schema names them: the labels of logs, metrics and errors.
pub mod routes {
    pub const SEND_CONNECTORS: &str =
        "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector";
    pub const SEND_CONNECTOR: &str =
        "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector/{id}";
    pub const CHANGE_AUTHENTICATION: &str = "/email/exchange/{organizationName}/service/{exchangeService}/sendConnector/{id}/changeAuthentication";
    pub const ACCOUNTS: &str =
        "/email/exchange/{organizationName}/service/{exchangeService}/account";
    pub const ACCOUNT: &str = "/email/exchange/{organizationName}/service/{exchangeService}/account/{primaryEmailAddress}";
    pub const DOMAINS: &str = "/email/exchange/{organizationName}/service/{exchangeService}/domain";
    pub const DOMAIN: &str =
        "/email/exchange/{organizationName}/service/{exchangeService}/domain/{domainName}";
    pub const CHANGE_DEFAULT_SBR: &str = "/email/exchange/{organizationName}/service/{exchangeService}/domain/{domainName}/changeDefaultSBR";
    pub const TASKS: &str = "/email/exchange/{organizationName}/service/{exchangeService}/task";
    pub const TASK: &str = "/email/exchange/{organizationName}/service/{exchangeService}/task/{id}";
}

/// Characters escaped in a path segment: what would end or confuse the segment. `@` stays as
/// is (allowed in a path, and what the guide's examples send).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b',')
    .add(b'|');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// What is known of a server feature: not tried yet (0, the default), honoured, or ignored.
#[derive(Debug, Default)]
struct Support(AtomicU8);

impl Support {
    const YES: u8 = 1;
    const NO: u8 = 2;

    fn usable(&self) -> bool {
        self.0.load(Ordering::Relaxed) != Self::NO
    }

    fn set(&self, supported: bool) {
        self.0.store(
            if supported { Self::YES } else { Self::NO },
            Ordering::Relaxed,
        );
    }
}

/// What this client has learnt about the server's optional behaviours. Shared by clones of
/// one [`ExchangeApi`] factory.
#[derive(Debug, Default)]
pub struct ServerFeatures {
    batch: Support,
    expansion: Support,
    /// Whether OVH takes an account PUT carrying `sendConnectorId` alone.
    partial_account_put: Support,
}

/// Calls on one Exchange service (`organizationName`, `exchangeService`).
#[derive(Clone, Debug)]
pub struct ExchangeApi {
    client: OvhClient,
    organization: String,
    service: String,
    prefix: String,
    features: Arc<ServerFeatures>,
    shared: Arc<SharedReads>,
    /// When a connector write through this value (or a clone) was last answered: its own
    /// lists are read after it, so it always sees its writes.
    wrote_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Batch GETs are sent in chunks of this many keys, like OVH's own control panel.
const BATCH_CHUNK: usize = 50;
/// Page size for expanded lists: what OVH's control panel asks for, so that one request lists
/// a whole service's accounts (the operator reads them whole, shared by every binding).
const PAGE_SIZE: usize = 5000;

/// One page of an expanded list, decoded as it arrives (a service's accounts are thousands:
/// neither their text nor an intermediate tree is held whole). A server that does not
/// expand lists answers with keys: the first is kept, to tell such a page apart (and to be
/// the decode error of a page that mixes keys and objects, or says it is expanded).
struct ExpandedPage<T> {
    objects: Vec<T>,
    first_key: Option<Vec<u8>>,
}

impl<T> Default for ExpandedPage<T> {
    fn default() -> Self {
        Self {
            objects: Vec::new(),
            first_key: None,
        }
    }
}

impl<T: DeserializeOwned + Send> crate::ovh::client::Elements for ExpandedPage<T> {
    fn restart(&mut self) {
        self.objects.clear();
        self.first_key = None;
    }

    fn element(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        let is_object = json.first() == Some(&b'{');
        match (&self.first_key, is_object) {
            (None, true) => self.objects.push(serde_json::from_slice(json)?),
            (None, false) if self.objects.is_empty() => self.first_key = Some(json.to_vec()),
            // Keys and objects in one page.
            (None, false) => return Err(key_error::<T>(json)),
            (Some(key), true) => return Err(key_error::<T>(key)),
            (Some(_), false) => {}
        }
        Ok(())
    }
}

/// The decode error of a key where an object of `T` was expected.
fn key_error<T: DeserializeOwned>(key: &[u8]) -> serde_json::Error {
    serde_json::from_slice::<T>(key)
        .err()
        .unwrap_or_else(|| serde::de::Error::custom("a key where an object was expected"))
}

#[derive(serde::Deserialize)]
struct BatchElement<T> {
    value: Option<T>,
}

impl ExchangeApi {
    /// Calls on one service; [`ExchangeClient::service`] gives ones that share what was learnt
    /// about the server and recent connector lists with the client's other services.
    pub fn new(client: OvhClient, organization: &str, service: &str) -> Self {
        Self::sharing(
            client,
            organization,
            service,
            Arc::default(),
            Arc::default(),
        )
    }

    fn sharing(
        client: OvhClient,
        organization: &str,
        service: &str,
        features: Arc<ServerFeatures>,
        shared: Arc<SharedReads>,
    ) -> Self {
        let prefix = format!(
            "/email/exchange/{}/service/{}",
            segment(organization),
            segment(service)
        );
        Self {
            client,
            organization: organization.to_owned(),
            service: service.to_owned(),
            prefix,
            features,
            shared,
            wrote_at: Arc::default(),
        }
    }

    /// When a write through this value (or a clone) was last answered.
    fn last_write(&self) -> Option<Instant> {
        *self
            .wrote_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key of this service's shared reads.
    fn shared_key(&self) -> String {
        self.prefix.clone()
    }

    pub fn organization(&self) -> &str {
        &self.organization
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn client(&self) -> &OvhClient {
        &self.client
    }

    fn call(&self, method: Method, route: &'static str, suffix: &str) -> Call {
        Call::new(method, route, format!("{}{suffix}", self.prefix))
    }

    // ---- send connectors -------------------------------------------------------------

    /// `GET P/sendConnector`: the ids of the service's connectors.
    pub async fn list_send_connector_ids(&self) -> Result<Vec<i64>, OvhError> {
        self.client
            .call(&self.call(Method::GET, routes::SEND_CONNECTORS, "/sendConnector"))
            .await
    }

    /// `GET P/sendConnector/{id}`; a missing connector is an error with status 404.
    pub async fn get_send_connector(&self, id: i64) -> Result<SendConnector, OvhError> {
        self.client
            .call(&self.call(
                Method::GET,
                routes::SEND_CONNECTOR,
                &format!("/sendConnector/{id}"),
            ))
            .await
    }

    /// Every connector of the service, in as few requests as the server allows; a list read
    /// moments ago by another caller of this client serves (see [`SharedReads`]).
    pub async fn list_send_connectors(&self) -> Result<Vec<SendConnector>, OvhError> {
        Ok(self
            .list_send_connectors_since(None)
            .await?
            .connectors
            .as_ref()
            .clone())
    }

    /// Like [`ExchangeApi::list_send_connectors`], from a read started at `not_before` or
    /// later: a caller that wrote passes when its write was answered, so the list shows it.
    pub async fn list_send_connectors_since(
        &self,
        not_before: Option<Instant>,
    ) -> Result<Listing, OvhError> {
        let not_before = not_before.into_iter().chain(self.last_write()).max();
        self.shared
            .connectors(&self.shared_key(), not_before, || {
                self.read_send_connectors()
            })
            .await
    }

    /// The connectors as OVH lists them after this call starts, never a list read earlier
    /// (what a decision about creating a connector must rest on); the answer then serves
    /// other readers.
    pub async fn list_send_connectors_fresh(&self) -> Result<Vec<SendConnector>, OvhError> {
        Ok(self
            .list_send_connectors_since(Some(Instant::now()))
            .await?
            .connectors
            .as_ref()
            .clone())
    }

    /// The next [`ExchangeApi::list_send_connectors`] reads OVH, whatever was read moments ago
    /// (for a reconcile someone asked for).
    pub async fn forget_shared_reads(&self) {
        self.shared.invalidate(&self.shared_key()).await;
    }

    async fn read_send_connectors(&self) -> Result<Vec<SendConnector>, OvhError> {
        let call = self.call(Method::GET, routes::SEND_CONNECTORS, "/sendConnector");
        if let Some(all) = self.expanded_list::<SendConnector>(&call, None).await? {
            return Ok(all);
        }
        let ids = self.list_send_connector_ids().await?;
        self.get_send_connectors(&ids).await
    }

    /// A connector write. The lists other readers share are not thrown away: lists read
    /// through this value are read after the write (whatever its outcome: an answer may be
    /// lost after OVH applied it), and a caller that plans on lists later says so with
    /// [`ExchangeApi::list_send_connectors_since`].
    async fn connector_write<T>(&self, call: &Call) -> Result<T, OvhError>
    where
        T: DeserializeOwned,
    {
        let result = self.client.call(call).await;
        *self
            .wrote_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        result
    }

    /// The connectors with these ids; ids that no longer exist are left out.
    pub async fn get_send_connectors(&self, ids: &[i64]) -> Result<Vec<SendConnector>, OvhError> {
        let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let found = self
            .get_many(
                &keys,
                routes::SEND_CONNECTOR,
                |k| format!("/sendConnector/{k}"),
                |id| async move {
                    self.get_send_connector(id.parse().unwrap_or_default())
                        .await
                },
            )
            .await?;
        Ok(found.into_values().flatten().collect())
    }

    /// `POST P/sendConnector`. The answer is the `addSendConnector` task; the new id is not in
    /// it, so the caller finds the connector again by its display name.
    pub async fn create_send_connector(&self, body: &NewSendConnector) -> Result<Task, OvhError> {
        let call = self
            .call(Method::POST, routes::SEND_CONNECTORS, "/sendConnector")
            .json_body(body)?;
        self.connector_write(&call).await
    }

    /// `PUT P/sendConnector/{id}` with the writable fields to change. OVH documents the answer
    /// as void; the `setSendConnector` task it runs then shows in the connector's
    /// `taskPendingId`. An answer that is a task is returned.
    pub async fn update_send_connector(
        &self,
        id: i64,
        body: &SendConnectorUpdate,
    ) -> Result<Option<Task>, OvhError> {
        let call = self
            .call(
                Method::PUT,
                routes::SEND_CONNECTOR,
                &format!("/sendConnector/{id}"),
            )
            .json_body(body)?;
        self.connector_write::<Option<serde_json::Value>>(&call)
            .await
            .map(task_in)
    }

    /// `DELETE P/sendConnector/{id}`: the `deleteSendConnector` task.
    pub async fn delete_send_connector(&self, id: i64) -> Result<Task, OvhError> {
        self.connector_write(&self.call(
            Method::DELETE,
            routes::SEND_CONNECTOR,
            &format!("/sendConnector/{id}"),
        ))
        .await
    }

    /// `POST P/sendConnector/{id}/changeAuthentication`.
    pub async fn change_authentication(
        &self,
        id: i64,
        body: &ChangeAuthentication,
    ) -> Result<Task, OvhError> {
        let call = self
            .call(
                Method::POST,
                routes::CHANGE_AUTHENTICATION,
                &format!("/sendConnector/{id}/changeAuthentication"),
            )
            .json_body(body)?;
        self.connector_write(&call).await
    }

    // ---- accounts --------------------------------------------------------------------

    /// `GET P/account/{primaryEmailAddress}`.
    pub async fn get_account(&self, address: &str) -> Result<Account, OvhError> {
        self.client
            .call(&self.call(
                Method::GET,
                routes::ACCOUNT,
                &format!("/account/{}", segment(address)),
            ))
            .await
    }

    /// The accounts with these addresses (`None` for an address with no mailbox), through one
    /// filtered expanded list where the server honours it.
    pub async fn get_accounts(
        &self,
        addresses: &[String],
    ) -> Result<BTreeMap<String, Option<Account>>, OvhError> {
        if addresses.is_empty() {
            return Ok(BTreeMap::new());
        }
        let call = self.call(Method::GET, routes::ACCOUNTS, "/account");
        let filter = format!("primaryEmailAddress:in={}", addresses.join(","));
        if let Some(all) = self.expanded_list::<Account>(&call, Some(&filter)).await? {
            let mut by_address: BTreeMap<String, Option<Account>> =
                addresses.iter().map(|a| (a.clone(), None)).collect();
            for account in all {
                // The filter may be ignored or approximate: keep only what was asked for.
                if let Some(slot) = by_address.get_mut(&account.primary_email_address) {
                    *slot = Some(account);
                }
            }
            return Ok(by_address);
        }
        self.get_many(
            addresses,
            routes::ACCOUNT,
            |k| format!("/account/{}", segment(k)),
            |a| async move { self.get_account(&a).await },
        )
        .await
    }

    /// Every account of the service through one expanded list shared with the client's other
    /// callers (read from `not_before` on, and after this value's own writes), or `None` when
    /// the server does not expand lists (then [`ExchangeApi::get_accounts`] reads them).
    pub async fn accounts_since(
        &self,
        not_before: Option<Instant>,
    ) -> Result<Option<Snapshot<Account>>, OvhError> {
        if !self.features.expansion.usable() {
            return Ok(None);
        }
        let not_before = not_before.into_iter().chain(self.last_write()).max();
        self.shared
            .accounts(&self.shared_key(), not_before, || async {
                let call = self.call(Method::GET, routes::ACCOUNTS, "/account");
                self.expanded_list::<Account>(&call, None).await
            })
            .await
    }

    /// Every domain of the service, as [`ExchangeApi::accounts_since`].
    pub async fn domains_since(
        &self,
        not_before: Option<Instant>,
    ) -> Result<Option<Snapshot<Domain>>, OvhError> {
        if !self.features.expansion.usable() {
            return Ok(None);
        }
        let not_before = not_before.into_iter().chain(self.last_write()).max();
        self.shared
            .domains(&self.shared_key(), not_before, || async {
                let call = self.call(Method::GET, routes::DOMAINS, "/domain");
                self.expanded_list::<Domain>(&call, None).await
            })
            .await
    }

    /// Points a mailbox at a connector (`0` = the platform's own server) with a partial
    /// `PUT P/account/{address}` carrying `sendConnectorId` alone. If OVH rejects the partial
    /// body, the account is read and the PUT repeated with its `spamAndVirusConfiguration`,
    /// `deleteVirus` forced on (the guide's warning); the client then keeps sending the
    /// full form.
    pub async fn set_account_connector(
        &self,
        address: &str,
        connector_id: i64,
    ) -> Result<Option<Task>, OvhError> {
        let put = |body: AccountConnectorUpdate| async move {
            let call = self
                .call(
                    Method::PUT,
                    routes::ACCOUNT,
                    &format!("/account/{}", segment(address)),
                )
                .json_body(&body)?;
            self.client
                .call::<Option<serde_json::Value>>(&call)
                .await
                .map(task_in)
        };
        if self.features.partial_account_put.usable() {
            match put(AccountConnectorUpdate {
                send_connector_id: connector_id,
                spam_and_virus_configuration: None,
            })
            .await
            {
                Ok(task) => {
                    self.features.partial_account_put.set(true);
                    return Ok(task);
                }
                Err(e)
                    if e.status() == Some(400)
                        && !e
                            .api()
                            .is_some_and(super::error::ApiError::is_clock_or_signature) =>
                {
                    tracing::info!(error = %e, "OVH rejected a partial account update; sending the spam and virus settings too");
                    self.features.partial_account_put.set(false);
                }
                Err(e) => return Err(e),
            }
        }
        let account = self.get_account(address).await?;
        let mut config = account.spam_and_virus_configuration.unwrap_or_default();
        config.delete_virus = true;
        put(AccountConnectorUpdate {
            send_connector_id: connector_id,
            spam_and_virus_configuration: Some(config),
        })
        .await
    }

    // ---- domains ---------------------------------------------------------------------

    /// `GET P/domain/{domainName}`.
    pub async fn get_domain(&self, name: &str) -> Result<Domain, OvhError> {
        self.client
            .call(&self.call(
                Method::GET,
                routes::DOMAIN,
                &format!("/domain/{}", segment(name)),
            ))
            .await
    }

    /// `PUT P/domain/{domainName}/changeDefaultSBR`: the connector accounts created later in
    /// the domain will use (`0` = the platform's own server).
    pub async fn change_default_sbr(
        &self,
        name: &str,
        connector_id: i64,
    ) -> Result<Option<Task>, OvhError> {
        let body = ChangeDefaultSbr {
            send_connector_id_default: connector_id,
            sbr_default: None,
        };
        let call = self
            .call(
                Method::PUT,
                routes::CHANGE_DEFAULT_SBR,
                &format!("/domain/{}/changeDefaultSBR", segment(name)),
            )
            .json_body(&body)?;
        self.client
            .call::<Option<serde_json::Value>>(&call)
            .await
            .map(task_in)
    }

    // ---- tasks -----------------------------------------------------------------------

    /// `GET P/task/{id}`; finished tasks may answer 404 (then judge by the object).
    pub async fn get_task(&self, id: i64) -> Result<Task, OvhError> {
        self.client
            .call(&self.call(Method::GET, routes::TASK, &format!("/task/{id}")))
            .await
    }

    /// `GET P/task`: ids of the service's tasks (pending ones, and maybe recent finished ones).
    pub async fn list_task_ids(&self) -> Result<Vec<i64>, OvhError> {
        self.client
            .call(&self.call(Method::GET, routes::TASKS, "/task"))
            .await
    }

    /// The service's tasks still `todo` or `doing`, optionally of one function.
    pub async fn pending_tasks(&self, function: Option<&str>) -> Result<Vec<Task>, OvhError> {
        let call = self.call(Method::GET, routes::TASKS, "/task");
        let tasks = if let Some(all) = self
            .expanded_list::<Task>(&call, Some("status:in=todo,doing"))
            .await?
        {
            all
        } else {
            let ids = self.list_task_ids().await?;
            let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
            self.get_many(
                &keys,
                routes::TASK,
                |k| format!("/task/{k}"),
                |id| async move { self.get_task(id.parse().unwrap_or_default()).await },
            )
            .await?
            .into_values()
            .flatten()
            .collect()
        };
        Ok(tasks
            .into_iter()
            .filter(|t| !t.status.is_finished() && function.is_none_or(|f| t.function == f))
            .collect())
    }

    // ---- bulk reads ------------------------------------------------------------------

    /// A list route read as full objects (`X-Pagination-Mode: CachedObjectList-Pages`), or
    /// `None` when the server ignored the header and answered plain keys.
    async fn expanded_list<T: DeserializeOwned + Send>(
        &self,
        call: &Call,
        filter: Option<&str>,
    ) -> Result<Option<Vec<T>>, OvhError> {
        if !self.features.expansion.usable() {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut page = 1usize;
        loop {
            let mut paged = call
                .clone()
                .header("X-Pagination-Mode", "CachedObjectList-Pages")
                .header("X-Pagination-Size", PAGE_SIZE.to_string())
                .header("X-Pagination-Number", page.to_string());
            if let Some(f) = filter {
                paged = paged.header("X-Pagination-Filter", f);
            }
            let mut elements = ExpandedPage::<T>::default();
            let reply = self.client.execute_list(&paged, &mut elements).await?;
            let expanded = reply.header("x-pagination-elements").is_some();
            match &elements.first_key {
                // Keys where the server says it expanded the page.
                Some(key) if expanded => {
                    return Err(decode_error(
                        &paged,
                        reply.status,
                        &key_error::<T>(key),
                        key,
                    ));
                }
                Some(_) => {
                    self.features.expansion.set(false);
                    return Ok(None);
                }
                // An empty plain list says nothing about support; it is simply empty.
                None if elements.objects.is_empty() && !expanded => return Ok(Some(out)),
                None => {}
            }
            self.features.expansion.set(true);
            out.append(&mut elements.objects);
            let total_pages: usize = reply
                .header("x-pagination-total")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if page >= total_pages {
                return Ok(Some(out));
            }
            page += 1;
        }
    }

    /// Objects by key through `X-Ovh-Batch` GETs where the server honours them, else one GET
    /// each. Missing keys map to `None`.
    async fn get_many<T, F, Fut>(
        &self,
        keys: &[String],
        route: &'static str,
        path_of: impl Fn(&str) -> String,
        get_one: F,
    ) -> Result<BTreeMap<String, Option<T>>, OvhError>
    where
        T: DeserializeOwned,
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, OvhError>>,
    {
        let mut out = BTreeMap::new();
        let mut rest: Vec<String> = keys.to_vec();
        if keys.len() > 1 && self.features.batch.usable() {
            rest.clear();
            for chunk in keys.chunks(BATCH_CHUNK) {
                let joined: Vec<String> = chunk.iter().map(|k| path_of(k)).collect();
                // All paths share the prefix; the keys are the last segment.
                let last: Vec<&str> = joined.iter().filter_map(|p| p.rsplit('/').next()).collect();
                let head = joined[0].rsplit_once('/').map_or("", |(h, _)| h);
                let call = self
                    .call(Method::GET, route, &format!("{head}/{}", last.join(",")))
                    .header("X-Ovh-Batch", ",");
                match self.client.execute(&call).await {
                    Ok(reply) => match reply.json::<Vec<BatchElement<T>>>(&call) {
                        Ok(elements) if elements.len() == chunk.len() => {
                            self.features.batch.set(true);
                            for (key, element) in chunk.iter().zip(elements) {
                                out.insert(key.clone(), element.value);
                            }
                        }
                        _ => {
                            self.features.batch.set(false);
                            rest.extend(chunk.iter().cloned());
                        }
                    },
                    // A server without batch reads takes the joined keys as one missing key.
                    Err(e) if e.is_not_found() || e.status() == Some(400) => {
                        self.features.batch.set(false);
                        rest.extend(chunk.iter().cloned());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for key in rest {
            match get_one(key.clone()).await {
                Ok(v) => {
                    out.insert(key, Some(v));
                }
                Err(e) if e.is_not_found() => {
                    out.insert(key, None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// Builds the [`ExchangeApi`] of each service for one client, sharing what was learnt about
/// the server.
#[derive(Clone, Debug)]
pub struct ExchangeClient {
    client: OvhClient,
    features: Arc<ServerFeatures>,
    shared: Arc<SharedReads>,
}

impl ExchangeClient {
    pub fn new(client: OvhClient) -> Self {
        Self::with_shared_reads(client, shared_reads::DEFAULT_TTL)
    }

    /// A client whose connector lists serve other callers for `ttl` (zero: never).
    pub fn with_shared_reads(client: OvhClient, ttl: std::time::Duration) -> Self {
        Self {
            client,
            features: Arc::default(),
            shared: Arc::new(SharedReads::new(ttl)),
        }
    }

    pub fn service(&self, organization: &str, service: &str) -> ExchangeApi {
        ExchangeApi::sharing(
            self.client.clone(),
            organization,
            service,
            self.features.clone(),
            self.shared.clone(),
        )
    }

    pub fn client(&self) -> &OvhClient {
        &self.client
    }
}

/// The task in an answer documented as void: some OVH writes may answer with the task they
/// started; anything else is no task (the object's `taskPendingId` tells it then).
fn task_in(answer: Option<serde_json::Value>) -> Option<Task> {
    answer.and_then(|v| serde_json::from_value::<Task>(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_what_would_break_the_path() {
        assert_eq!(
            segment("newsletter@mydomain.ovh"),
            "newsletter@mydomain.ovh"
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("a,b"), "a%2Cb");
    }
}
