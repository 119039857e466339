//! Reconciling a `SendConnector`: find or create its OVH connector, converge its fields and
//! authentication one task at a time, delete it when the resource goes.
use super::conditions::{self, Verdict, invalid_spec, now, secret_version, write_status};
use super::context::Context;
use super::credentials::{password, service_api};
use super::error::Error;
use super::lifecycle::{
    add_finalizer, after_error, announced_if_slow, has_finalizer, key_of, needs_announcement,
    publish, remove_finalizer, report,
};
use super::soon;
use crate::crd::{
    AppliedAuthentication, AppliedSecret, CreationIntent, DeletionPolicy, LastTask, PendingTask,
    PlannedCall, RECONCILE_REQUESTED_AT_ANNOTATION, SendConnector, SendConnectorStatus,
    find_condition, reasons, types,
};
use crate::ovh::model::{AuthMechanism, TaskStatus};
use crate::ovh::{ExchangeApi, OvhError};
use crate::reconcile::connector::{
    AppliedAuth, Cause, ConnectorMemory, ConnectorStep, CreationMemory, CreationProgress,
    DeletionStep, DesiredAuth, DesiredConnector, ObservedConnectors, SecretVersion, plan,
    plan_deletion,
};
use crate::reconcile::dry_run::connector_calls;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

type Outcome = Result<(Verdict, Action), Error>;

/// What a stalled connector depends on: a change to any of it earns a new attempt.
async fn stall_inputs(sc: &SendConnector, ctx: &Context) -> String {
    let ns = sc.namespace().unwrap_or_default();
    let creds = match (
        &sc.spec.credentials_secret_ref,
        &ctx.config.default_credentials_secret,
    ) {
        (Some(r), _) => secret_version(&ctx.client, &ns, &r.name).await,
        (None, Some((dns, dname))) => secret_version(&ctx.client, dns, dname).await,
        (None, None) => "-".to_owned(),
    };
    let password = match sc.spec.password_secret_ref() {
        Some(r) => secret_version(&ctx.client, &ns, &r.name).await,
        None => "-".to_owned(),
    };
    format!(
        "{:?}|{:?}|{}|{creds}|{password}",
        sc.meta().generation,
        sc.annotations().get(RECONCILE_REQUESTED_AT_ANNOTATION),
        sc.is_paused()
    )
}

pub async fn reconcile(sc: Arc<SendConnector>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<SendConnector> =
        Api::namespaced(ctx.client.clone(), &sc.namespace().unwrap_or_default());
    let key = key_of(&*sc);
    let uid = sc.uid().unwrap_or_default();
    let old: Option<SendConnectorStatus> =
        ctx.remembered_status(&uid).or_else(|| sc.status.clone());
    let mut status = ctx
        .draft_status(&uid)
        .or_else(|| old.clone())
        .unwrap_or_default();
    let deleting = sc.meta().deletion_timestamp.is_some();
    // The finalizer first: its patch is checked against the object's resourceVersion, which
    // a status write would change.
    if !deleting && !has_finalizer(&*sc) {
        Box::pin(add_finalizer(&api, &*sc)).await?;
    }
    let mut held_inputs: Option<String> = None;
    let outcome = if deleting {
        if !has_finalizer(&*sc) {
            return Ok(Action::await_change());
        }
        match Box::pin(cleanup(&sc, &ctx, &mut status)).await {
            Ok(None) => {
                Box::pin(remove_finalizer(&api, &*sc)).await?;
                ctx.reset_backoff(&key);
                ctx.forget_status(&uid);
                return Ok(Action::await_change());
            }
            Ok(Some(result)) => Ok(result),
            Err(e) => Err(e),
        }
    } else {
        let inputs = Box::pin(stall_inputs(&sc, &ctx)).await;
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
            &*sc,
            base,
            Box::pin(converge(&sc, &ctx, &api, &mut status)),
        ))
        .await;
        held_inputs = Some(inputs);
        outcome
    };
    let (verdict, action) = match outcome {
        Ok((verdict, action)) => {
            // A failed task backs off like an error; anything else starts afresh.
            if !matches!(verdict, Verdict::Progressing { reason, .. } if reason == reasons::TASK_FAILED)
            {
                ctx.reset_backoff(&key);
            }
            (verdict, action)
        }
        Err(e) => {
            let action = after_error(&ctx, "SendConnector", &key, &e);
            let blocked = deleting
                && (!e.is_retryable() || matches!(e, Error::CredentialsSecretMissing { .. }));
            let verdict = if blocked {
                Verdict::Stalled {
                    reason: reasons::DELETION_BLOCKED,
                    message: format!(
                        "cannot delete the connector on OVH: {e}; set spec.deletionPolicy: Orphan to let the resource go without touching OVH"
                    ),
                }
            } else {
                conditions::verdict_for(&e)
            };
            (verdict, action)
        }
    };
    if let Some(inputs) = held_inputs {
        ctx.polls.depends_on(&key, inputs.clone());
        ctx.hold_inputs(&key, inputs);
    }
    Box::pin(report(
        &ctx,
        &api,
        &*sc,
        old.as_ref(),
        &mut status,
        &verdict,
    ))
    .await?;
    Ok(action)
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime calls
pub fn error_policy(sc: Arc<SendConnector>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&*sc);
    tracing::warn!(resource = %key, %error, "SendConnector reconcile failed");
    Action::requeue(ctx.next_backoff(&key))
}

