//! What to do about one send connector: a pure function of the desired connector, what the
//! last status remembers, and what OVH shows now. No I/O here, so every combination is a plain
//! unit test.
use crate::ovh::model::{
    AuthMechanism, ChangeAuthentication, NewSendConnector, ObjectState, SendConnector,
    SendConnectorUpdate,
};
use crate::ovh::secret::SecretString;

/// The Secret version a password was read from: pushing happens once per version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

/// The authentication the resource asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAuth {
    pub mechanism: AuthMechanism,
    pub user: Option<String>,
    /// Where the password comes from (its value is read only when it must be sent).
    pub password_secret: Option<SecretVersion>,
}

/// The connector the resource asks for, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredConnector {
    pub display_name: String,
    pub smart_host: String,
    pub port: i64,
    pub require_tls: bool,
    pub max_send_size: i64,
    pub auth: DesiredAuth,
}

/// What was last pushed through `changeAuthentication` or the create call (from status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedAuth {
    pub mechanism: AuthMechanism,
    pub user: Option<String>,
    pub password_secret: Option<SecretVersion>,
}

/// What the resource's status remembers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectorMemory {
    pub connector_id: Option<i64>,
    pub applied_auth: Option<AppliedAuth>,
    /// A create this resource sent (or was about to send), until its connector is found.
    pub creation: Option<CreationMemory>,
    /// The spec generation that was last fully applied (Ready); a difference found at that
    /// same generation is drift, not a spec change.
    pub converged_generation: Option<i64>,
}

/// A create whose connector has not been found yet: the POST answer may have been lost, the
/// operator may have stopped after sending it, or OVH may list the connector only later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreationMemory {
    /// The display name the connector was created with (the spec may have changed since).
    pub display_name: String,
    pub progress: CreationProgress,
}

/// Where this resource's create stands, as far as it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreationProgress {
    /// The outcome is unknown and the request may still be on its way to OVH.
    Unsettled,
    /// The outcome is unknown, but any request sent is long applied or abandoned.
    Settled,
    /// Its task ended `done`: the connector exists unless someone deleted it since.
    /// `grace_over`: it was done long enough ago that OVH would list it by now.
    Done { grace_over: bool },
}

/// What OVH shows now.
#[derive(Clone, Debug, Default)]
pub struct ObservedConnectors {
    /// Every connector of the service (the shared list: many reconciles hold it at once).
    pub connectors: std::sync::Arc<Vec<SendConnector>>,
    /// `addSendConnector` tasks still pending on the service, when they were read (always
    /// before `connectors`, so a creation that ended in between shows in the list).
    pub pending_creations: Option<Vec<i64>>,
}

/// Why a write is made: a spec change, or drift from the control panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Spec,
    Drift,
}

/// The one step to take now. At most one write per reconcile: each write starts an OVH task
/// and no second write may go to an object whose task is pending.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectorStep {
    /// Nothing to write; the connector matches. `adopted` is set when it was found by name
    /// rather than by the remembered id.
    InSync { id: i64, adopted: bool },
    /// The connector is busy (a task runs, or it is not `ok`): look again soon.
    Wait { id: Option<i64>, reason: String },
    /// A creation may be in flight (ours or not): do not create, look again soon.
    WaitForCreation { tasks: Vec<i64> },
    /// Read the service's pending `addSendConnector` tasks, then plan again.
    ReadPendingCreations,
    /// `POST …/sendConnector` (the password is filled in by the caller).
    Create(CreatePlan),
    /// `PUT …/sendConnector/{id}` with only the fields that differ.
    Update {
        id: i64,
        update: SendConnectorUpdate,
        cause: Cause,
        adopted: bool,
    },
    /// `POST …/changeAuthentication`.
    ChangeAuthentication {
        id: i64,
        mechanism: AuthMechanism,
        user: Option<String>,
        with_password: bool,
        adopted: bool,
        why: String,
    },
    /// Several connectors on OVH carry the name: nothing is written until a person decides.
    Ambiguous { ids: Vec<i64> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePlan {
    pub display_name: String,
    pub smart_host: String,
    pub port: i64,
    pub require_tls: bool,
    pub max_send_size: i64,
    pub mechanism: AuthMechanism,
    pub user: Option<String>,
    pub with_password: bool,
}

impl CreatePlan {
    /// The POST body, with the password read by the caller.
    pub fn body(&self, password: Option<SecretString>) -> NewSendConnector {
        NewSendConnector {
            display_name: self.display_name.clone(),
            smart_host: self.smart_host.clone(),
            port: self.port,
            require_tls: self.require_tls,
            max_send_size: self.max_send_size,
            smart_host_auth_mechanism: self.mechanism,
            user: self.user.clone(),
            password,
        }
    }
}

impl ConnectorStep {
    /// The body of a `changeAuthentication` step, with the password read by the caller.
    pub fn change_authentication_body(
        mechanism: AuthMechanism,
        user: Option<String>,
        password: Option<SecretString>,
    ) -> ChangeAuthentication {
        ChangeAuthentication {
            smart_host_auth_mechanism: mechanism,
            user,
            password,
        }
    }
}

/// How the connector of a resource was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// By the id the status remembers.
    Remembered,
    /// By the name of this resource's own create.
    OwnCreate,
    /// By the desired display name: someone else's connector, to adopt.
    Named,
}

