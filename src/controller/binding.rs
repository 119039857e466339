//! Reconciling a `MailboxBinding`: point its mailboxes (and the defaults of its domains) at
//! the connector, put back to `0` what it no longer lists, and everything on deletion.
use super::conditions::{self, Verdict, secret_version};
use super::connector::write_span;
use super::context::Context;
use super::credentials::service_api;
use super::error::Error;
use super::lifecycle::{
    add_finalizer, after_error, announced_if_slow, has_finalizer, key_of, needs_announcement,
    publish, remove_finalizer, report,
};
use super::soon;
use crate::crd::{
    BindingPhase, DeletionPolicy, DomainStatus, MailboxBinding, MailboxBindingStatus,
    MailboxStatus, PlannedCall, RECONCILE_REQUESTED_AT_ANNOTATION, SendConnector, reasons,
};
use crate::ovh::model::{Account, Domain};
use crate::ovh::{ExchangeApi, OvhError};
use crate::reconcile::binding::{
    BindingInputs, BindingPlan, BindingWrite, Phase, domain_key, plan, plan_release_all,
};
use crate::reconcile::dry_run::{NEW_CONNECTOR, binding_calls};
use crate::text;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::Instrument;

/// What a stalled binding depends on: its spec, its connector and the credentials.
async fn stall_inputs(mb: &MailboxBinding, ctx: &Context) -> String {
    let ns = mb.namespace().unwrap_or_default();
    let connector = ctx.connector(&ns, &mb.spec.connector_ref.name);
    let creds = match connector
        .as_ref()
        .and_then(|c| c.spec.credentials_secret_ref.clone())
    {
        Some(r) => secret_version(&ctx.client, &ns, &r.name).await,
        None => "-".to_owned(),
    };
    format!(
        "{:?}|{:?}|{}|{:?}|{:?}|{creds}",
        mb.meta().generation,
        mb.annotations().get(RECONCILE_REQUESTED_AT_ANNOTATION),
        mb.is_paused(),
        connector.as_ref().and_then(|c| c.meta().generation),
        connector
            .as_ref()
            .and_then(|c| c.status.as_ref().and_then(|s| s.connector_id)),
    )
}

pub async fn reconcile(mb: Arc<MailboxBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<MailboxBinding> =
        Api::namespaced(ctx.client.clone(), &mb.namespace().unwrap_or_default());
    let key = key_of(&*mb);
    let uid = mb.uid().unwrap_or_default();
    let old: Option<MailboxBindingStatus> =
        ctx.remembered_status(&uid).or_else(|| mb.status.clone());
    let mut status = ctx
        .draft_status(&uid)
        .or_else(|| old.clone())
        .unwrap_or_default();
    let mut held_inputs: Option<String> = None;
    // The finalizer first: its patch is checked against the object's resourceVersion, which
    // a status write would change.
    if mb.meta().deletion_timestamp.is_none() && !has_finalizer(&*mb) {
        Box::pin(add_finalizer(&api, &*mb)).await?;
    }
    let outcome = if mb.meta().deletion_timestamp.is_some() {
        if !has_finalizer(&*mb) {
            return Ok(Action::await_change());
        }
        match Box::pin(release(&mb, &ctx, &mut status)).await {
            Ok(None) => {
                Box::pin(remove_finalizer(&api, &*mb)).await?;
                ctx.reset_backoff(&key);
                ctx.tasks_over(&key);
                ctx.forget_status(&uid);
                return Ok(Action::await_change());
            }
            Ok(Some(r)) => Ok(r),
            Err(e) => Err(e),
        }
    } else {
        let inputs = Box::pin(stall_inputs(&mb, &ctx)).await;
        if let Some(wait) = ctx.held_for(&key, &inputs) {
            return Ok(Action::requeue(wait));
        }
        // Woken by its own status write while its tasks run: the poll is not due yet.
        if let Some(wait) = ctx.polls.remaining(&key, &inputs) {
            return Ok(Action::requeue(wait));
        }
        let base = needs_announcement(&mut status);
        let outcome = Box::pin(announced_if_slow(
            &ctx,
            &api,
            &*mb,
            base,
            Box::pin(converge(&mb, &ctx, &mut status)),
        ))
        .await;
        held_inputs = Some(inputs);
        outcome
    };
    let (verdict, action) = match outcome {
        Ok((v, a)) => {
            // A missing mailbox backs off like an error; anything else starts afresh.
            if !matches!(v, Verdict::Progressing { reason, .. } if reason == reasons::MAILBOX_NOT_FOUND)
            {
                ctx.reset_backoff(&key);
            }
            (v, a)
        }
        // Waiting for the connector is not a failure: its SendConnector's next status
        // change triggers this binding, so there is no backoff and no error to count.
        Err(e @ (Error::ConnectorNotReady(_) | Error::ConnectorMissing(_))) => {
            ctx.reset_backoff(&key);
            let waited = ctx.waited(&format!("{key}#connector"));
            let unreported = old.as_ref().is_none_or(|o| o.conditions.is_empty());
            let quiet =
                if matches!(e, Error::ConnectorNotReady(_)) && connector_on_its_way(&mb, &ctx) {
                    ctx.config
                        .announce_after
                        .max(QUIET_WHILE_CONNECTOR_PROGRESSES)
                } else {
                    ctx.config.announce_after
                };
            if unreported && waited < quiet {
                // A binding created with its connector usually finds it ready within
                // moments: it says it waits only if it still does a little later. The
                // connector's change may reach this binding before the store holds it, so
                // it looks again meanwhile, less and less often (no OVH request is made).
                ctx.defer_report(&uid);
                (
                    conditions::verdict_for(&e),
                    Action::requeue(
                        quiet
                            .saturating_sub(waited)
                            .min(ctx.config.task_poll_after(waited)),
                    ),
                )
            } else {
                // The connector's change may reach this binding before the store holds it:
                // look again, less and less often (no OVH request is made for it).
                (
                    conditions::verdict_for(&e),
                    Action::requeue(ctx.config.task_poll_after(waited)),
                )
            }
        }
        Err(e) => (
            conditions::verdict_for(&e),
            after_error(&ctx, "MailboxBinding", &key, &e),
        ),
    };
    if let Some(inputs) = held_inputs {
        if ctx.polls.is_new(&key) {
            // The connector may have changed in the store while converge ran (it proceeds
            // once the connector has its id): the poll waits on what the store holds now, so
            // the change that let it proceed does not end the wait early.
            ctx.polls
                .depends_on(&key, Box::pin(stall_inputs(&mb, &ctx)).await);
        }
        ctx.hold_inputs(&key, inputs);
    }
    Box::pin(report(
        &ctx,
        &api,
        &*mb,
        old.as_ref(),
        &mut status,
        &verdict,
    ))
    .await?;
    Ok(action)
}

