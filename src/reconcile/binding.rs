//! What to do about one mailbox binding: which mailboxes and domains to point at the
//! connector, which to put back to `0`, and the phase each one is in. Pure, like the
//! connector planner.
use crate::ovh::model::{Account, Domain};
use std::collections::{BTreeMap, BTreeSet};

/// The phase of one mailbox or domain, as the status reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Bound,
    Pending,
    NotFound,
    Conflict,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bound => "Bound",
            Self::Pending => "Pending",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::Failed => "Failed",
        }
    }
}

/// One write on OVH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingWrite {
    /// `PUT …/account/{address}` with `sendConnectorId`. `previous` is what it pointed at.
    SetAccount {
        address: String,
        connector_id: i64,
        previous: i64,
    },
    /// `PUT …/domain/{name}/changeDefaultSBR`.
    SetDomainDefault {
        domain: String,
        connector_id: i64,
        previous: i64,
    },
}

/// The plan for one binding: the writes to make now and each target's phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingPlan {
    pub writes: Vec<BindingWrite>,
    pub mailboxes: BTreeMap<String, (Phase, Option<String>)>,
    pub domains: BTreeMap<String, (Phase, Option<String>)>,
}

impl BindingPlan {
    /// `bound/total` over mailboxes and domains, e.g. `3/3`.
    pub fn bound_summary(&self) -> String {
        let all = self.mailboxes.values().chain(self.domains.values());
        let total = self.mailboxes.len() + self.domains.len();
        let bound = all.filter(|(p, _)| *p == Phase::Bound).count();
        format!("{bound}/{total}")
    }

    pub fn all_bound(&self) -> bool {
        self.mailboxes
            .values()
            .chain(self.domains.values())
            .all(|(p, _)| *p == Phase::Bound)
    }
}

/// Inputs of the binding planner.
#[derive(Clone, Debug, Default)]
pub struct BindingInputs {
    /// The connector's OVH id.
    pub connector_id: i64,
    pub mailboxes: Vec<String>,
    pub domains: Vec<String>,
    /// Mailboxes and domains this binding pointed at the connector before but no longer lists.
    pub released_mailboxes: Vec<String>,
    pub released_domains: Vec<String>,
    /// Targets another binding owns (see [`domain_key`] for domains), with its name.
    pub conflicts: BTreeMap<String, String>,
    /// The accounts read from OVH (`None`: no such mailbox).
    pub accounts: BTreeMap<String, Option<Account>>,
    pub domain_objects: BTreeMap<String, Option<Domain>>,
}

/// Plans a binding that should be in force.
pub fn plan(inputs: &BindingInputs) -> BindingPlan {
    let mut out = BindingPlan::default();
    let id = inputs.connector_id;
    for address in &inputs.mailboxes {
        let phase = if let Some(owner) = inputs.conflicts.get(address) {
            (
                Phase::Conflict,
                Some(format!("claimed by MailboxBinding {owner}")),
            )
        } else {
            match inputs.accounts.get(address).cloned().flatten() {
                None => (
                    Phase::NotFound,
                    Some("no such mailbox on the Exchange service".to_owned()),
                ),
                Some(a) if a.connector_id() == id && a.pending_task().is_none() => {
                    (Phase::Bound, None)
                }
                // A task still runs on it (the change may yet fail and be undone): pending.
                Some(a) if a.pending_task().is_some() => (
                    Phase::Pending,
                    Some(format!(
                        "waiting for OVH task {}",
                        a.pending_task().unwrap_or_default()
                    )),
                ),
                Some(a) => {
                    out.writes.push(BindingWrite::SetAccount {
                        address: address.clone(),
                        connector_id: id,
                        previous: a.connector_id(),
                    });
                    (
                        Phase::Pending,
                        Some(format!("attaching (was {})", a.connector_id())),
                    )
                }
            }
        };
        out.mailboxes.insert(address.clone(), phase);
    }
    for domain in &inputs.domains {
        let phase = if let Some(owner) = inputs.conflicts.get(&domain_key(domain)) {
            (
                Phase::Conflict,
                Some(format!("claimed by MailboxBinding {owner}")),
            )
        } else {
            match inputs.domain_objects.get(domain).cloned().flatten() {
                None => (
                    Phase::NotFound,
                    Some("no such domain on the Exchange service".to_owned()),
                ),
                Some(d) if d.default_connector_id() == id && d.pending_task().is_none() => {
                    (Phase::Bound, None)
                }
                Some(d) if d.pending_task().is_some() => (
                    Phase::Pending,
                    Some(format!(
                        "waiting for OVH task {}",
                        d.pending_task().unwrap_or_default()
                    )),
                ),
                Some(d) => {
                    out.writes.push(BindingWrite::SetDomainDefault {
                        domain: domain.clone(),
                        connector_id: id,
                        previous: d.default_connector_id(),
                    });
                    (
                        Phase::Pending,
                        Some(format!(
                            "setting the default (was {})",
                            d.default_connector_id()
                        )),
                    )
                }
            }
        };
        out.domains.insert(domain.clone(), phase);
    }
    out.writes.extend(release_writes(
        id,
        &inputs.released_mailboxes,
        &inputs.released_domains,
        &inputs.conflicts,
        &inputs.accounts,
        &inputs.domain_objects,
    ));
    out
}