/// Finds the connector this resource manages: by the remembered id, else by the name of its
/// own create, else (to adopt it) by the desired display name.
fn locate<'a>(
    memory: &ConnectorMemory,
    desired: &DesiredConnector,
    observed: &'a [SendConnector],
) -> (Vec<&'a SendConnector>, Found) {
    if let Some(id) = memory.connector_id {
        if let Some(c) = observed.iter().find(|c| c.id == id) {
            return (vec![c], Found::Remembered);
        }
    }
    let named = |name: &str| -> Vec<&'a SendConnector> {
        observed.iter().filter(|c| c.display_name == name).collect()
    };
    if let Some(creation) = &memory.creation {
        let own = named(&creation.display_name);
        if !own.is_empty() {
            return (own, Found::OwnCreate);
        }
    }
    (named(&desired.display_name), Found::Named)
}

/// What to do when this resource's own create has not shown up on OVH.
enum Absent {
    /// Nothing of this resource's can be on its way: go on (create, or adopt by name).
    Proceed,
    /// Look again later; this step says why.
    Hold(ConnectorStep),
}

/// Never create while this resource's earlier create might still produce a connector: after
/// a lost answer or a crash the connector may appear only once its task is done, or the
/// request may not even have reached OVH yet.
fn own_create_absent(memory: &ConnectorMemory, observed: &ObservedConnectors) -> Absent {
    let Some(creation) = &memory.creation else {
        return Absent::Proceed;
    };
    match creation.progress {
        CreationProgress::Unsettled => Absent::Hold(ConnectorStep::Wait {
            id: None,
            reason: format!(
                "the request to create connector {:?} may still be on its way to OVH",
                creation.display_name
            ),
        }),
        CreationProgress::Done { grace_over: false } => Absent::Hold(ConnectorStep::Wait {
            id: None,
            reason: format!(
                "OVH finished creating connector {:?} but does not list it yet",
                creation.display_name
            ),
        }),
        // Its task is long done and the connector is not listed: it was deleted since.
        CreationProgress::Done { grace_over: true } => Absent::Proceed,
        CreationProgress::Settled => match &observed.pending_creations {
            None => Absent::Hold(ConnectorStep::ReadPendingCreations),
            Some(tasks) if !tasks.is_empty() => Absent::Hold(ConnectorStep::WaitForCreation {
                tasks: tasks.clone(),
            }),
            Some(_) => Absent::Proceed,
        },
    }
}

fn create_plan(desired: &DesiredConnector) -> ConnectorStep {
    let with_auth = desired.auth.mechanism != AuthMechanism::None;
    ConnectorStep::Create(CreatePlan {
        display_name: desired.display_name.clone(),
        smart_host: desired.smart_host.clone(),
        port: desired.port,
        require_tls: desired.require_tls,
        max_send_size: desired.max_send_size,
        mechanism: desired.auth.mechanism,
        user: with_auth.then(|| desired.auth.user.clone()).flatten(),
        with_password: with_auth && desired.auth.password_secret.is_some(),
    })
}