/// How long a new binding whose connector is being created, with nothing wrong, waits
/// before it says it waits for it: the connector's status tells how its creation goes, and
/// a binding applied with its connector is then Ready at one status write less.
const QUIET_WHILE_CONNECTOR_PROGRESSES: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether the binding's connector is on its way to Ready: not being deleted, and not Ready
/// only because its creation runs (no condition yet, or Progressing / TaskPending), or Ready
/// since.
fn connector_on_its_way(mb: &MailboxBinding, ctx: &Context) -> bool {
    let ns = mb.namespace().unwrap_or_default();
    ctx.connector(&ns, &mb.spec.connector_ref.name)
        .is_some_and(|c| {
            c.meta().deletion_timestamp.is_none()
                && c.status
                    .as_ref()
                    .and_then(|s| {
                        crate::crd::find_condition(&s.conditions, crate::crd::types::READY)
                    })
                    // Ready already: the store changed since this reconcile looked, and the
                    // binding proceeds at its next look.
                    .is_none_or(|ready| {
                        [reasons::READY, reasons::PROGRESSING, reasons::TASK_PENDING]
                            .contains(&ready.reason.as_str())
                    })
        })
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime calls
pub fn error_policy(mb: Arc<MailboxBinding>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&*mb);
    tracing::warn!(resource = %key, %error, "MailboxBinding reconcile failed");
    Action::requeue(ctx.next_backoff(&key))
}