fn desired(sc: &SendConnector, password_version: Option<(String, String)>) -> DesiredConnector {
    let mechanism = sc.spec.mechanism();
    DesiredConnector {
        display_name: sc.display_name().to_owned(),
        smart_host: sc.spec.smart_host.clone(),
        port: i64::from(sc.spec.port),
        require_tls: sc.spec.require_tls,
        max_send_size: i64::from(sc.spec.max_send_size),
        auth: DesiredAuth {
            mechanism,
            user: sc.spec.auth_user().map(str::to_owned),
            password_secret: sc.spec.password_secret_ref().zip(password_version).map(
                |(r, (uid, rv))| SecretVersion {
                    name: r.name.clone(),
                    uid,
                    resource_version: rv,
                },
            ),
        },
    }
}

/// How long after its creation task ended OVH is assumed to need, at most, to list the new
/// connector. Until then a connector that is not listed is waited for, never created again.
const LISTING_GRACE: Duration = Duration::from_secs(30);

/// Whether `at` is more than `span` ago.
fn older_than(at: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time, span: Duration) -> bool {
    let span = jiff::SignedDuration::try_from(span).unwrap_or(jiff::SignedDuration::MAX);
    jiff::Timestamp::now().duration_since(at.0) > span
}

/// Where this resource's own create stands. `settle`: how long a request may take before it
/// is applied or abandoned (the client's request timeout).
fn creation_memory(status: &SendConnectorStatus, settle: Duration) -> Option<CreationMemory> {
    let intent = status.creation.as_ref()?;
    let done_at = status
        .last_task
        .as_ref()
        .filter(|t| Some(t.id) == intent.task_id && t.status == TaskStatus::Done.as_str())
        .and_then(|t| t.finished_at.as_ref());
    let progress = match (done_at, intent.task_id) {
        (Some(at), _) => CreationProgress::Done {
            grace_over: older_than(at, LISTING_GRACE),
        },
        // OVH answered with a task whose end could not be read: nothing is on its way.
        (None, Some(_)) => CreationProgress::Settled,
        (None, None) if older_than(&intent.requested_at, settle) => CreationProgress::Settled,
        (None, None) => CreationProgress::Unsettled,
    };
    Some(CreationMemory {
        display_name: intent.display_name.clone(),
        progress,
    })
}

fn memory(sc: &SendConnector, status: &SendConnectorStatus, settle: Duration) -> ConnectorMemory {
    let ready = find_condition(&status.conditions, types::READY).filter(|c| c.is_true());
    ConnectorMemory {
        connector_id: status.connector_id,
        applied_auth: status.applied_authentication.as_ref().map(|a| AppliedAuth {
            mechanism: a.mechanism,
            user: a.user.clone(),
            password_secret: a.password_secret.as_ref().map(|s| SecretVersion {
                name: s.name.clone(),
                uid: s.uid.clone(),
                resource_version: s.resource_version.clone(),
            }),
        }),
        creation: creation_memory(status, settle),
        converged_generation: ready
            .and_then(|c| c.observed_generation)
            .filter(|g| Some(*g) == sc.meta().generation),
    }
}

/// The connector `id` on OVH is this resource's from now on: remembered by id, under the
/// service it was found on, and no create of its own is outstanding any more.
fn hold_connector(sc: &SendConnector, status: &mut SendConnectorStatus, id: i64) {
    status.connector_id = Some(id);
    status.creation = None;
    status.exchange_service = Some(sc.spec.exchange_service());
}

/// A spec naming another Exchange service than the one this resource's connector lives on:
/// acting on it would create a second connector and leak the first, so nothing is done.
fn moved_service(sc: &SendConnector, status: &SendConnectorStatus) -> Option<String> {
    let recorded = status.exchange_service.as_ref()?;
    let field = if recorded.organization != sc.spec.organization {
        ("spec.organization", sc.spec.organization.as_str())
    } else if recorded.service != sc.service() {
        ("spec.service", sc.service())
    } else {
        return None;
    };
    Some(format!(
        "{} is {:?}, but this resource's connector was created under organization {:?}, service {:?}; put {} back, or delete the resource and create a new one to move the connector",
        field.0, field.1, recorded.organization, recorded.service, field.0
    ))
}

fn applied(desired: &DesiredAuth, key: Option<&str>) -> AppliedAuthentication {
    AppliedAuthentication {
        mechanism: desired.mechanism,
        user: desired.user.clone(),
        password_secret: desired.password_secret.as_ref().map(|s| AppliedSecret {
            name: s.name.clone(),
            key: key.unwrap_or(crate::crd::DEFAULT_PASSWORD_KEY).to_owned(),
            uid: s.uid.clone(),
            resource_version: s.resource_version.clone(),
        }),
    }
}