/// The writable fields that differ, and nothing else.
pub fn diff(desired: &DesiredConnector, observed: &SendConnector) -> SendConnectorUpdate {
    SendConnectorUpdate {
        display_name: (observed.display_name != desired.display_name)
            .then(|| desired.display_name.clone()),
        smart_host: (observed.smart_host.as_deref() != Some(desired.smart_host.as_str()))
            .then(|| desired.smart_host.clone()),
        port: (observed.port != desired.port).then_some(desired.port),
        require_tls: (observed.require_tls != desired.require_tls).then_some(desired.require_tls),
        max_send_size: (observed.max_send_size != desired.max_send_size)
            .then_some(desired.max_send_size),
        dns_routing: None,
    }
}

/// Whether, and why, `changeAuthentication` must be called. OVH never shows the user or the
/// password, so those are judged from what was last pushed.
fn auth_change(
    desired: &DesiredAuth,
    observed: &SendConnector,
    applied: Option<&AppliedAuth>,
) -> Option<String> {
    if observed.smart_host_auth_mechanism != desired.mechanism {
        return Some(format!(
            "mechanism is {} on OVH, {} wanted",
            observed.smart_host_auth_mechanism, desired.mechanism
        ));
    }
    if desired.mechanism == AuthMechanism::None {
        return None;
    }
    let Some(applied) = applied else {
        // Adopted, or status lost: the password is write-only, so push it once.
        return Some("the password on OVH cannot be read, so it is set once".into());
    };
    if applied.mechanism != desired.mechanism {
        return Some("mechanism changed".into());
    }
    if applied.user != desired.user {
        return Some("user changed".into());
    }
    if applied.password_secret != desired.password_secret {
        return Some("password Secret changed".into());
    }
    None
}

/// Plans the next step for a connector that should exist.
pub fn plan(
    desired: &DesiredConnector,
    memory: &ConnectorMemory,
    observed: &ObservedConnectors,
    generation: i64,
) -> ConnectorStep {
    let (mut found, mut how) = locate(memory, desired, &observed.connectors);
    if how == Found::Named && memory.creation.is_some() {
        // This resource's own create is not listed: settle it before adopting or creating.
        if let Absent::Hold(step) = own_create_absent(memory, observed) {
            return step;
        }
    }
    if found.is_empty() {
        return create_plan(desired);
    }
    if found.len() > 1 {
        let mut ids: Vec<i64> = found.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        return ConnectorStep::Ambiguous { ids };
    }
    let current = found.remove(0);
    if how == Found::Named && memory.connector_id == Some(current.id) {
        how = Found::Remembered;
    }
    let adopted = how == Found::Named;
    if let Some(task) = current.pending_task() {
        return ConnectorStep::Wait {
            id: Some(current.id),
            reason: format!("OVH task {task} is running on connector {}", current.id),
        };
    }
    if current.state != ObjectState::Ok {
        return ConnectorStep::Wait {
            id: Some(current.id),
            reason: format!("connector {} is {}", current.id, current.state.as_str()),
        };
    }
    let update = diff(desired, current);
    if !update.is_empty() {
        let cause = if memory.converged_generation == Some(generation) && !adopted {
            Cause::Drift
        } else {
            Cause::Spec
        };
        return ConnectorStep::Update {
            id: current.id,
            update,
            cause,
            adopted,
        };
    }
    if let Some(why) = auth_change(&desired.auth, current, memory.applied_auth.as_ref()) {
        let with_password =
            desired.auth.mechanism != AuthMechanism::None && desired.auth.password_secret.is_some();
        return ConnectorStep::ChangeAuthentication {
            id: current.id,
            mechanism: desired.auth.mechanism,
            user: (desired.auth.mechanism != AuthMechanism::None)
                .then(|| desired.auth.user.clone())
                .flatten(),
            with_password,
            adopted,
            why,
        };
    }
    ConnectorStep::InSync {
        id: current.id,
        adopted,
    }
}

/// The one step to take for a connector being deleted with policy `Delete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletionStep {
    /// Nothing left on OVH: the finalizer may go.
    Gone,
    /// Busy, or a creation may still be in flight: look again soon.
    Wait {
        reason: String,
    },
    ReadPendingCreations,
    /// `DELETE …/sendConnector/{id}`.
    Delete {
        id: i64,
    },
}