/// Mailboxes and domains of this binding (in its spec or remembered in its status) claimed
/// first by another binding on the same service.
///
/// `any_age`: claims of every other live binding, older or not (a binding being deleted
/// leaves alone what another binding holds or is about to take over).
///
/// Only this binding's own targets are looked up in the others: every binding is reconciled
/// often, and a map of every claim on the service (20,000 at XL) built each time was the
/// largest part of the operator's memory while a thousand reconciles ran at once.
fn conflicts(
    mb: &MailboxBinding,
    ctx: &Context,
    connector: &SendConnector,
    any_age: bool,
) -> BTreeMap<String, String> {
    let status = mb.status.as_ref();
    let mine: BTreeSet<String> = mb
        .spec
        .mailboxes
        .iter()
        .cloned()
        .chain(
            status
                .into_iter()
                .flat_map(|s| s.mailboxes.iter().map(|m| m.address.clone())),
        )
        .chain(mb.spec.default_for_domains.iter().map(|d| domain_key(d)))
        .chain(
            status
                .into_iter()
                .flat_map(|s| s.domains.iter().map(|d| domain_key(&d.name))),
        )
        .collect();
    let service = (connector.spec.organization.as_str(), connector.service());
    let my_order = (mb.creation_timestamp(), mb.namespace(), mb.name_any());
    let mut out = BTreeMap::new();
    for other in ctx.bindings.state() {
        if other.uid() == mb.uid() || other.meta().deletion_timestamp.is_some() {
            continue;
        }
        let shared: Vec<String> = other
            .spec
            .mailboxes
            .iter()
            .filter(|m| mine.contains(*m))
            .cloned()
            .chain(
                other
                    .spec
                    .default_for_domains
                    .iter()
                    .map(|d| domain_key(d))
                    .filter(|k| mine.contains(k)),
            )
            .collect();
        if shared.is_empty() {
            continue;
        }
        if !any_age
            && (
                other.creation_timestamp(),
                other.namespace(),
                other.name_any(),
            ) > my_order
        {
            continue;
        }
        let Some(other_connector) = ctx.connector(
            &other.namespace().unwrap_or_default(),
            &other.spec.connector_ref.name,
        ) else {
            continue;
        };
        if (
            other_connector.spec.organization.as_str(),
            other_connector.service(),
        ) != service
        {
            continue;
        }
        let owner = format!(
            "{}/{}",
            other.namespace().unwrap_or_default(),
            other.name_any()
        );
        for key in shared {
            out.entry(key).or_insert_with(|| owner.clone());
        }
    }
    out
}

/// The accounts with these addresses (`None`: no such mailbox), from the service's shared
/// list where the server expands lists (one read serves every binding of the service), read
/// from `after` on (see [`Context::lists_for_look`]).
async fn read_accounts(
    api: &ExchangeApi,
    after: Option<tokio::time::Instant>,
    addresses: &[String],
) -> Result<Read<Account>, OvhError> {
    if addresses.is_empty() {
        return Ok(Read::default());
    }
    let Some(all) = api.accounts_since(after).await? else {
        return Ok(Read {
            objects: api.get_accounts(addresses).await?,
            shared_from: None,
        });
    };
    let mut out: BTreeMap<String, Option<Account>> =
        addresses.iter().map(|a| (a.clone(), None)).collect();
    for account in all.items.iter() {
        if let Some(slot) = out.get_mut(&account.primary_email_address) {
            *slot = Some(account.clone());
        }
    }
    Ok(Read {
        objects: out,
        shared_from: Some(all.read_at),
    })
}

/// Objects of one kind by name (`None`: not on the service), and when the shared list they
/// come from was read (`None`: read for this look, one by one).
struct Read<T> {
    objects: BTreeMap<String, Option<T>>,
    shared_from: Option<tokio::time::Instant>,
}

impl<T> Default for Read<T> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            shared_from: None,
        }
    }
}

