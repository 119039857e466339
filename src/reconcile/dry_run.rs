//! `--dry-run`: every OVH call a resource still needs, worked out by playing the planner's
//! steps against a copy of what OVH shows, with secrets masked. Nothing here does I/O.
use super::binding::{BindingPlan, BindingWrite};
use super::connector::{
    AppliedAuth, ConnectorMemory, ConnectorStep, DesiredConnector, ObservedConnectors, plan,
};
use crate::ovh::model::{AccountConnectorUpdate, ChangeDefaultSbr};
use serde_json::json;

/// What replaces a secret value in a planned body.
pub const MASK: &str = "**********";

/// Stands for the id of a connector that does not exist yet (a planned create).
pub const NEW_CONNECTOR: i64 = -1;

/// One call that would be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedCall {
    pub method: &'static str,
    /// The path below the endpoint's `/1.0`.
    pub path: String,
    /// The JSON body, secrets masked.
    pub body: Option<String>,
    pub reason: String,
}

fn service_path(organization: &str, service: &str) -> String {
    format!("/email/exchange/{organization}/service/{service}")
}

/// The planned calls for a connector, and where planning stopped (`Err` when OVH must finish
/// something first, with the reason).
pub fn connector_calls(
    organization: &str,
    service: &str,
    desired: &DesiredConnector,
    memory: &ConnectorMemory,
    observed: &ObservedConnectors,
    generation: i64,
) -> (Vec<PlannedCall>, Result<Option<i64>, String>) {
    let base = service_path(organization, service);
    let mut memory = memory.clone();
    let mut observed = observed.clone();
    let mut calls = Vec::new();
    // Each step changes the copy; a handful of steps always reach the end.
    for _ in 0..8 {
        match plan(desired, &memory, &observed, generation) {
            ConnectorStep::InSync { id, .. } => return (calls, Ok(Some(id))),
            ConnectorStep::Create(c) => {
                let mut body = serde_json::to_value(c.body(None)).unwrap_or_default();
                if c.with_password {
                    body["password"] = json!(MASK);
                }
                calls.push(PlannedCall {
                    method: "POST",
                    path: format!("{base}/sendConnector"),
                    body: Some(body.to_string()),
                    reason: format!(
                        "no connector named {:?} on the service: create it",
                        c.display_name
                    ),
                });
                return (calls, Ok(None));
            }
            ConnectorStep::Update {
                id, update, cause, ..
            } => {
                let fields = update.field_names().join(", ");
                calls.push(PlannedCall {
                    method: "PUT",
                    path: format!("{base}/sendConnector/{id}"),
                    body: serde_json::to_string(&update).ok(),
                    reason: match cause {
                        super::connector::Cause::Drift => {
                            format!("{fields} changed on OVH: put back")
                        }
                        super::connector::Cause::Spec => format!("{fields} differ from the spec"),
                    },
                });
                if let Some(c) = std::sync::Arc::make_mut(&mut observed.connectors)
                    .iter_mut()
                    .find(|c| c.id == id)
                {
                    c.display_name = update
                        .display_name
                        .clone()
                        .unwrap_or(c.display_name.clone());
                    c.smart_host = update.smart_host.clone().or(c.smart_host.take());
                    c.port = update.port.unwrap_or(c.port);
                    c.require_tls = update.require_tls.unwrap_or(c.require_tls);
                    c.max_send_size = update.max_send_size.unwrap_or(c.max_send_size);
                }
                memory.connector_id = Some(id);
            }
            ConnectorStep::ChangeAuthentication {
                id,
                mechanism,
                user,
                with_password,
                why,
                ..
            } => {
                let mut body = json!({"smartHostAuthMechanism": mechanism.as_str()});
                if let Some(u) = &user {
                    body["user"] = json!(u);
                }
                if with_password {
                    body["password"] = json!(MASK);
                }
                calls.push(PlannedCall {
                    method: "POST",
                    path: format!("{base}/sendConnector/{id}/changeAuthentication"),
                    body: Some(body.to_string()),
                    reason: why,
                });
                if let Some(c) = std::sync::Arc::make_mut(&mut observed.connectors)
                    .iter_mut()
                    .find(|c| c.id == id)
                {
                    c.smart_host_auth_mechanism = mechanism;
                }
                memory.connector_id = Some(id);
                memory.applied_auth = Some(AppliedAuth {
                    mechanism: desired.auth.mechanism,
                    user: desired.auth.user.clone(),
                    password_secret: desired.auth.password_secret.clone(),
                });
            }
            ConnectorStep::Wait { reason, .. } => return (calls, Err(reason)),
            ConnectorStep::WaitForCreation { tasks } => {
                return (
                    calls,
                    Err(format!("connector creations in flight (tasks {tasks:?})")),
                );
            }
            ConnectorStep::Ambiguous { ids } => {
                return (
                    calls,
                    Err(format!("several connectors carry the name (ids {ids:?})")),
                );
            }
            ConnectorStep::ReadPendingCreations => {
                return (calls, Err("pending creations not read".into()));
            }
        }
    }
    (calls, Err("the plan did not settle".into()))
}