/// The conflict key of a domain, kept apart from mailbox addresses.
pub fn domain_key(domain: &str) -> String {
    format!("domain:{domain}")
}

/// Writes that put released targets back to `0`, only where they still point at this
/// connector and nobody else claims them.
pub fn release_writes(
    connector_id: i64,
    mailboxes: &[String],
    domains: &[String],
    conflicts: &BTreeMap<String, String>,
    accounts: &BTreeMap<String, Option<Account>>,
    domain_objects: &BTreeMap<String, Option<Domain>>,
) -> Vec<BindingWrite> {
    let mut writes = Vec::new();
    let unique: BTreeSet<&String> = mailboxes.iter().collect();
    for address in unique {
        if conflicts.contains_key(address) {
            continue;
        }
        if let Some(Some(a)) = accounts.get(address) {
            if a.connector_id() == connector_id && connector_id != 0 && a.pending_task().is_none() {
                writes.push(BindingWrite::SetAccount {
                    address: address.clone(),
                    connector_id: 0,
                    previous: connector_id,
                });
            }
        }
    }
    let unique: BTreeSet<&String> = domains.iter().collect();
    for domain in unique {
        if conflicts.contains_key(&domain_key(domain)) {
            continue;
        }
        if let Some(Some(d)) = domain_objects.get(domain) {
            if d.default_connector_id() == connector_id
                && connector_id != 0
                && d.pending_task().is_none()
            {
                writes.push(BindingWrite::SetDomainDefault {
                    domain: domain.clone(),
                    connector_id: 0,
                    previous: connector_id,
                });
            }
        }
    }
    writes
}