/// The domains with these names (`None`: not on the service), as [`read_accounts`].
async fn read_domains(
    api: &ExchangeApi,
    after: Option<tokio::time::Instant>,
    names: &[String],
) -> Result<Read<Domain>, OvhError> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(Read::default());
    }
    if let Some(all) = api.domains_since(after).await? {
        for name in names {
            let found = all.items.iter().find(|d| d.name == *name).cloned();
            out.insert(name.clone(), found);
        }
        return Ok(Read {
            objects: out,
            shared_from: Some(all.read_at),
        });
    }
    for name in names {
        match api.get_domain(name).await {
            Ok(d) => {
                out.insert(name.clone(), Some(d));
            }
            Err(e) if e.is_not_found() => {
                out.insert(name.clone(), None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Read {
        objects: out,
        shared_from: None,
    })
}

/// What one reconcile wrote, by Event reason: each reason gets one Event that names every
/// mailbox or domain written for it, so no write hides behind another's message.
#[derive(Default)]
struct Written {
    /// Reason -> (connector id written, the entries: an address or domain, with a detail).
    by_reason: BTreeMap<&'static str, (i64, Vec<String>)>,
    /// Task ids OVH runs for the writes, by target (address, or [`domain_key`]).
    tasks: BTreeMap<String, i64>,
}

impl Written {
    fn add(&mut self, reason: &'static str, connector_id: i64, entry: String) {
        self.by_reason
            .entry(reason)
            .or_insert_with(|| (connector_id, Vec::new()))
            .1
            .push(entry);
    }

    /// One Event per reason.
    async fn publish(&self, ctx: &Context, mb: &MailboxBinding) {
        for (reason, (id, entries)) in &self.by_reason {
            let n = entries.len();
            let listed = text::list(entries, text::LISTED);
            let mailboxes = if n == 1 { "mailbox" } else { "mailboxes" };
            let (action, note) = match *reason {
                "Attached" => (
                    "SetAccount",
                    format!("attached {n} {mailboxes} to connector {id}: {listed}"),
                ),
                "Overwritten" => (
                    "SetAccount",
                    format!("re-pointed {n} {mailboxes} to connector {id}: {listed}"),
                ),
                "Detached" => (
                    "SetAccount",
                    format!(
                        "{n} {mailboxes} back on the platform's own server (connector 0): {listed}"
                    ),
                ),
                "DomainDefaultSet" => (
                    "ChangeDefaultSBR",
                    format!("new mailboxes of {listed} will use connector {id}"),
                ),
                "DomainDefaultCleared" => (
                    "ChangeDefaultSBR",
                    format!(
                        "new mailboxes of {listed} will use the platform's own server again (connector 0)"
                    ),
                ),
                _ => (
                    "CorrectDrift",
                    format!(
                        "put back to connector {id} what was changed outside Kubernetes: {listed}"
                    ),
                ),
            };
            publish(ctx, mb, EventType::Normal, reason, action, note).await;
        }
    }
}

/// One OVH write, noted in `done` for the reconcile's Events and task ids. `was_bound` holds
/// what the last status reported bound: a difference there was made outside Kubernetes, and
/// putting it back is drift correction.
async fn write(
    api: &ExchangeApi,
    ctx: &Context,
    w: &BindingWrite,
    was_bound: &BTreeSet<String>,
    done: &mut Written,
) -> Result<(), OvhError> {
    match w {
        BindingWrite::SetAccount {
            address,
            connector_id,
            previous,
        } => {
            let why = if *connector_id == 0 {
                format!("detach {address}")
            } else {
                format!("attach {address} (from {previous})")
            };
            let task = api
                .set_account_connector(address, *connector_id)
                .instrument(write_span(&why))
                .await?;
            // An answer without its task: the next poll reads it from the account.
            if let Some(t) = task {
                done.tasks.insert(address.clone(), t.id);
            }
            if *connector_id != 0 && was_bound.contains(address) {
                ctx.metrics().drift_corrected("MailboxBinding");
                done.add(
                    "DriftCorrected",
                    *connector_id,
                    format!("{address} (was {previous})"),
                );
            } else if *previous != 0 && *connector_id != 0 {
                done.add(
                    "Overwritten",
                    *connector_id,
                    format!("{address} (was {previous})"),
                );
            } else if *connector_id == 0 {
                done.add("Detached", 0, address.clone());
            } else {
                done.add("Attached", *connector_id, address.clone());
            }
        }
        BindingWrite::SetDomainDefault {
            domain,
            connector_id,
            previous,
        } => {
            let why = format!("default connector of {domain}: {connector_id} (was {previous})");
            let task = api
                .change_default_sbr(domain, *connector_id)
                .instrument(write_span(&why))
                .await?;
            if let Some(t) = task {
                done.tasks.insert(domain_key(domain), t.id);
            }
            if *connector_id != 0 && was_bound.contains(&domain_key(domain)) {
                ctx.metrics().drift_corrected("MailboxBinding");
                done.add(
                    "DriftCorrected",
                    *connector_id,
                    format!("the default of {domain} (was {previous})"),
                );
            } else if *connector_id == 0 {
                done.add("DomainDefaultCleared", 0, domain.clone());
            } else {
                done.add("DomainDefaultSet", *connector_id, domain.clone());
            }
        }
    }
    Ok(())
}

/// All writes of one reconcile, then one Event per reason for what was written (also when
/// a write failed part way).
async fn write_all(
    api: &ExchangeApi,
    ctx: &Context,
    mb: &MailboxBinding,
    writes: &[BindingWrite],
    was_bound: &BTreeSet<String>,
) -> Result<Written, OvhError> {
    let mut done = Written::default();
    let uid = mb.uid().unwrap_or_default();
    for w in writes {
        let result = write(api, ctx, w, was_bound, &mut done).await;
        // Whatever the answer (it may be lost after OVH applied the write), this binding's
        // next reads of the shared lists are read after it.
        ctx.needs_lists_after(&uid, tokio::time::Instant::now());
        if let Err(e) = result {
            done.publish(ctx, mb).await;
            return Err(e);
        }
    }
    done.publish(ctx, mb).await;
    // OVH answers these writes without their task; the objects name it, and the next poll's
    // read of them (the status waits for it) records it.
    Ok(done)
}

/// Drops the writes that would point a mailbox or domain at the connector (the resource
/// `connector` is being deleted) and says so in their entries; returns them.
fn withhold_attachments(p: &mut BindingPlan, connector: &str) -> Vec<String> {
    let mut withheld = Vec::new();
    let message = Some(format!(
        "not attached: SendConnector {connector} is being deleted"
    ));
    p.writes.retain(|w| match w {
        BindingWrite::SetAccount {
            address,
            connector_id,
            ..
        } if *connector_id != 0 => {
            if let Some(entry) = p.mailboxes.get_mut(address) {
                entry.1.clone_from(&message);
            }
            withheld.push(address.clone());
            false
        }
        BindingWrite::SetDomainDefault {
            domain,
            connector_id,
            ..
        } if *connector_id != 0 => {
            if let Some(entry) = p.domains.get_mut(domain) {
                entry.1.clone_from(&message);
            }
            withheld.push(domain.clone());
            false
        }
        _ => true,
    });
    withheld
}

/// Tasks OVH runs on the objects as read (their `taskPendingId`), by target.
fn running_tasks(
    accounts: &BTreeMap<String, Option<crate::ovh::model::Account>>,
    domain_objects: &BTreeMap<String, Option<Domain>>,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (address, account) in accounts {
        if let Some(t) = account
            .as_ref()
            .and_then(crate::ovh::model::Account::pending_task)
        {
            out.insert(address.clone(), t);
        }
    }
    for (name, domain) in domain_objects {
        if let Some(t) = domain.as_ref().and_then(Domain::pending_task) {
            out.insert(domain_key(name), t);
        }
    }
    out
}

/// Each mailbox's and domain's phase, and the `bound` summary, as the plan found them.
/// `tasks`: the OVH task running for a target (address, or [`domain_key`]), shown while the
/// target is pending and cleared once it is not.
fn record_targets(
    status: &mut MailboxBindingStatus,
    p: &BindingPlan,
    tasks: &BTreeMap<String, i64>,
) {
    let task = |ph: Phase, key: &str| {
        (ph == Phase::Pending)
            .then(|| tasks.get(key).copied())
            .flatten()
    };
    status.mailboxes = p
        .mailboxes
        .iter()
        .map(|(address, (ph, message))| MailboxStatus {
            address: address.clone(),
            phase: phase(*ph),
            task_id: task(*ph, address),
            message: message.clone(),
        })
        .collect();
    status.domains = p
        .domains
        .iter()
        .map(|(name, (ph, message))| DomainStatus {
            name: name.clone(),
            phase: phase(*ph),
            task_id: task(*ph, &domain_key(name)),
            message: message.clone(),
        })
        .collect();
    status.bound = Some(p.bound_summary());
}

/// A write OVH refused: when the connector itself is gone from OVH (deleted out of band),
/// that is a wait for its SendConnector to create it again, not a fault of this binding.
async fn refused_for_a_gone_connector(
    api: &ExchangeApi,
    connector: &SendConnector,
    connector_id: i64,
    e: OvhError,
) -> Error {
    if e.is_retryable() {
        return e.into();
    }
    match api.list_send_connectors_fresh().await {
        Ok(list) if !list.iter().any(|c| c.id == connector_id) => {
            Error::ConnectorNotReady(format!(
                "{} (connector {connector_id} is gone from OVH)",
                connector.name_any()
            ))
        }
        _ => e.into(),
    }
}

/// Whether a target in this phase may point at the connector on OVH: bound, or written and
/// not confirmed yet (a lost answer, a stop after the write), or a write that failed.
fn may_be_attached(phase: BindingPhase) -> bool {
    matches!(
        phase,
        BindingPhase::Bound | BindingPhase::Pending | BindingPhase::Failed
    )
}

/// Released targets that still point at the connector on OVH: they stay in the status
/// (Pending) until OVH shows them back at 0, so no stop can forget them.
struct Releasing {
    mailboxes: Vec<String>,
    domains: Vec<String>,
}

impl Releasing {
    fn read(
        connector_id: i64,
        mailboxes: &[String],
        domains: &[String],
        accounts: &BTreeMap<String, Option<crate::ovh::model::Account>>,
        domain_objects: &BTreeMap<String, Option<Domain>>,
    ) -> Self {
        let ours = |id: Option<i64>, pending: Option<i64>| {
            id == Some(connector_id) || pending.is_some_and(|t| t != 0)
        };
        Self {
            mailboxes: mailboxes
                .iter()
                .filter(|m| {
                    accounts
                        .get(*m)
                        .and_then(Option::as_ref)
                        .is_some_and(|a| ours(a.send_connector_id, a.task_pending_id))
                })
                .cloned()
                .collect(),
            domains: domains
                .iter()
                .filter(|d| {
                    domain_objects
                        .get(*d)
                        .and_then(Option::as_ref)
                        .is_some_and(|o| ours(o.send_connector_id_default, o.task_pending_id))
                })
                .cloned()
                .collect(),
        }
    }

    fn record(&self, status: &mut MailboxBindingStatus, tasks: &BTreeMap<String, i64>) {
        let message = Some("being put back to 0".to_owned());
        for address in &self.mailboxes {
            if !status.mailboxes.iter().any(|m| &m.address == address) {
                status.mailboxes.push(MailboxStatus {
                    address: address.clone(),
                    phase: BindingPhase::Pending,
                    task_id: tasks.get(address).copied(),
                    message: message.clone(),
                });
            }
        }
        for name in &self.domains {
            if !status.domains.iter().any(|d| &d.name == name) {
                status.domains.push(DomainStatus {
                    name: name.clone(),
                    phase: BindingPhase::Pending,
                    task_id: tasks.get(&domain_key(name)).copied(),
                    message: message.clone(),
                });
            }
        }
    }
}

fn phase(p: Phase) -> BindingPhase {
    match p {
        Phase::Bound => BindingPhase::Bound,
        Phase::Pending => BindingPhase::Pending,
        Phase::NotFound => BindingPhase::NotFound,
        Phase::Conflict => BindingPhase::Conflict,
        Phase::Failed => BindingPhase::Failed,
    }
}

async fn connector_api(
    mb: &MailboxBinding,
    ctx: &Context,
) -> Result<(Arc<SendConnector>, ExchangeApi), Error> {
    let ns = mb.namespace().unwrap_or_default();
    let connector = ctx
        .connector(&ns, &mb.spec.connector_ref.name)
        .ok_or_else(|| Error::ConnectorMissing(format!("{ns}/{}", mb.spec.connector_ref.name)))?;
    let api = service_api(ctx, &connector).await?;
    Ok((connector, api))
}

/// `--dry-run`: the writes the binding still needs go into `status.plan` (and an Event when
/// the plan changes); nothing is written to OVH.
async fn dry_run(
    mb: &MailboxBinding,
    ctx: &Context,
    status: &mut MailboxBindingStatus,
    connector: &SendConnector,
    p: &BindingPlan,
    connector_id: i64,
) -> (Verdict, Action) {
    let calls = binding_calls(
        &connector.spec.organization,
        connector.service(),
        p,
        &connector.name_any(),
    );
    let plan: Vec<PlannedCall> = calls.iter().map(super::connector::planned).collect();
    let changed = status.plan != plan;
    status.plan = plan;
    status.connector_id = (connector_id != NEW_CONNECTOR).then_some(connector_id);
    record_targets(status, p, &BTreeMap::new());
    if calls.is_empty() && p.all_bound() {
        return (
            Verdict::Ready(format!(
                "{} bound to connector {connector_id}",
                p.bound_summary()
            )),
            Action::requeue(ctx.resync()),
        );
    }
    if changed && !calls.is_empty() {
        let lines: Vec<String> = calls
            .iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        let note = text::list(&lines, text::LISTED);
        publish(
            ctx,
            mb,
            EventType::Normal,
            "Planned",
            "DryRun",
            format!("dry run, not written: {note}"),
        )
        .await;
    }
    (
        Verdict::Planned(format!(
            "dry run: {} OVH call(s) planned, nothing written ({} bound)",
            calls.len(),
            p.bound_summary()
        )),
        Action::requeue(ctx.resync()),
    )
}

async fn converge(
    mb: &MailboxBinding,
    ctx: &Context,
    status: &mut MailboxBindingStatus,
) -> Result<(Verdict, Action), Error> {
    if mb.is_paused() {
        return Ok((
            Verdict::Paused("sendconnector.io/paused is \"true\": no OVH writes".into()),
            Action::await_change(),
        ));
    }
    if let Err(e) = crate::crd::validation::validate_binding(&mb.spec) {
        return Ok(super::conditions::invalid_spec(ctx, &e));
    }
    let (connector, api) = connector_api(mb, ctx).await?;
    let connector_id = match connector.status.as_ref().and_then(|s| s.connector_id) {
        Some(id) => id,
        // A dry run plans against the connector its own plan creates, once that plan is made
        // (before, the connector may turn out to exist already).
        None if ctx.config.dry_run
            && connector.status.as_ref().is_some_and(|s| {
                s.plan
                    .iter()
                    .any(|c| c.method == "POST" && c.path.ends_with("/sendConnector"))
            }) =>
        {
            NEW_CONNECTOR
        }
        None => return Err(Error::ConnectorNotReady(connector.name_any())),
    };
    let conflicts = conflicts(mb, ctx, &connector, false);
    // What this binding may have attached before (bound, or written without a confirmation)
    // but no longer lists is put back to 0, where it still points at this connector.
    let released_mailboxes: Vec<String> = status
        .mailboxes
        .iter()
        .filter(|m| may_be_attached(m.phase) && !mb.spec.mailboxes.contains(&m.address))
        .map(|m| m.address.clone())
        .collect();
    let released_domains: Vec<String> = status
        .domains
        .iter()
        .filter(|d| may_be_attached(d.phase) && !mb.spec.default_for_domains.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    let mut wanted: Vec<String> = mb.spec.mailboxes.clone();
    wanted.extend(released_mailboxes.iter().cloned());
    let uid = mb.uid().unwrap_or_default();
    // Whether its own last writes are young: as this look begins (the reads may wait long for
    // their turn; what they show is from just after those writes), or in the shared lists it
    // is served (read by another resource just after these writes; a poll is never served
    // the same list twice). Either way a task still pending may be pending only because it
    // has just begun; a task that outlives both shows in the next look's report.
    let span = 2 * ctx.config.task_poll;
    let young_at_start = ctx.wrote_within(&uid, span);
    let after = ctx.lists_for_look(&uid);
    let accounts = read_accounts(&api, after, &wanted).await?;
    let mut domain_names = mb.spec.default_for_domains.clone();
    domain_names.extend(released_domains.iter().cloned());
    let domain_objects = read_domains(&api, after, &domain_names).await?;
    let lists_read = [accounts.shared_from, domain_objects.shared_from];
    let shared_from = lists_read.into_iter().flatten().max();
    let read_young = ctx.lists_after(&uid).is_some_and(|wrote| {
        lists_read
            .into_iter()
            .flatten()
            .any(|read_at| read_at < wrote + span)
    });
    let young = young_at_start || read_young;
    let (accounts, domain_objects) = (accounts.objects, domain_objects.objects);
    let mut p = plan(&BindingInputs {
        connector_id,
        mailboxes: mb.spec.mailboxes.clone(),
        domains: mb.spec.default_for_domains.clone(),
        released_mailboxes: released_mailboxes.clone(),
        released_domains: released_domains.clone(),
        conflicts,
        accounts: accounts.clone(),
        domain_objects: domain_objects.clone(),
    });
    // Nothing is attached to a connector whose resource is being deleted (its deletion
    // waits for this binding, and would then take the mailboxes down with it); putting
    // entries back to 0 still goes on.
    let withheld = if connector.meta().deletion_timestamp.is_some() {
        withhold_attachments(&mut p, &connector.name_any())
    } else {
        Vec::new()
    };
    if ctx.config.dry_run {
        return Ok(dry_run(mb, ctx, status, &connector, &p, connector_id).await);
    }
    status.plan.clear();
    let was_bound: BTreeSet<String> = status
        .mailboxes
        .iter()
        .filter(|m| m.phase == BindingPhase::Bound)
        .map(|m| m.address.clone())
        .chain(
            status
                .domains
                .iter()
                .filter(|d| d.phase == BindingPhase::Bound)
                .map(|d| domain_key(&d.name)),
        )
        .collect();
    let mut running = running_tasks(&accounts, &domain_objects);
    let releasing = Releasing::read(
        connector_id,
        &released_mailboxes,
        &released_domains,
        &accounts,
        &domain_objects,
    );
    if !p.writes.is_empty() {
        // Recorded before the writes: if the operator stops after OVH applied one, the next
        // reconcile (or the deletion) knows what may point at the connector.
        let old: Option<MailboxBindingStatus> =
            ctx.remembered_status(&uid).or_else(|| mb.status.clone());
        status.connector_id = Some(connector_id);
        record_targets(status, &p, &running);
        releasing.record(status, &running);
        super::conditions::apply(
            &mut status.conditions,
            &Verdict::Progressing {
                reason: reasons::PROGRESSING,
                message: format!("{} bound; writing to OVH", p.bound_summary()),
            },
            mb.meta().generation,
            &super::conditions::now(),
        );
        let k8s: Api<MailboxBinding> =
            Api::namespaced(ctx.client.clone(), &mb.namespace().unwrap_or_default());
        super::conditions::write_status(&k8s, &mb.name_any(), old.as_ref(), status).await?;
        ctx.remember_status(&uid, status);
    }
    let written = match write_all(&api, ctx, mb, &p.writes, &was_bound).await {
        Ok(written) => written,
        Err(e) => {
            return Err(refused_for_a_gone_connector(&api, &connector, connector_id, e).await);
        }
    };
    running.extend(written.tasks);
    status.connector_id = Some(connector_id);
    record_targets(status, &p, &running);
    releasing.record(status, &running);
    let by_phase = |want: Phase| -> Vec<String> {
        p.mailboxes
            .iter()
            .chain(p.domains.iter())
            .filter(|(_, (ph, _))| *ph == want)
            .map(|(k, _)| k.clone())
            .collect()
    };
    let key = format!(
        "{}/MailboxBinding/{}",
        mb.namespace().unwrap_or_default(),
        mb.name_any()
    );
    if !withheld.is_empty() {
        return Ok((
            Verdict::Stalled {
                reason: reasons::CONNECTOR_DELETING,
                message: format!(
                    "SendConnector {} is being deleted: {} not attached to connector {connector_id}; point spec.connectorRef at another SendConnector, or delete this binding",
                    connector.name_any(),
                    text::list(&withheld, text::LISTED)
                ),
            },
            Action::requeue(ctx.resync()),
        ));
    }
    let conflicted = by_phase(Phase::Conflict);
    if !conflicted.is_empty() {
        let owners: Vec<String> = p
            .mailboxes
            .values()
            .chain(p.domains.values())
            .filter(|(ph, _)| *ph == Phase::Conflict)
            .filter_map(|(_, m)| m.clone())
            .collect();
        return Ok((
            Verdict::Stalled {
                reason: reasons::CONFLICT,
                message: format!(
                    "{} {}",
                    text::list(&conflicted, text::LISTED),
                    owners.first().cloned().unwrap_or_default()
                ),
            },
            Action::requeue(ctx.resync()),
        ));
    }
    if !p.writes.is_empty() || !by_phase(Phase::Pending).is_empty() {
        if !p.writes.is_empty() || young {
            // What it attaches is on record; the task ids wait for the first polls, which
            // often find the tasks over already (the first may come just before they end).
            ctx.defer_report(&uid);
        }
        if let Some(read_at) = shared_from {
            ctx.waits_on(&uid, read_at);
        }
        return Ok((
            Verdict::Progressing {
                reason: reasons::TASK_PENDING,
                message: format!("{} bound; waiting for OVH", p.bound_summary()),
            },
            {
                let wait = ctx.task_wait(&key, !p.writes.is_empty());
                ctx.polls.set(&key, wait);
                Action::requeue(wait)
            },
        ));
    }
    ctx.tasks_over(&key);
    let missing = by_phase(Phase::NotFound);
    if !missing.is_empty() {
        return Ok((
            Verdict::Progressing {
                reason: reasons::MAILBOX_NOT_FOUND,
                message: format!(
                    "not found on the Exchange service: {} ({} bound)",
                    text::list(&missing, text::LISTED),
                    p.bound_summary()
                ),
            },
            Action::requeue(ctx.next_backoff(&key)),
        ));
    }
    Ok((
        Verdict::Ready(format!(
            "{} bound to connector {connector_id}",
            p.bound_summary()
        )),
        Action::requeue(ctx.resync()),
    ))
}

/// Deletion: put every mailbox and domain this binding set back to `0`. `Ok(None)`: done.
async fn release(
    mb: &MailboxBinding,
    ctx: &Context,
    status: &mut MailboxBindingStatus,
) -> Result<Option<(Verdict, Action)>, Error> {
    if mb.spec.deletion_policy == DeletionPolicy::Orphan {
        return Ok(None);
    }
    let Some(connector_id) = status.connector_id.filter(|id| *id != 0) else {
        // Never attached anything.
        return Ok(None);
    };
    let (connector, api) = match connector_api(mb, ctx).await {
        Ok(found) => found,
        // The connector resource is gone (and with it, on OVH, the references to it).
        Err(Error::ConnectorMissing(_)) => return Ok(None),
        Err(e) => {
            return Ok(Some((
                Verdict::Stalled {
                    reason: reasons::DELETION_BLOCKED,
                    message: format!(
                        "cannot put the mailboxes back on OVH: {e}; set spec.deletionPolicy: Orphan to let the resource go without touching OVH"
                    ),
                },
                Action::requeue(ctx.next_backoff(&format!(
                    "{}/MailboxBinding/{}",
                    mb.namespace().unwrap_or_default(),
                    mb.name_any()
                ))),
            )));
        }
    };
    let conflicts = conflicts(mb, ctx, &connector, true);
    // What the spec lists, and what the status remembers from earlier specs.
    let mut mailboxes = mb.spec.mailboxes.clone();
    mailboxes.extend(status.mailboxes.iter().map(|m| m.address.clone()));
    mailboxes.sort();
    mailboxes.dedup();
    let mut domains = mb.spec.default_for_domains.clone();
    domains.extend(status.domains.iter().map(|d| d.name.clone()));
    domains.sort();
    domains.dedup();
    let uid = mb.uid().unwrap_or_default();
    let after = ctx.lists_after(&uid);
    let accounts = read_accounts(&api, after, &mailboxes).await?.objects;
    let domain_objects = read_domains(&api, after, &domains).await?.objects;
    let (writes, done) = plan_release_all(
        connector_id,
        &mailboxes,
        &domains,
        &conflicts,
        &accounts,
        &domain_objects,
    );
    if done {
        return Ok(None);
    }
    write_all(&api, ctx, mb, &writes, &BTreeSet::new()).await?;
    Ok(Some((
        Verdict::Progressing {
            reason: reasons::DELETING,
            message: "putting mailboxes and domains back to the platform's own server".into(),
        },
        soon(),
    )))
}