/// Another resource that claims the same (organization, service, displayName) first. A
/// resource that already holds the connector (an id, or a create of its own in flight)
/// keeps it; between resources alike, the older wins. Nobody flip-flops.
fn conflicting_owner(
    sc: &SendConnector,
    status: &SendConnectorStatus,
    ctx: &Context,
) -> Option<String> {
    let holds = |s: Option<&SendConnectorStatus>| {
        s.is_some_and(|s| s.connector_id.is_some() || s.creation.is_some())
    };
    let mine = sc.ovh_key();
    let my_order = (
        !holds(Some(status)),
        sc.creation_timestamp(),
        sc.namespace(),
        sc.name_any(),
    );
    ctx.connectors
        .state()
        .into_iter()
        .filter(|o| {
            o.uid() != sc.uid() && o.meta().deletion_timestamp.is_none() && o.ovh_key() == mine
        })
        .filter(|o| {
            let order = (
                !holds(o.status.as_ref()),
                o.creation_timestamp(),
                o.namespace(),
                o.name_any(),
            );
            order < my_order
        })
        .map(|o| {
            format!(
                "SendConnector {}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            )
        })
        .min()
}

/// The connector ids other live resources on the same Exchange service hold: never this
/// resource's to delete.
fn held_by_others(sc: &SendConnector, ctx: &Context) -> Vec<i64> {
    let service = sc.exchange_service();
    ctx.connectors
        .state()
        .into_iter()
        .filter(|o| o.uid() != sc.uid() && o.meta().deletion_timestamp.is_none())
        .filter(|o| o.exchange_service() == service)
        .filter_map(|o| o.status.as_ref().and_then(|s| s.connector_id))
        .collect()
}

/// The span OVH writes are made in: the audit line of each write carries its `why`.
pub(super) fn write_span(why: &str) -> tracing::Span {
    tracing::info_span!("ovh_write", why = %why)
}

/// Looks at `sc`'s task again in `wait`; a reconcile woken sooner by its own status write
/// waits on (see [`Context::polls`]).
fn poll_in(ctx: &Context, sc: &SendConnector, wait: Duration) -> Action {
    ctx.polls.set(&key_of(sc), wait);
    Action::requeue(wait)
}

/// How long a task recorded at `since` has been running (zero when unknown).
pub(super) fn running_for(
    since: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Duration {
    since
        .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default()
}

/// Counts a finished task, timed from when it was recorded.
fn record_task(ctx: &Context, pending: &PendingTask, result: &str) {
    let elapsed = running_for(pending.since.as_ref());
    ctx.metrics()
        .task_finished(&pending.function, result, elapsed);
}

/// The task function of `POST …/sendConnector`.
const ADD_SEND_CONNECTOR: &str = "addSendConnector";

/// The task function of `PUT …/sendConnector/{id}`.
const SET_SEND_CONNECTOR: &str = "setSendConnector";

/// Records a task found running on the connector (its `taskPendingId`), with its function
/// and status when the task can be read.
async fn record_running(api: &ExchangeApi, status: &mut SendConnectorStatus, id: i64) {
    let (function, task_status) = match api.get_task(id).await {
        Ok(task) => (task.function, task.status.to_string()),
        Err(_) => (SET_SEND_CONNECTOR.to_owned(), TaskStatus::Todo.to_string()),
    };
    status.pending_task = Some(PendingTask {
        id,
        function,
        status: task_status,
        since: Some(now()),
    });
}

/// Polls the recorded task. `Some` ends this reconcile (still running, or failed).
async fn poll_task(
    sc: &SendConnector,
    ctx: &Context,
    api: &ExchangeApi,
    status: &mut SendConnectorStatus,
) -> Result<Option<(Verdict, Action)>, Error> {
    let Some(pending) = status.pending_task.clone() else {
        return Ok(None);
    };
    let uid = sc.uid().unwrap_or_default();
    // While the task runs, its object names it (`taskPendingId`): one list shared by every
    // resource of the service says so for all of them, and only a task that has left its
    // object costs a read of its own, to learn how it ended.
    let interval = ctx
        .config
        .task_poll_after(running_for(pending.since.as_ref()));
    // A list from the second half of the interval since the last look: older, it may show
    // the task as it was before.
    let recent = tokio::time::Instant::now()
        .checked_sub(interval / 2)
        .into_iter()
        .chain(ctx.lists_after(&uid))
        .max();
    // Whether its task is young as this look begins (the read may wait long for its turn).
    let young = ctx.wrote_within(&uid, 2 * ctx.config.task_poll);
    let listing = api.list_send_connectors_since(recent).await?;
    let target: Vec<&crate::ovh::model::SendConnector> = listing
        .connectors
        .iter()
        .filter(|c| match (status.connector_id, &status.creation) {
            (Some(id), _) => c.id == id,
            (None, Some(intent)) => c.display_name == intent.display_name,
            (None, None) => false,
        })
        .collect();
    if let [object] = target.as_slice() {
        if object.pending_task() == Some(pending.id) {
            if young {
                // A young task costs no status write: it is recorded at the next poll if it
                // still runs then, and as the last task once it ends.
                ctx.defer_report(&uid);
            }
            return Ok(Some((
                Verdict::Progressing {
                    reason: reasons::TASK_PENDING,
                    message: format!(
                        "OVH task {} ({}) is {}",
                        pending.id, pending.function, pending.status
                    ),
                },
                poll_in(ctx, sc, interval),
            )));
        }
    }
    // A creation whose connector the list shows settled (`ok`, no task) went through: a
    // failed one leaves no connector. Its task need not be read to learn how it ended. Other
    // tasks are read: a failed edit leaves the old values, which look like drift, and an
    // authentication change shows nowhere.
    if let [object] = target.as_slice()
        && pending.function == ADD_SEND_CONNECTOR
        && object.state == crate::ovh::model::ObjectState::Ok
        && object.pending_task().is_none()
    {
        record_task(ctx, &pending, TaskStatus::Done.as_str());
        status.pending_task = None;
        status.last_task = Some(LastTask {
            id: pending.id,
            function: pending.function.clone(),
            status: TaskStatus::Done.to_string(),
            finished_at: Some(now()),
        });
        ctx.needs_lists_after(&uid, listing.read_at);
        return Ok(None);
    }
    // The list shows the object with the task gone: it was read after the task ended, so it
    // can serve the plan that follows; otherwise that plan needs a list read from now on.
    let ended_by = if target.len() == 1 {
        listing.read_at
    } else {
        tokio::time::Instant::now()
    };
    let outcome = follow_task(sc, ctx, api, status, &pending, young).await;
    if matches!(outcome, Ok(None)) {
        ctx.needs_lists_after(&uid, ended_by);
    }
    outcome
}

/// Reads the recorded task `pending` and records how it stands. `Some` ends this reconcile
/// (still running, or failed). `young`: the task was young when the poll began (see
/// [`poll_task`]).
async fn follow_task(
    sc: &SendConnector,
    ctx: &Context,
    api: &ExchangeApi,
    status: &mut SendConnectorStatus,
    pending: &PendingTask,
    young: bool,
) -> Result<Option<(Verdict, Action)>, Error> {
    match api.get_task(pending.id).await {
        Ok(task) if !task.status.is_finished() => {
            if young {
                // Young when the look began: recorded at the next poll if it still runs then.
                ctx.defer_report(&sc.uid().unwrap_or_default());
            }
            status.pending_task = Some(PendingTask {
                status: task.status.to_string(),
                ..pending.clone()
            });
            Ok(Some((
                Verdict::Progressing {
                    reason: reasons::TASK_PENDING,
                    message: format!(
                        "OVH task {} ({}) is {}",
                        task.id, task.function, task.status
                    ),
                },
                poll_in(
                    ctx,
                    sc,
                    ctx.config
                        .task_poll_after(running_for(pending.since.as_ref())),
                ),
            )))
        }
        Ok(task) => {
            record_task(ctx, pending, task.status.as_str());
            status.pending_task = None;
            status.last_task = Some(LastTask {
                id: task.id,
                function: task.function.clone(),
                status: task.status.to_string(),
                finished_at: Some(now()),
            });
            if task.status == TaskStatus::Done {
                return Ok(None);
            }
            // The change did not happen: forget what it was meant to record, so it is retried.
            if task.function == ADD_SEND_CONNECTOR {
                status.creation = None;
            } else if pending.function == "changeAuthentication" {
                status.applied_authentication = None;
            }
            let message = format!(
                "OVH task {} ({}) ended in {}",
                task.id, task.function, task.status
            );
            publish(
                ctx,
                sc,
                EventType::Warning,
                reasons::TASK_FAILED,
                "PollTask",
                message.clone(),
            )
            .await;
            let key = format!(
                "{}/SendConnector/{}",
                sc.namespace().unwrap_or_default(),
                sc.name_any()
            );
            Ok(Some((
                Verdict::Progressing {
                    reason: reasons::TASK_FAILED,
                    message,
                },
                Action::requeue(ctx.next_backoff(&key)),
            )))
        }
        Err(e) if e.is_not_found() => {
            record_task(ctx, pending, "finished");
            // Finished tasks may vanish: the connector itself tells the outcome.
            status.pending_task = None;
            status.last_task = Some(LastTask {
                id: pending.id,
                function: pending.function.clone(),
                status: "finished".into(),
                finished_at: Some(now()),
            });
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the service's connectors, and with `with_pending` its pending creations first (so a
/// creation that ends between the two reads shows in the list). `not_before`: the list must
/// have been read from then on (after this resource's last write, or now when a decision
/// about creating rests on it); otherwise a list read moments ago for another resource serves.
async fn observe(
    api: &ExchangeApi,
    with_pending: bool,
    not_before: Option<tokio::time::Instant>,
) -> Result<ObservedConnectors, OvhError> {
    let (pending_creations, not_before) = if with_pending {
        let asked = tokio::time::Instant::now();
        let tasks = api.pending_tasks(Some(ADD_SEND_CONNECTOR)).await?;
        (Some(tasks.into_iter().map(|t| t.id).collect()), Some(asked))
    } else {
        (None, not_before)
    };
    let connectors = api.list_send_connectors_since(not_before).await?.connectors;
    Ok(ObservedConnectors {
        connectors,
        pending_creations,
    })
}

/// Whether the list shows the connector this resource holds or its own create made.
fn sees_own(memory: &ConnectorMemory, observed: &ObservedConnectors) -> bool {
    observed.connectors.iter().any(|c| {
        memory.connector_id == Some(c.id)
            || memory
                .creation
                .as_ref()
                .is_some_and(|intent| intent.display_name == c.display_name)
    })
}

/// `--dry-run`: every call still needed goes into `status.plan` (and an Event when the plan
/// changes); nothing is written to OVH.
async fn dry_run(
    sc: &SendConnector,
    ctx: &Context,
    status: &mut SendConnectorStatus,
    desired: &DesiredConnector,
    memory: &ConnectorMemory,
    observed: &ObservedConnectors,
    generation: i64,
) -> (Verdict, Action) {
    let (calls, end) = connector_calls(
        &sc.spec.organization,
        sc.service(),
        desired,
        memory,
        observed,
        generation,
    );
    let plan: Vec<PlannedCall> = calls.iter().map(planned).collect();
    let changed = status.plan != plan;
    status.plan = plan;
    if let Ok(Some(id)) = end {
        status.connector_id = Some(id);
    }
    match end {
        Err(reason) if calls.is_empty() => (
            Verdict::Progressing {
                reason: reasons::TASK_PENDING,
                message: reason,
            },
            soon(),
        ),
        Ok(Some(id)) if calls.is_empty() => (
            Verdict::Ready(format!("OVH connector {id} matches the spec")),
            Action::requeue(ctx.resync()),
        ),
        _ => {
            if changed {
                let lines: Vec<String> = calls
                    .iter()
                    .map(|c| format!("{} {}", c.method, c.path))
                    .collect();
                let note = crate::text::list(&lines, crate::text::LISTED);
                publish(
                    ctx,
                    sc,
                    EventType::Normal,
                    "Planned",
                    "DryRun",
                    format!("dry run, not written: {note}"),
                )
                .await;
            }
            (
                Verdict::Planned(format!(
                    "dry run: {} OVH call(s) planned, nothing written",
                    calls.len()
                )),
                Action::requeue(ctx.resync()),
            )
        }
    }
}

/// A planned call as the status shows it.
pub(super) fn planned(c: &crate::reconcile::dry_run::PlannedCall) -> PlannedCall {
    PlannedCall {
        method: c.method.to_owned(),
        path: c.path.clone(),
        body: c.body.clone(),
        reason: c.reason.clone(),
    }
}

async fn converge(
    sc: &SendConnector,
    ctx: &Context,
    k8s: &Api<SendConnector>,
    status: &mut SendConnectorStatus,
) -> Outcome {
    let ns = sc.namespace().unwrap_or_default();
    if sc.is_paused() {
        return Ok((
            Verdict::Paused("sendconnector.io/paused is \"true\": no OVH writes".into()),
            Action::await_change(),
        ));
    }
    if let Err(e) = crate::crd::validation::validate_connector(&sc.spec) {
        return Ok(invalid_spec(ctx, &e));
    }
    if let Some(message) = moved_service(sc, status) {
        return Ok(invalid_spec(ctx, &message));
    }
    if let Some(owner) = conflicting_owner(sc, status, ctx) {
        return Ok((
            Verdict::Stalled {
                reason: reasons::CONFLICT,
                message: format!(
                    "{owner} already manages connector {:?} on this service",
                    sc.display_name()
                ),
            },
            Action::requeue(ctx.resync()),
        ));
    }
    let api = service_api(ctx, sc).await?;
    // A reconcile someone asked for (a new reconcile-requested-at) reads OVH afresh.
    if sc.annotations().get(RECONCILE_REQUESTED_AT_ANNOTATION)
        != status.last_handled_reconcile_at.as_ref()
    {
        api.forget_shared_reads().await;
    }
    let uid = sc.uid().unwrap_or_default();
    if let Some(done) = poll_task(sc, ctx, &api, status).await? {
        return Ok(done);
    }
    let password_version = match sc.spec.password_secret_ref() {
        Some(r) => {
            let p = password(ctx, &ns, r).await?;
            Some((p.uid, p.resource_version))
        }
        None => None,
    };
    let desired = desired(sc, password_version);
    let memory = memory(sc, status, ctx.config.ovh.timeout);
    let generation = sc.meta().generation.unwrap_or_default();
    let started = tokio::time::Instant::now();
    let mut observed = observe(&api, false, ctx.lists_after(&uid)).await?;
    let mut step = plan(&desired, &memory, &observed, generation);
    if memory.creation.is_some() && !sees_own(&memory, &observed) {
        // This resource's own create may be on OVH: only a list read now may say it is not.
        observed = observe(&api, false, Some(started)).await?;
        step = plan(&desired, &memory, &observed, generation);
    }
    if step == ConnectorStep::ReadPendingCreations {
        observed = observe(&api, true, None).await?;
        step = plan(&desired, &memory, &observed, generation);
    }
    tracing::debug!(resource = %sc.name_any(), ?memory, ?step, "planned");
    if ctx.config.dry_run {
        return Ok(dry_run(sc, ctx, status, &desired, &memory, &observed, generation).await);
    }
    status.plan.clear();
    let key_name = sc.spec.password_secret_ref().map(|r| r.key.as_str());
    match step {
        ConnectorStep::InSync { id, adopted } => {
            let current = observed.connectors.iter().find(|c| c.id == id);
            hold_connector(sc, status, id);
            status.state = current.map(|c| c.state.as_str().to_owned());
            if adopted {
                publish(ctx, sc, EventType::Normal, "Adopted", "Adopt", format!("adopted existing OVH connector {id} ({:?}); deleting this resource with deletionPolicy Delete deletes it", desired.display_name)).await;
            }
            if status.applied_authentication.is_none()
                && desired.auth.mechanism == AuthMechanism::None
            {
                status.applied_authentication = Some(applied(&desired.auth, key_name));
            }
            Ok((
                Verdict::Ready(format!("OVH connector {id} matches the spec")),
                Action::requeue(ctx.resync()),
            ))
        }
        ConnectorStep::Wait { id, reason } => {
            if let Some(id) = id {
                hold_connector(sc, status, id);
                let running = observed
                    .connectors
                    .iter()
                    .find(|c| c.id == id)
                    .and_then(crate::ovh::model::SendConnector::pending_task);
                if let (Some(task), None) = (running, &status.pending_task) {
                    // A task this resource did not record (an answer without it, a restart):
                    // recorded now, and polled from the next reconcile on.
                    record_running(&api, status, task).await;
                    return Ok((
                        Verdict::Progressing {
                            reason: reasons::TASK_PENDING,
                            message: reason,
                        },
                        poll_in(ctx, sc, ctx.config.task_poll),
                    ));
                }
            }
            Ok((
                Verdict::Progressing {
                    reason: reasons::TASK_PENDING,
                    message: reason,
                },
                soon(),
            ))
        }
        ConnectorStep::WaitForCreation { tasks } => Ok((
            Verdict::Progressing {
                reason: reasons::TASK_PENDING,
                message: format!(
                    "waiting for connector creations in flight on the service (tasks {tasks:?})"
                ),
            },
            soon(),
        )),
        ConnectorStep::ReadPendingCreations => Ok((
            Verdict::Progressing {
                reason: reasons::PROGRESSING,
                message: "reading pending creations".into(),
            },
            soon(),
        )),
        ConnectorStep::Ambiguous { ids } => Ok((
            Verdict::Stalled {
                reason: reasons::CONFLICT,
                message: format!(
                    "{} connectors named {:?} exist on OVH (ids {ids:?}); delete the extra ones or set status by hand",
                    ids.len(),
                    desired.display_name
                ),
            },
            Action::requeue(ctx.resync()),
        )),
        ConnectorStep::Create(create) => {
            let pw = match (create.with_password, sc.spec.password_secret_ref()) {
                (true, Some(r)) => Some(password(ctx, &ns, r).await?.value),
                _ => None,
            };
            // Record the intent before the POST: after a crash or a lost answer, the next
            // reconcile looks for the connector instead of creating a second one.
            status.creation = Some(CreationIntent {
                display_name: create.display_name.clone(),
                requested_at: now(),
                task_id: None,
            });
            status.exchange_service = Some(sc.spec.exchange_service());
            // The password goes in this POST: if the answer is lost but OVH applied it, the
            // connector has exactly this authentication, so it need not be pushed again.
            status.applied_authentication = Some(applied(&desired.auth, key_name));
            conditions::apply(
                &mut status.conditions,
                &Verdict::Progressing {
                    reason: reasons::PROGRESSING,
                    message: format!("creating OVH connector {:?}", create.display_name),
                },
                sc.meta().generation,
                &now(),
            );
            let old: Option<SendConnectorStatus> =
                ctx.remembered_status(&uid).or_else(|| sc.status.clone());
            write_status(k8s, &sc.name_any(), old.as_ref(), status).await?;
            ctx.remember_status(&uid, status);
            let why = format!(
                "no connector named {:?} on the service",
                create.display_name
            );
            let answer = api
                .create_send_connector(&create.body(pw))
                .instrument(write_span(&why))
                .await;
            ctx.needs_lists_after(&uid, tokio::time::Instant::now());
            match answer {
                Ok(task) => {
                    // The intent is on record; the task id waits for the first poll, which
                    // often finds the task over already.
                    ctx.defer_report(&uid);
                    if let Some(c) = status.creation.as_mut() {
                        c.task_id = Some(task.id);
                    }
                    status.pending_task = Some(PendingTask {
                        id: task.id,
                        function: task.function.clone(),
                        status: task.status.to_string(),
                        since: Some(now()),
                    });
                    status.applied_authentication = Some(applied(&desired.auth, key_name));
                    publish(
                        ctx,
                        sc,
                        EventType::Normal,
                        "Created",
                        "CreateConnector",
                        format!(
                            "creating OVH connector {:?} (task {})",
                            create.display_name, task.id
                        ),
                    )
                    .await;
                    Ok((
                        Verdict::Progressing {
                            reason: reasons::TASK_PENDING,
                            message: format!("OVH task {} (addSendConnector) started", task.id),
                        },
                        poll_in(ctx, sc, ctx.config.task_poll),
                    ))
                }
                Err(e) => {
                    if !e.is_retryable() {
                        // OVH refused it: nothing was created.
                        status.creation = None;
                        status.applied_authentication = None;
                    }
                    Err(e.into())
                }
            }
        }
        ConnectorStep::Update {
            id,
            update,
            cause,
            adopted,
        } => {
            hold_connector(sc, status, id);
            if adopted {
                publish(ctx, sc, EventType::Normal, "Adopted", "Adopt", format!("adopted existing OVH connector {id}; deleting this resource with deletionPolicy Delete deletes it")).await;
            }
            let fields = update.field_names().join(", ");
            let why = match cause {
                Cause::Drift => format!("drift: {fields} changed on OVH"),
                Cause::Spec => format!("spec: {fields}"),
            };
            let answered = api
                .update_send_connector(id, &update)
                .instrument(write_span(&why))
                .await;
            ctx.needs_lists_after(&uid, tokio::time::Instant::now());
            let answered = answered?;
            // OVH answers the PUT without its task: the connector names it.
            let task = match answered {
                Some(task) => Some((task.id, task.status.to_string())),
                None => api
                    .get_send_connector(id)
                    .await
                    .ok()
                    .and_then(|c| c.pending_task())
                    .map(|t| (t, TaskStatus::Todo.to_string())),
            };
            if let Some((task_id, task_status)) = &task {
                status.pending_task = Some(PendingTask {
                    id: *task_id,
                    function: SET_SEND_CONNECTOR.into(),
                    status: task_status.clone(),
                    since: Some(now()),
                });
                // Written at the first poll if the task still runs then.
                ctx.defer_report(&uid);
            }
            let (reason, note) = match cause {
                Cause::Drift => (
                    {
                        ctx.metrics().drift_corrected("SendConnector");
                        "DriftCorrected"
                    },
                    format!("put back {fields} changed outside Kubernetes on OVH connector {id}"),
                ),
                Cause::Spec => ("Updated", format!("updated {fields} of OVH connector {id}")),
            };
            let note = match &task {
                Some((task_id, _)) => format!("{note} (task {task_id})"),
                None => note,
            };
            publish(ctx, sc, EventType::Normal, reason, "UpdateConnector", note).await;
            Ok(match task {
                Some((task_id, _)) => (
                    Verdict::Progressing {
                        reason: reasons::TASK_PENDING,
                        message: format!(
                            "OVH task {task_id} ({SET_SEND_CONNECTOR}) started: updating {fields}"
                        ),
                    },
                    poll_in(ctx, sc, ctx.config.task_poll),
                ),
                None => (
                    Verdict::Progressing {
                        reason: reasons::PROGRESSING,
                        message: format!("updating {fields}"),
                    },
                    soon(),
                ),
            })
        }
        ConnectorStep::ChangeAuthentication {
            id,
            mechanism,
            user,
            with_password,
            adopted,
            why,
        } => {
            hold_connector(sc, status, id);
            if adopted {
                publish(ctx, sc, EventType::Normal, "Adopted", "Adopt", format!("adopted existing OVH connector {id}; deleting this resource with deletionPolicy Delete deletes it")).await;
            }
            let pw = match (with_password, sc.spec.password_secret_ref()) {
                (true, Some(r)) => Some(password(ctx, &ns, r).await?.value),
                _ => None,
            };
            let task = api
                .change_authentication(
                    id,
                    &ConnectorStep::change_authentication_body(mechanism, user, pw),
                )
                .instrument(write_span(&why))
                .await;
            ctx.needs_lists_after(&uid, tokio::time::Instant::now());
            let task = task?;
            status.pending_task = Some(PendingTask {
                id: task.id,
                function: "changeAuthentication".into(),
                status: task.status.to_string(),
                since: Some(now()),
            });
            ctx.defer_report(&uid);
            status.applied_authentication = Some(applied(&desired.auth, key_name));
            publish(
                ctx,
                sc,
                EventType::Normal,
                "AuthenticationChanged",
                "ChangeAuthentication",
                format!(
                    "changing the authentication of OVH connector {id}: {why} (task {})",
                    task.id
                ),
            )
            .await;
            Ok((
                Verdict::Progressing {
                    reason: reasons::TASK_PENDING,
                    message: format!("OVH task {} (changeAuthentication) started", task.id),
                },
                poll_in(ctx, sc, ctx.config.task_poll),
            ))
        }
    }
}

/// Deletion. `Ok(None)`: done, the finalizer may go.
async fn cleanup(
    sc: &SendConnector,
    ctx: &Context,
    status: &mut SendConnectorStatus,
) -> Result<Option<(Verdict, Action)>, Error> {
    let ns = sc.namespace().unwrap_or_default();
    if sc.spec.deletion_policy == DeletionPolicy::Orphan {
        publish(
            ctx,
            sc,
            EventType::Normal,
            "Orphaned",
            "Delete",
            "deletionPolicy is Orphan: the OVH connector is left as it is".into(),
        )
        .await;
        return Ok(None);
    }
    let users: Vec<String> = ctx
        .bindings_of(&ns, &sc.name_any())
        .iter()
        .map(|b| b.name_any())
        .collect();
    if !users.is_empty() {
        return Ok(Some((
            Verdict::Progressing {
                reason: reasons::DELETION_BLOCKED,
                message: format!(
                    "waiting for MailboxBindings that use this connector: {}",
                    crate::text::list(&users, crate::text::LISTED)
                ),
            },
            soon(),
        )));
    }
    if status.connector_id.is_none() && status.creation.is_none() && status.pending_task.is_none() {
        // It never created nor adopted a connector: nothing on OVH is its to delete, so no
        // credentials or OVH request are needed either.
        publish(
            ctx,
            sc,
            EventType::Normal,
            "Deleted",
            "Delete",
            "nothing of this resource's is on OVH (it never created or adopted a connector): nothing to delete".into(),
        )
        .await;
        return Ok(None);
    }
    let api = service_api(ctx, sc).await?;
    if let Some(done) = poll_task(sc, ctx, &api, status).await? {
        return Ok(Some(done));
    }
    let memory = memory(sc, status, ctx.config.ovh.timeout);
    let others = held_by_others(sc, ctx);
    let uid = sc.uid().unwrap_or_default();
    let not_before = if memory.creation.is_some() {
        // Whether its own create is on OVH decides what there is to delete: read now.
        Some(tokio::time::Instant::now())
    } else {
        ctx.lists_after(&uid)
    };
    let mut observed = observe(&api, false, not_before).await?;
    let mut step = plan_deletion(&memory, &observed, &others);
    if step == DeletionStep::ReadPendingCreations {
        observed = observe(&api, true, None).await?;
        step = plan_deletion(&memory, &observed, &others);
    }
    match step {
        DeletionStep::Gone => {
            publish(
                ctx,
                sc,
                EventType::Normal,
                "Deleted",
                "Delete",
                "the OVH connector is gone".into(),
            )
            .await;
            Ok(None)
        }
        DeletionStep::Wait { reason } => Ok(Some((
            Verdict::Progressing {
                reason: reasons::DELETING,
                message: reason,
            },
            soon(),
        ))),
        DeletionStep::ReadPendingCreations => Ok(Some((
            Verdict::Progressing {
                reason: reasons::DELETING,
                message: "reading pending creations".into(),
            },
            soon(),
        ))),
        DeletionStep::Delete { id } => match delete_connector(ctx, &api, &uid, id).await {
            Ok(task) => {
                status.pending_task = Some(PendingTask {
                    id: task.id,
                    function: task.function.clone(),
                    status: task.status.to_string(),
                    since: Some(now()),
                });
                publish(
                    ctx,
                    sc,
                    EventType::Normal,
                    "Deleting",
                    "DeleteConnector",
                    format!("deleting OVH connector {id} (task {})", task.id),
                )
                .await;
                Ok(Some((
                    Verdict::Progressing {
                        reason: reasons::DELETING,
                        message: format!("OVH task {} (deleteSendConnector) started", task.id),
                    },
                    poll_in(ctx, sc, ctx.config.task_poll),
                )))
            }
            Err(e) if e.is_not_found() => Ok(Some((
                Verdict::Progressing {
                    reason: reasons::DELETING,
                    message: "connector already gone".into(),
                },
                soon(),
            ))),
            Err(e) => Err(e.into()),
        },
    }
}

/// `DELETE …/sendConnector/{id}`; lists planned on afterwards are read after it.
async fn delete_connector(
    ctx: &Context,
    api: &ExchangeApi,
    uid: &str,
    id: i64,
) -> Result<crate::ovh::model::Task, OvhError> {
    let answer = api
        .delete_send_connector(id)
        .instrument(write_span(
            "the resource was deleted with deletionPolicy Delete",
        ))
        .await;
    ctx.needs_lists_after(uid, tokio::time::Instant::now());
    answer
}
