//! OVH requests by kind, from the simulator's counters (`"METHOD /route/template"`), and the
//! minimum a workload needs.
use super::workload::Workload;
use std::collections::BTreeMap;

/// How many objects one read may return: OVH's batch GETs (`X-Ovh-Batch`) and Iceberg pages
/// are taken 50 at a time, as OVH's own control panel does.
pub const PER_READ: usize = 50;

/// OVH requests of one phase, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// POST, PUT and DELETE.
    pub writes: u64,
    /// Every other GET (objects, listings, `/auth/time`).
    pub reads: u64,
    /// GET of one task (`…/task/{id}`, `…/account/{a}/tasks/{id}`).
    pub task_polls: u64,
    /// GET of a task listing (`…/task`, `…/account/{a}/tasks`).
    pub task_lists: u64,
    /// Requests on the send connector routes plus the service task routes: what creating and
    /// following connectors costs (the few domain-default task polls land here too).
    pub on_connectors: u64,
    /// The counters as the simulator keeps them.
    pub by_route: BTreeMap<String, u64>,
}

impl Requests {
    /// Classifies the simulator's counters.
    pub fn classify(counters: &BTreeMap<String, u64>) -> Self {
        let mut r = Self {
            by_route: counters.clone(),
            ..Self::default()
        };
        for (key, &n) in counters {
            let (method, route) = key.split_once(' ').unwrap_or((key.as_str(), ""));
            let task_poll = route.ends_with("/task/{id}") || route.ends_with("/tasks/{id}");
            let task_list = route.ends_with("/task") || route.ends_with("/tasks");
            match method {
                "GET" if task_poll => r.task_polls += n,
                "GET" if task_list => r.task_lists += n,
                "GET" => r.reads += n,
                _ => r.writes += n,
            }
            let service_task = route.ends_with("/service/{exchangeService}/task")
                || route.ends_with("/service/{exchangeService}/task/{id}");
            if route.contains("/sendConnector") || service_task {
                r.on_connectors += n;
            }
        }
        r
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.writes + self.reads + self.task_polls + self.task_lists
    }

    /// Every GET.
    pub fn all_reads(&self) -> u64 {
        self.reads + self.task_polls + self.task_lists
    }
}

/// The fewest OVH requests that converge a workload from an empty OVH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minimum {
    /// One POST per connector (the password travels in it), one account PUT per mailbox, one
    /// `changeDefaultSBR` per domain default.
    pub writes: u64,
    /// Per service: one listing of the connector ids (OVH answers a POST without the id, so
    /// the new connector must be found), then `ceil(n / 50)` reads each of its connectors,
    /// mailboxes and default domains.
    pub reads: u64,
}

impl Minimum {
    pub fn of(w: &Workload) -> Self {
        let share = |n: usize, s: usize| (n / w.services) + usize::from(s < n % w.services);
        let mut reads = 0;
        for s in 0..w.services {
            let connectors = share(w.connectors, s);
            let mailboxes = share(w.bindings, s) * w.mailboxes_per_binding;
            let domains = share(w.domain_defaults, s);
            reads += 1
                + connectors.div_ceil(PER_READ)
                + mailboxes.div_ceil(PER_READ)
                + domains.div_ceil(PER_READ);
        }
        Self {
            writes: (w.connectors + w.mailbox_total() + w.domain_defaults) as u64,
            reads: reads as u64,
        }
    }

    pub fn total(&self) -> u64 {
        self.writes + self.reads
    }
}