/// The planned calls of a binding's writes. `connector_name` names the connector in bodies
/// when its id is not known yet ([`NEW_CONNECTOR`]).
pub fn binding_calls(
    organization: &str,
    service: &str,
    plan: &BindingPlan,
    connector_name: &str,
) -> Vec<PlannedCall> {
    let base = service_path(organization, service);
    let id_json = |id: i64| {
        if id == NEW_CONNECTOR {
            json!(format!(
                "<id of SendConnector {connector_name} once created>"
            ))
        } else {
            json!(id)
        }
    };
    plan.writes
        .iter()
        .map(|w| match w {
            BindingWrite::SetAccount {
                address,
                connector_id,
                previous,
            } => {
                let body = serde_json::to_value(AccountConnectorUpdate {
                    send_connector_id: *connector_id,
                    spam_and_virus_configuration: None,
                })
                .map(|mut b| {
                    b["sendConnectorId"] = id_json(*connector_id);
                    b.to_string()
                })
                .ok();
                PlannedCall {
                    method: "PUT",
                    path: format!("{base}/account/{address}"),
                    body,
                    reason: if *connector_id == 0 {
                        format!("detach {address} (from {previous})")
                    } else {
                        format!("attach {address} (sends through {previous} now)")
                    },
                }
            }
            BindingWrite::SetDomainDefault {
                domain,
                connector_id,
                previous,
            } => {
                let body = serde_json::to_value(ChangeDefaultSbr {
                    send_connector_id_default: *connector_id,
                    sbr_default: None,
                })
                .map(|mut b| {
                    b["sendConnectorIdDefault"] = id_json(*connector_id);
                    b.to_string()
                })
                .ok();
                PlannedCall {
                    method: "PUT",
                    path: format!("{base}/domain/{domain}/changeDefaultSBR"),
                    body,
                    reason: format!(
                        "default connector of {domain} for new mailboxes (now {previous})"
                    ),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovh::model::{AuthMechanism, ObjectState, SendConnector};
    use crate::reconcile::connector::{DesiredAuth, SecretVersion};

    fn desired() -> DesiredConnector {
        DesiredConnector {
            display_name: "relay".into(),
            smart_host: "smtp-relay.example.com".into(),
            port: 587,
            require_tls: true,
            max_send_size: 100,
            auth: DesiredAuth {
                mechanism: AuthMechanism::BasicAuth,
                user: Some("u".into()),
                password_secret: Some(SecretVersion {
                    name: "p".into(),
                    uid: "1".into(),
                    resource_version: "1".into(),
                }),
            },
        }
    }

    fn existing(port: i64) -> SendConnector {
        SendConnector {
            id: 29,
            display_name: "relay".into(),
            smart_host: Some("smtp-relay.example.com".into()),
            port,
            require_tls: true,
            max_send_size: 100,
            smart_host_auth_mechanism: AuthMechanism::BasicAuth,
            state: ObjectState::Ok,
            task_pending_id: Some(0),
            default: None,
            dns_routing: None,
            creation_date: None,
            last_update_date: None,
        }
    }

    #[test]
    fn a_missing_connector_is_one_create_with_the_password_masked() {
        let observed = ObservedConnectors {
            connectors: Vec::new().into(),
            pending_creations: Some(vec![]),
        };
        let (calls, end) = connector_calls(
            "o",
            "s",
            &desired(),
            &ConnectorMemory::default(),
            &observed,
            1,
        );
        assert_eq!(end, Ok(None));
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].method, calls[0].path.as_str()),
            ("POST", "/email/exchange/o/service/s/sendConnector")
        );
        let body = calls[0].body.as_deref().unwrap();
        assert!(
            body.contains(MASK) && body.contains("\"port\":587"),
            "{body}"
        );
    }

    #[test]
    fn an_adopted_connector_with_drift_plans_the_put_then_the_password() {
        let observed = ObservedConnectors {
            connectors: vec![existing(25)].into(),
            pending_creations: None,
        };
        let (calls, end) = connector_calls(
            "o",
            "s",
            &desired(),
            &ConnectorMemory::default(),
            &observed,
            1,
        );
        assert_eq!(end, Ok(Some(29)));
        let summary: Vec<(&str, &str)> =
            calls.iter().map(|c| (c.method, c.path.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("PUT", "/email/exchange/o/service/s/sendConnector/29"),
                (
                    "POST",
                    "/email/exchange/o/service/s/sendConnector/29/changeAuthentication"
                )
            ]
        );
        assert_eq!(calls[0].body.as_deref(), Some(r#"{"port":587}"#));
        assert!(calls[1].body.as_deref().unwrap().contains(MASK));
    }

    #[test]
    fn binding_bodies_name_a_connector_still_to_create() {
        let plan = BindingPlan {
            writes: vec![BindingWrite::SetAccount {
                address: "a@d.ovh".into(),
                connector_id: NEW_CONNECTOR,
                previous: 0,
            }],
            ..BindingPlan::default()
        };
        let calls = binding_calls("o", "s", &plan, "relay");
        assert_eq!(calls[0].path, "/email/exchange/o/service/s/account/a@d.ovh");
        assert_eq!(
            calls[0].body.as_deref(),
            Some(r#"{"sendConnectorId":"<id of SendConnector relay once created>"}"#)
        );
    }
}