/// Plans the deletion of the connector this resource manages. Only a connector known to be
/// this resource's is deleted: the remembered id, or the one its own create made. A
/// connector that merely carries the name (another resource's, or one never adopted) is left
/// alone, and so is any connector whose id another resource remembers (`owned_by_others`).
pub fn plan_deletion(
    memory: &ConnectorMemory,
    observed: &ObservedConnectors,
    owned_by_others: &[i64],
) -> DeletionStep {
    let by_id = memory
        .connector_id
        .and_then(|id| observed.connectors.iter().find(|c| c.id == id));
    let found: Vec<&SendConnector> = match (by_id, &memory.creation) {
        (Some(c), _) => vec![c],
        (None, Some(creation)) => observed
            .connectors
            .iter()
            .filter(|c| c.display_name == creation.display_name)
            .collect(),
        (None, None) => Vec::new(),
    };
    let found: Vec<&SendConnector> = found
        .into_iter()
        .filter(|c| !owned_by_others.contains(&c.id))
        .collect();
    match found.as_slice() {
        [] => match own_create_absent(memory, observed) {
            Absent::Proceed => DeletionStep::Gone,
            Absent::Hold(ConnectorStep::ReadPendingCreations) => DeletionStep::ReadPendingCreations,
            Absent::Hold(ConnectorStep::WaitForCreation { tasks }) => DeletionStep::Wait {
                reason: format!("a connector creation is still running (tasks {tasks:?})"),
            },
            Absent::Hold(ConnectorStep::Wait { reason, .. }) => DeletionStep::Wait { reason },
            Absent::Hold(_) => DeletionStep::Wait {
                reason: "the connector's creation is not settled yet".into(),
            },
        },
        [c] => match c.pending_task() {
            Some(task) if c.state == ObjectState::Deleting => DeletionStep::Wait {
                reason: format!("OVH is deleting connector {} (task {task})", c.id),
            },
            Some(task) => DeletionStep::Wait {
                reason: format!("OVH task {task} is running on connector {}", c.id),
            },
            None if c.state == ObjectState::Deleting => DeletionStep::Wait {
                reason: format!("OVH is deleting connector {}", c.id),
            },
            None => DeletionStep::Delete { id: c.id },
        },
        many => DeletionStep::Wait {
            reason: format!(
                "several connectors named {:?} exist on OVH (ids {:?}); delete the extra ones by hand",
                many[0].display_name,
                many.iter().map(|c| c.id).collect::<Vec<_>>()
            ),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn secret(rv: &str) -> SecretVersion {
        SecretVersion {
            name: "relay-password".into(),
            uid: "uid-1".into(),
            resource_version: rv.into(),
        }
    }

    fn desired() -> DesiredConnector {
        DesiredConnector {
            display_name: "relay".into(),
            smart_host: "smtp-relay.example.com".into(),
            port: 587,
            require_tls: true,
            max_send_size: 100,
            auth: DesiredAuth {
                mechanism: AuthMechanism::BasicAuthRequireTls,
                user: Some("u".into()),
                password_secret: Some(secret("1")),
            },
        }
    }

    fn on_ovh(id: i64, name: &str) -> SendConnector {
        SendConnector {
            id,
            display_name: name.into(),
            smart_host: Some("smtp-relay.example.com".into()),
            port: 587,
            require_tls: true,
            max_send_size: 100,
            smart_host_auth_mechanism: AuthMechanism::BasicAuthRequireTls,
            state: ObjectState::Ok,
            task_pending_id: Some(0),
            default: Some(false),
            dns_routing: Some(false),
            creation_date: None,
            last_update_date: None,
        }
    }

    fn own_create(progress: CreationProgress) -> CreationMemory {
        CreationMemory {
            display_name: "relay".into(),
            progress,
        }
    }

    fn applied() -> AppliedAuth {
        AppliedAuth {
            mechanism: AuthMechanism::BasicAuthRequireTls,
            user: Some("u".into()),
            password_secret: Some(secret("1")),
        }
    }

    fn memory(id: Option<i64>) -> ConnectorMemory {
        ConnectorMemory {
            connector_id: id,
            applied_auth: Some(applied()),
            creation: None,
            converged_generation: Some(1),
        }
    }

    fn observed(connectors: Vec<SendConnector>, pending: Option<Vec<i64>>) -> ObservedConnectors {
        ObservedConnectors {
            connectors: connectors.into(),
            pending_creations: pending,
        }
    }

    #[test]
    fn an_unanswered_create_is_repeated_only_after_checking_for_creations_in_flight() {
        let m = ConnectorMemory {
            creation: Some(own_create(CreationProgress::Settled)),
            ..ConnectorMemory::default()
        };
        assert_eq!(
            plan(&desired(), &m, &observed(vec![], None), 1),
            ConnectorStep::ReadPendingCreations
        );
        assert_eq!(
            plan(&desired(), &m, &observed(vec![], Some(vec![7])), 1),
            ConnectorStep::WaitForCreation { tasks: vec![7] }
        );
        let ConnectorStep::Create(c) = plan(&desired(), &m, &observed(vec![], Some(vec![])), 1)
        else {
            panic!("expected a create")
        };
        assert!(c.with_password);
        assert_eq!(c.user.as_deref(), Some("u"));
        let body = c.body(Some("pw".into()));
        assert_eq!(
            body.smart_host_auth_mechanism,
            AuthMechanism::BasicAuthRequireTls
        );
    }

    #[test]
    fn no_user_or_password_for_mechanism_none() {
        let mut d = desired();
        d.auth = DesiredAuth {
            mechanism: AuthMechanism::None,
            user: Some("ignored".into()),
            password_secret: None,
        };
        let ConnectorStep::Create(c) = plan(
            &d,
            &ConnectorMemory::default(),
            &observed(vec![], Some(vec![])),
            1,
        ) else {
            panic!()
        };
        assert_eq!((c.user, c.with_password), (None, false));
    }

    #[test]
    fn in_sync_when_everything_matches() {
        assert_eq!(
            plan(
                &desired(),
                &memory(Some(29)),
                &observed(vec![on_ovh(29, "relay")], None),
                1
            ),
            ConnectorStep::InSync {
                id: 29,
                adopted: false
            }
        );
    }

    #[test]
    fn a_spec_change_is_one_put_of_the_changed_fields() {
        let mut d = desired();
        d.port = 2525;
        d.max_send_size = 50;
        let step = plan(
            &d,
            &memory(Some(29)),
            &observed(vec![on_ovh(29, "relay")], None),
            2,
        );
        let ConnectorStep::Update {
            id, update, cause, ..
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!((id, cause), (29, Cause::Spec));
        assert_eq!(
            update,
            SendConnectorUpdate {
                port: Some(2525),
                max_send_size: Some(50),
                ..Default::default()
            }
        );
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"port":2525,"maxSendSize":50}"#
        );
    }

    #[test]
    fn a_difference_at_the_converged_generation_is_drift() {
        let mut c = on_ovh(29, "relay");
        c.port = 25;
        let step = plan(&desired(), &memory(Some(29)), &observed(vec![c], None), 1);
        assert!(
            matches!(step, ConnectorStep::Update { cause: Cause::Drift, ref update, .. } if update.field_names() == ["port"]),
            "{step:?}"
        );
    }

    #[test]
    fn renaming_follows_the_remembered_id() {
        let mut d = desired();
        d.display_name = "renamed".into();
        let step = plan(
            &d,
            &memory(Some(29)),
            &observed(vec![on_ovh(29, "relay")], None),
            2,
        );
        assert!(
            matches!(step, ConnectorStep::Update { id: 29, ref update, .. } if update.display_name.as_deref() == Some("renamed")),
            "{step:?}"
        );
    }

    #[test]
    fn adopts_by_display_name() {
        let step = plan(
            &desired(),
            &ConnectorMemory::default(),
            &observed(vec![on_ovh(3, "other"), on_ovh(29, "relay")], None),
            1,
        );
        // Nothing was pushed by this resource, so the write-only password is set once.
        assert!(
            matches!(
                step,
                ConnectorStep::ChangeAuthentication {
                    id: 29,
                    adopted: true,
                    with_password: true,
                    ..
                }
            ),
            "{step:?}"
        );
        let mut m = ConnectorMemory {
            applied_auth: Some(applied()),
            ..ConnectorMemory::default()
        };
        assert_eq!(
            plan(
                &desired(),
                &m,
                &observed(vec![on_ovh(29, "relay")], None),
                1
            ),
            ConnectorStep::InSync {
                id: 29,
                adopted: true
            }
        );
        // After a lost create answer, finding it by name is not an adoption.
        m.creation = Some(own_create(CreationProgress::Settled));
        assert_eq!(
            plan(
                &desired(),
                &m,
                &observed(vec![on_ovh(29, "relay")], None),
                1
            ),
            ConnectorStep::InSync {
                id: 29,
                adopted: false
            }
        );
    }

    #[test]
    fn never_picks_among_duplicates() {
        let step = plan(
            &desired(),
            &ConnectorMemory::default(),
            &observed(vec![on_ovh(31, "relay"), on_ovh(29, "relay")], None),
            1,
        );
        assert_eq!(step, ConnectorStep::Ambiguous { ids: vec![29, 31] });
        // The remembered id settles it.
        assert_eq!(
            plan(
                &desired(),
                &memory(Some(31)),
                &observed(vec![on_ovh(31, "relay"), on_ovh(29, "relay")], None),
                1
            ),
            ConnectorStep::InSync {
                id: 31,
                adopted: false
            }
        );
    }

    #[test]
    fn waits_while_a_task_runs_or_the_object_is_busy() {
        let mut c = on_ovh(29, "relay");
        c.task_pending_id = Some(77);
        c.port = 1;
        assert!(matches!(
            plan(
                &desired(),
                &memory(Some(29)),
                &observed(vec![c.clone()], None),
                1
            ),
            ConnectorStep::Wait { id: Some(29), .. }
        ));
        c.task_pending_id = None;
        c.state = ObjectState::Creating;
        assert!(matches!(
            plan(&desired(), &memory(Some(29)), &observed(vec![c], None), 1),
            ConnectorStep::Wait { .. }
        ));
    }

    #[test]
    fn authentication_changes_go_through_change_authentication_once() {
        let o = observed(vec![on_ovh(29, "relay")], None);
        let mut d = desired();
        d.auth.password_secret = Some(secret("2"));
        assert!(
            matches!(plan(&d, &memory(Some(29)), &o, 1), ConnectorStep::ChangeAuthentication { with_password: true, ref why, .. } if why.contains("password"))
        );
        let mut d = desired();
        d.auth.user = Some("other".into());
        assert!(
            matches!(plan(&d, &memory(Some(29)), &o, 2), ConnectorStep::ChangeAuthentication { ref why, .. } if why.contains("user"))
        );
        let mut d = desired();
        d.auth = DesiredAuth {
            mechanism: AuthMechanism::None,
            user: None,
            password_secret: None,
        };
        assert!(matches!(
            plan(&d, &memory(Some(29)), &o, 2),
            ConnectorStep::ChangeAuthentication {
                mechanism: AuthMechanism::None,
                with_password: false,
                user: None,
                ..
            }
        ));
        // The same Secret version again: nothing to push.
        assert_eq!(
            plan(&desired(), &memory(Some(29)), &o, 3),
            ConnectorStep::InSync {
                id: 29,
                adopted: false
            }
        );
    }

    #[test]
    fn field_updates_come_before_authentication() {
        let mut d = desired();
        d.port = 2525;
        d.auth.password_secret = Some(secret("2"));
        assert!(matches!(
            plan(
                &d,
                &memory(Some(29)),
                &observed(vec![on_ovh(29, "relay")], None),
                2
            ),
            ConnectorStep::Update { .. }
        ));
    }

    #[test]
    fn deletion_deletes_once_and_waits_for_the_task() {
        let m = memory(Some(29));
        assert_eq!(
            plan_deletion(&m, &observed(vec![on_ovh(29, "relay")], None), &[]),
            DeletionStep::Delete { id: 29 }
        );
        let mut c = on_ovh(29, "relay");
        c.state = ObjectState::Deleting;
        c.task_pending_id = Some(5);
        assert!(matches!(
            plan_deletion(&m, &observed(vec![c], None), &[]),
            DeletionStep::Wait { .. }
        ));
        assert_eq!(
            plan_deletion(&m, &observed(vec![], None), &[]),
            DeletionStep::Gone
        );
    }

    #[test]
    fn deletion_after_a_lost_create_waits_for_the_creation() {
        let m = ConnectorMemory {
            creation: Some(own_create(CreationProgress::Settled)),
            ..ConnectorMemory::default()
        };
        assert_eq!(
            plan_deletion(&m, &observed(vec![], None), &[]),
            DeletionStep::ReadPendingCreations
        );
        assert!(matches!(
            plan_deletion(&m, &observed(vec![], Some(vec![4])), &[]),
            DeletionStep::Wait { .. }
        ));
        assert_eq!(
            plan_deletion(&m, &observed(vec![], Some(vec![])), &[]),
            DeletionStep::Gone
        );
    }

    #[test]
    fn a_connector_merely_named_like_this_one_is_never_deleted() {
        // Never adopted, never created by this resource: the connector is someone else's.
        let m = ConnectorMemory::default();
        assert_eq!(
            plan_deletion(&m, &observed(vec![on_ovh(29, "relay")], Some(vec![])), &[]),
            DeletionStep::Gone
        );
        // Its own create, but another resource has since taken the id over.
        let m = ConnectorMemory {
            creation: Some(own_create(CreationProgress::Settled)),
            ..ConnectorMemory::default()
        };
        assert_eq!(
            plan_deletion(
                &m,
                &observed(vec![on_ovh(29, "relay")], Some(vec![])),
                &[29]
            ),
            DeletionStep::Gone
        );
        assert_eq!(
            plan_deletion(&m, &observed(vec![on_ovh(29, "relay")], None), &[]),
            DeletionStep::Delete { id: 29 }
        );
    }

    #[test]
    fn an_own_create_not_listed_yet_is_waited_for_never_repeated() {
        for progress in [
            CreationProgress::Unsettled,
            CreationProgress::Done { grace_over: false },
        ] {
            let m = ConnectorMemory {
                creation: Some(own_create(progress)),
                ..ConnectorMemory::default()
            };
            // Even with no creation pending on the service: the list may lag its task.
            let step = plan(&desired(), &m, &observed(vec![], Some(vec![])), 1);
            assert!(
                matches!(step, ConnectorStep::Wait { id: None, .. }),
                "{progress:?}: {step:?}"
            );
            assert!(matches!(
                plan_deletion(&m, &observed(vec![], Some(vec![])), &[]),
                DeletionStep::Wait { .. }
            ));
        }
        // Long done and still not listed: deleted out of band, so created again.
        let m = ConnectorMemory {
            creation: Some(own_create(CreationProgress::Done { grace_over: true })),
            ..ConnectorMemory::default()
        };
        assert!(matches!(
            plan(&desired(), &m, &observed(vec![], None), 1),
            ConnectorStep::Create(_)
        ));
    }

    #[test]
    fn a_create_without_an_earlier_one_does_not_wait_for_other_creations() {
        let m = ConnectorMemory::default();
        assert!(matches!(
            plan(&desired(), &m, &observed(vec![], None), 1),
            ConnectorStep::Create(_)
        ));
    }

    #[test]
    fn a_renamed_resource_finds_its_own_create_under_the_old_name() {
        let m = ConnectorMemory {
            creation: Some(CreationMemory {
                display_name: "old-name".into(),
                progress: CreationProgress::Settled,
            }),
            applied_auth: Some(applied()),
            ..ConnectorMemory::default()
        };
        let step = plan(
            &desired(),
            &m,
            &observed(vec![on_ovh(29, "old-name")], None),
            1,
        );
        let ConnectorStep::Update {
            id,
            update,
            adopted,
            ..
        } = step
        else {
            panic!("expected a rename, got {step:?}")
        };
        assert_eq!((id, adopted), (29, false));
        assert_eq!(update.display_name.as_deref(), Some("relay"));
        assert_eq!(
            plan_deletion(&m, &observed(vec![on_ovh(29, "old-name")], None), &[]),
            DeletionStep::Delete { id: 29 }
        );
    }
}
