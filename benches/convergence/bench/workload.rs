//! The workloads: how many connectors, services, bindings, mailboxes and domain defaults, the
//! simulator seed that holds their mailboxes and domains, and their manifests.
use serde_json::{Value, json};

/// Namespace of every object of a workload.
pub const NS: &str = "bench";
/// The OVH credentials Secret, shared by every resource (so one request budget serves all).
pub const CREDENTIALS: &str = "ovh-api";
const APPLICATION_KEY: &str = "bench-application-key";
const APPLICATION_SECRET: &str = "bench-application-secret";
const CONSUMER_KEY: &str = "bench-consumer-key";

/// One workload, sized by counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub name: &'static str,
    pub services: usize,
    pub connectors: usize,
    pub bindings: usize,
    pub mailboxes_per_binding: usize,
    pub domain_defaults: usize,
}

/// S: 10 connectors, 10 bindings of 20 mailboxes, 4 domain defaults, on 2 services.
pub const S: Workload = Workload {
    name: "S",
    services: 2,
    connectors: 10,
    bindings: 10,
    mailboxes_per_binding: 20,
    domain_defaults: 4,
};

/// L: 100 connectors, 100 bindings of 20 mailboxes, 10 domain defaults, on 2 services.
pub const L: Workload = Workload {
    name: "L",
    services: 2,
    connectors: 100,
    bindings: 100,
    mailboxes_per_binding: 20,
    domain_defaults: 10,
};

/// XL: 1,000 connectors, 1,000 bindings of 20 mailboxes, 40 domain defaults, on 4 services.
pub const XL: Workload = Workload {
    name: "XL",
    services: 4,
    connectors: 1000,
    bindings: 1000,
    mailboxes_per_binding: 20,
    domain_defaults: 40,
};

/// Every workload, smallest first.
pub const ALL: [Workload; 3] = [S, L, XL];

impl Workload {
    /// The workload called `name` (`S`, `L`, `XL`, any case).
    pub fn named(name: &str) -> Option<Self> {
        ALL.into_iter().find(|w| w.name.eq_ignore_ascii_case(name))
    }

    /// Organization (and service) `s`.
    pub fn organization(s: usize) -> String {
        format!("bench-org-{s}")
    }

    /// Connector `i` lives on service `i % services`; binding `i` points at connector `i`.
    fn service_of(&self, i: usize) -> usize {
        i % self.services
    }

    /// Domains: `domain_defaults` of them (at least one per service), domain `k` on service
    /// `k % services`, so binding `i` can be the default of domain `i` on its own service.
    fn domain_count(&self) -> usize {
        self.domain_defaults.max(self.services)
    }

    fn domain(k: usize) -> String {
        format!("d{k}.bench.example")
    }

    /// The domain that holds binding `i`'s mailboxes: one on the binding's service.
    fn mailbox_domain(&self, i: usize) -> usize {
        let domains = self.domain_count();
        let per_service = domains.div_ceil(self.services);
        let service = self.service_of(i);
        let slot = (i / self.services) % per_service;
        let k = slot * self.services + service;
        if k < domains { k } else { service }
    }

    /// Binding `i`'s mailboxes.
    pub fn mailboxes(&self, i: usize) -> Vec<String> {
        let domain = Self::domain(self.mailbox_domain(i));
        (0..self.mailboxes_per_binding)
            .map(|j| format!("b{i}-m{j}@{domain}"))
            .collect()
    }

    /// Total mailboxes bound.
    pub fn mailbox_total(&self) -> usize {
        self.bindings * self.mailboxes_per_binding
    }

    /// Connector `i`'s name (binding `i` has the same name).
    pub fn connector_name(i: usize) -> String {
        format!("relay-{i:04}")
    }

    /// The simulator seed: one key with every right, the services with their domains and
    /// mailboxes, and task timings.
    pub fn seed(&self, task_todo_seconds: f64, task_doing_seconds: f64) -> Value {
        let services: Vec<Value> = (0..self.services)
            .map(|s| {
                let domains: Vec<String> = (0..self.domain_count())
                    .filter(|k| k % self.services == s)
                    .map(Self::domain)
                    .collect();
                let accounts: Vec<String> = (0..self.bindings)
                    .filter(|i| self.service_of(*i) == s)
                    .flat_map(|i| self.mailboxes(i))
                    .collect();
                json!({"organization": Self::organization(s), "domains": domains, "accounts": accounts})
            })
            .collect();
        json!({
            "credentials": [{
                "applicationKey": APPLICATION_KEY,
                "applicationSecret": APPLICATION_SECRET,
                "consumerKey": CONSUMER_KEY,
            }],
            "services": services,
            "tasks": {"todoSeconds": task_todo_seconds, "doingSeconds": task_doing_seconds},
        })
    }

    /// The OVH credentials Secret's data for a simulator at `endpoint`.
    pub fn credentials(endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "applicationKey": APPLICATION_KEY,
            "applicationSecret": APPLICATION_SECRET,
            "consumerKey": CONSUMER_KEY,
        })
    }

    /// Connector `i`'s manifest; its relay password is in Secret `relay-password`.
    pub fn connector(&self, i: usize) -> Value {
        json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "SendConnector",
            "metadata": {"name": Self::connector_name(i), "namespace": NS},
            "spec": {
                "organization": Self::organization(self.service_of(i)),
                "smartHost": format!("smtp-{i}.relay.example"), "port": 587, "requireTLS": true, "maxSendSize": 50,
                "authentication": {"mechanism": "basicAuthRequireTLS", "user": format!("user-{i}"), "passwordSecretRef": {"name": "relay-password", "key": "password"}},
                "credentialsSecretRef": {"name": CREDENTIALS}, "deletionPolicy": "Delete"
            }
        })
    }

    /// Binding `i`'s manifest: connector `i`'s mailboxes, and domain `i` as a default for the
    /// first `domain_defaults` bindings.
    pub fn binding(&self, i: usize) -> Value {
        let defaults: Vec<String> = if i < self.domain_defaults {
            vec![Self::domain(i)]
        } else {
            Vec::new()
        };
        json!({
            "apiVersion": "sendconnector.io/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": Self::connector_name(i), "namespace": NS},
            "spec": {
                "connectorRef": {"name": Self::connector_name(i)},
                "mailboxes": self.mailboxes(i),
                "defaultForDomains": defaults,
                "deletionPolicy": "Delete"
            }
        })
    }
}