/// For a binding being deleted with policy `Delete`: the writes still needed, and whether
/// everything is back to `0` (then the finalizer may go).
pub fn plan_release_all(
    connector_id: i64,
    mailboxes: &[String],
    domains: &[String],
    conflicts: &BTreeMap<String, String>,
    accounts: &BTreeMap<String, Option<Account>>,
    domain_objects: &BTreeMap<String, Option<Domain>>,
) -> (Vec<BindingWrite>, bool) {
    let writes = release_writes(
        connector_id,
        mailboxes,
        domains,
        conflicts,
        accounts,
        domain_objects,
    );
    let busy = mailboxes.iter().any(|m| {
        !conflicts.contains_key(m)
            && accounts
                .get(m)
                .cloned()
                .flatten()
                .is_some_and(|a| a.connector_id() == connector_id && connector_id != 0)
    }) || domains.iter().any(|d| {
        !conflicts.contains_key(&domain_key(d))
            && domain_objects
                .get(d)
                .cloned()
                .flatten()
                .is_some_and(|o| o.default_connector_id() == connector_id && connector_id != 0)
    });
    (writes, !busy)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ovh::model::ObjectState;

    #[allow(clippy::unnecessary_wraps)] // reads like the OVH lookup it stands for
    fn account(address: &str, connector: i64, pending: i64) -> Option<Account> {
        Some(Account {
            primary_email_address: address.into(),
            domain: Some("mydomain.ovh".into()),
            send_connector_id: Some(connector),
            state: ObjectState::Ok,
            task_pending_id: Some(pending),
            spam_and_virus_configuration: None,
        })
    }

    #[allow(clippy::unnecessary_wraps)]
    fn domain(name: &str, connector: i64) -> Option<Domain> {
        Some(Domain {
            name: name.into(),
            send_connector_id_default: Some(connector),
            sbr_default: None,
            state: ObjectState::Ok,
            task_pending_id: Some(0),
        })
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn attaches_what_differs_and_reports_each_phase() {
        let mailboxes = strings(&["a@d.ovh", "b@d.ovh", "c@d.ovh", "ghost@d.ovh", "busy@d.ovh"]);
        let domains = strings(&["d.ovh"]);
        let accounts: BTreeMap<_, _> = [
            ("a@d.ovh", account("a@d.ovh", 29, 0)),
            ("b@d.ovh", account("b@d.ovh", 0, 0)),
            ("c@d.ovh", account("c@d.ovh", 12, 0)),
            ("ghost@d.ovh", None),
            ("busy@d.ovh", account("busy@d.ovh", 0, 99)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let domain_objects: BTreeMap<_, _> = [("d.ovh".to_owned(), domain("d.ovh", 0))]
            .into_iter()
            .collect();
        let conflicts = BTreeMap::new();
        let p = plan(&BindingInputs {
            connector_id: 29,
            mailboxes,
            domains,
            conflicts,
            accounts,
            domain_objects,
            ..Default::default()
        });
        assert_eq!(
            p.writes,
            vec![
                BindingWrite::SetAccount {
                    address: "b@d.ovh".into(),
                    connector_id: 29,
                    previous: 0
                },
                BindingWrite::SetAccount {
                    address: "c@d.ovh".into(),
                    connector_id: 29,
                    previous: 12
                },
                BindingWrite::SetDomainDefault {
                    domain: "d.ovh".into(),
                    connector_id: 29,
                    previous: 0
                },
            ]
        );
        assert_eq!(p.mailboxes["a@d.ovh"].0, Phase::Bound);
        assert_eq!(p.mailboxes["ghost@d.ovh"].0, Phase::NotFound);
        assert_eq!(p.mailboxes["busy@d.ovh"].0, Phase::Pending);
        assert_eq!(p.bound_summary(), "1/6");
        assert!(!p.all_bound());
    }

    #[test]
    fn conflicts_are_never_written() {
        let mailboxes = strings(&["a@d.ovh"]);
        let accounts: BTreeMap<_, _> = [("a@d.ovh".to_owned(), account("a@d.ovh", 7, 0))]
            .into_iter()
            .collect();
        let conflicts: BTreeMap<_, _> = [("a@d.ovh".to_owned(), "mail/first".to_owned())]
            .into_iter()
            .collect();
        let p = plan(&BindingInputs {
            connector_id: 29,
            mailboxes,
            conflicts,
            accounts,
            ..Default::default()
        });
        assert!(p.writes.is_empty());
        assert_eq!(
            p.mailboxes["a@d.ovh"],
            (
                Phase::Conflict,
                Some("claimed by MailboxBinding mail/first".into())
            )
        );
    }

    #[test]
    fn released_targets_go_back_to_zero_only_if_still_ours() {
        let released = strings(&["old@d.ovh", "moved@d.ovh"]);
        let accounts: BTreeMap<_, _> = [
            ("old@d.ovh".to_owned(), account("old@d.ovh", 29, 0)),
            ("moved@d.ovh".to_owned(), account("moved@d.ovh", 5, 0)),
        ]
        .into_iter()
        .collect();
        let p = plan(&BindingInputs {
            connector_id: 29,
            released_mailboxes: released,
            accounts,
            ..Default::default()
        });
        assert_eq!(
            p.writes,
            vec![BindingWrite::SetAccount {
                address: "old@d.ovh".into(),
                connector_id: 0,
                previous: 29
            }]
        );
        assert_eq!(p.bound_summary(), "0/0");
    }

    #[test]
    fn release_all_finishes_when_nothing_points_at_the_connector() {
        let m = strings(&["a@d.ovh"]);
        let d = strings(&["d.ovh"]);
        let none: BTreeMap<String, String> = BTreeMap::new();
        let bound: BTreeMap<_, _> = [("a@d.ovh".to_owned(), account("a@d.ovh", 29, 0))]
            .into_iter()
            .collect();
        let dom: BTreeMap<_, _> = [("d.ovh".to_owned(), domain("d.ovh", 29))]
            .into_iter()
            .collect();
        let (writes, done) = plan_release_all(29, &m, &d, &none, &bound, &dom);
        assert_eq!(writes.len(), 2);
        assert!(!done);
        let freed: BTreeMap<_, _> = [("a@d.ovh".to_owned(), account("a@d.ovh", 0, 0))]
            .into_iter()
            .collect();
        let dom0: BTreeMap<_, _> = [("d.ovh".to_owned(), domain("d.ovh", 0))]
            .into_iter()
            .collect();
        assert_eq!(
            plan_release_all(29, &m, &d, &none, &freed, &dom0),
            (vec![], true)
        );
        // A mailbox that vanished from OVH does not hold the deletion.
        let gone: BTreeMap<_, _> = [("a@d.ovh".to_owned(), None)].into_iter().collect();
        assert_eq!(
            plan_release_all(29, &m, &[], &none, &gone, &BTreeMap::new()),
            (vec![], true)
        );
    }
}
