//! The simulated objects: Exchange services with their send connectors, mailboxes, domains
//! and tasks, kept as full OVH models (JSON objects) so every field of reference §2–3 reads
//! back; plus their persistence to a JSON state file.
use super::seed::SeedService;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub type Object = Map<String, Value>;

/// Everything that a restart with `--state` keeps.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    pub next_connector_id: i64,
    pub next_task_id: i64,
    pub next_account_id: i64,
    pub services: Vec<Service>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            next_connector_id: 29,
            next_task_id: 113_924_189,
            next_account_id: 1,
            services: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_field_names)]
pub struct Service {
    pub organization: String,
    pub service: String,
    pub connectors: BTreeMap<i64, Connector>,
    pub accounts: BTreeMap<String, Object>,
    pub domains: BTreeMap<String, Object>,
    pub tasks: BTreeMap<i64, TaskRecord>,
}

/// A send connector: its public model plus the relay credentials, which no GET returns.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub fields: Object,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// What a task acts on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "key")]
pub enum Target {
    Connector(i64),
    Account(String),
    Nothing,
}

/// A task and the clock data that decides its status.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: i64,
    pub function: String,
    pub status: String,
    pub todo_date: String,
    pub finish_date: Option<String>,
    /// Real-clock milliseconds when it was queued.
    pub created_ms: i64,
    pub todo_ms: i64,
    pub doing_ms: i64,
    /// Real-clock milliseconds when it finished.
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// Ends in `error` instead of `done`.
    pub fails: bool,
    pub target: Target,
    /// Field values to restore if the task fails.
    #[serde(default)]
    pub revert: Option<Object>,
}

impl TaskRecord {
    pub fn is_finished(&self) -> bool {
        self.finished_ms.is_some()
    }

    /// The `email.exchange.Task` model.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "function": self.function,
            "status": self.status,
            "todoDate": self.todo_date,
            "finishDate": self.finish_date,
        })
    }

    pub fn account(&self) -> Option<&str> {
        match &self.target {
            Target::Account(a) => Some(a),
            _ => None,
        }
    }
}

impl Connector {
    pub fn view(&self) -> Value {
        Value::Object(self.fields.clone())
    }
}

/// `taskPendingId` of a model, 0 when none.
pub fn pending(object: &Object) -> i64 {
    object
        .get("taskPendingId")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

impl Store {
    pub fn from_seed(services: &[SeedService], now: &str) -> Self {
        let mut store = Self::default();
        for seed in services {
            let mut service = Service {
                organization: seed.organization.clone(),
                service: seed.service_name().to_owned(),
                connectors: BTreeMap::new(),
                accounts: BTreeMap::new(),
                domains: BTreeMap::new(),
                tasks: BTreeMap::new(),
            };
            for (i, name) in seed.domains.iter().enumerate() {
                service
                    .domains
                    .insert(name.clone(), new_domain(name, i == 0));
            }
            for email in &seed.accounts {
                let id = store.next_account_id;
                store.next_account_id += 1;
                let account = new_account(id, email, 0, now);
                service.accounts.insert(email.clone(), account);
            }
            store.services.push(service);
        }
        store
    }

    /// Adds the seed's services that the store lacks (a state file from an older seed).
    pub fn add_missing_services(&mut self, services: &[SeedService], now: &str) {
        let missing: Vec<SeedService> = services
            .iter()
            .filter(|s| self.service(&s.organization, s.service_name()).is_none())
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut added = Self::from_seed(&missing, now);
        for service in &mut added.services {
            for account in service.accounts.values_mut() {
                account.insert("id".to_owned(), Value::from(self.next_account_id));
                self.next_account_id += 1;
            }
        }
        self.services.append(&mut added.services);
    }

    pub fn service(&self, org: &str, svc: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.organization == org && s.service == svc)
    }

    pub fn service_mut(&mut self, org: &str, svc: &str) -> Option<&mut Service> {
        self.services
            .iter_mut()
            .find(|s| s.organization == org && s.service == svc)
    }

    /// Creates a mailbox; it takes its domain's `sendConnectorIdDefault`.
    pub fn create_account(&mut self, org: &str, svc: &str, email: &str, now: &str) -> bool {
        let id = self.next_account_id;
        let Some(service) = self.service_mut(org, svc) else {
            return false;
        };
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        let inherited = service
            .domains
            .get(domain)
            .and_then(|d| d.get("sendConnectorIdDefault"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        service
            .accounts
            .insert(email.to_owned(), new_account(id, email, inherited, now));
        self.next_account_id += 1;
        true
    }

    /// The whole store as JSON, relay passwords redacted.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(services) = value.get_mut("services").and_then(Value::as_array_mut) {
            for service in services {
                if let Some(connectors) =
                    service.get_mut("connectors").and_then(Value::as_object_mut)
                {
                    for connector in connectors.values_mut() {
                        if let Some(p) = connector.get_mut("password")
                            && !p.is_null()
                        {
                            *p = Value::String("<redacted>".to_owned());
                        }
                    }
                }
            }
        }
        value
    }

    pub fn load(path: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the store atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

impl Service {
    /// Removes every reference to a connector: mailboxes and domain defaults fall back to 0.
    pub fn drop_connector_references(&mut self, id: i64) {
        for account in self.accounts.values_mut() {
            if account.get("sendConnectorId").and_then(Value::as_i64) == Some(id) {
                account.insert("sendConnectorId".to_owned(), json!(0));
            }
        }
        for domain in self.domains.values_mut() {
            if domain.get("sendConnectorIdDefault").and_then(Value::as_i64) == Some(id) {
                domain.insert("sendConnectorIdDefault".to_owned(), json!(0));
            }
        }
    }

    /// Whether a mailbox or a domain default still points at the connector.
    pub fn connector_in_use(&self, id: i64) -> bool {
        self.accounts
            .values()
            .any(|a| a.get("sendConnectorId").and_then(Value::as_i64) == Some(id))
            || self
                .domains
                .values()
                .any(|d| d.get("sendConnectorIdDefault").and_then(Value::as_i64) == Some(id))
    }

    /// The `email.exchange.ExchangeService` model (the fields a client may look at).
    pub fn view(&self) -> Value {
        json!({
            "domain": self.service,
            "displayName": self.service,
            "offer": "dedicated",
            "state": "ok",
            "taskPendingId": 0,
            "defaultSmartHost": null,
            "hostname": format!("{}.mail.ovh.net", self.service),
            "webUrl": format!("https://{}.mail.ovh.net/owa", self.service),
            "maxSendSize": 100,
            "maxReceiveSize": 100,
            "spamAndVirusConfiguration": default_spam_and_virus(),
            "sslExpirationDate": null,
            "lastUpdateDate": null,
            "serverDiagnostic": null,
            "complexityEnabled": false,
            "lockoutDuration": 0,
            "lockoutThreshold": null,
            "maxPasswordAge": null,
            "minPasswordAge": null,
            "minPasswordLength": null,
            "passwordHistoryCount": null,
            "lockoutObservationWindow": 0,
            "sbrDefault": null,
        })
    }
}

/// What the Control Panel sets on new mailboxes: `deleteVirus` on, everything else off.
pub fn default_spam_and_virus() -> Value {
    json!({
        "checkDKIM": false,
        "checkSPF": false,
        "deleteSpam": false,
        "deleteVirus": true,
        "putInJunk": false,
        "tagSpam": false,
        "tagVirus": false,
    })
}

/// A full `email.exchange.Account`.
pub fn new_account(id: i64, email: &str, send_connector_id: i64, now: &str) -> Object {
    let (login, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let guid = format!("{id:08x}-0000-4000-8000-{id:012x}");
    let value = json!({
        "SAMAccountName": format!("{}_{}", login, id),
        "accountLicense": "basic",
        "authenticationPolicyId": null,
        "city": null,
        "company": null,
        "configured": true,
        "countryCode": null,
        "creationDate": now,
        "currentUsage": 0,
        "customIsolationId": null,
        "deleteAtExpiration": null,
        "deleteOutlookAtExpiration": null,
        "description": null,
        "displayName": login,
        "domain": domain,
        "exchangeGuid": guid,
        "expirationDate": null,
        "expirationOutlookDate": null,
        "fax": null,
        "firstName": null,
        "forwardingEmail": null,
        "guid": guid,
        "hiddenFromGAL": false,
        "id": id,
        "initial": null,
        "jobDepartment": null,
        "jobTitle": null,
    });
    let rest = json!({
        "lastLogoffDate": null,
        "lastLogonDate": null,
        "lastName": null,
        "lastUpdateDate": null,
        "litigation": false,
        "litigationPeriod": null,
        "login": login,
        "mailSenderDisplay": null,
        "mailingFilter": ["vaderetro"],
        "mobile": null,
        "numberOfAliases": 0,
        "office": null,
        "outlookLicense": false,
        "owaLimited": false,
        "passwordLastUpdate": now,
        "phone": null,
        "postalCode": null,
        "primaryEmailAddress": email,
        "quota": 50,
        "region": null,
        "renewOutlookPeriod": null,
        "renewPeriod": null,
        "sbrDestination": null,
        "sendConnectorId": send_connector_id,
        "spamAndVirusConfiguration": default_spam_and_virus(),
        "spamDetected": false,
        "spamTicketNumber": null,
        "state": "ok",
        "storeCopyOfEmail": false,
        "streetAddress": null,
        "taskPendingId": 0,
    });
    let mut account = into_object(value);
    account.extend(into_object(rest));
    account
}

/// A full `email.exchange.Domain`.
pub fn new_domain(name: &str, main: bool) -> Object {
    let value = json!({
        "cnameToCheck": null,
        "dkimDiagnostics": null,
        "domainAliases": [],
        "domainValidated": true,
        "expectedAutodiscoverSRV": format!("0 0 443 autodiscover.{name}"),
        "expectedMX": ["mx0.mail.ovh.net", "mx1.mail.ovh.net"],
        "expectedSPF": "v=spf1 include:mx.ovh.com ~all",
        "isAliasDomain": false,
        "main": main,
        "mxIsValid": true,
        "mxRecord": ["mx0.mail.ovh.net", "mx1.mail.ovh.net"],
        "mxRelay": null,
        "name": name,
        "organization2010": null,
        "sbrDefault": null,
        "sendConnectorIdDefault": 0,
        "spfIsValid": true,
        "spfRecord": ["v=spf1 include:mx.ovh.com ~all"],
        "srvIsValid": true,
        "srvRecord": [format!("0 0 443 autodiscover.{name}")],
        "state": "ok",
        "taskPendingId": 0,
        "type": "authoritative",
    });
    into_object(value)
}

pub fn into_object(value: Value) -> Object {
    match value {
        Value::Object(map) => map,
        _ => Object::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_redacts() {
        let seed = vec![SeedService {
            organization: "org".into(),
            service: None,
            domains: vec!["d.ovh".into()],
            accounts: vec!["a@d.ovh".into()],
        }];
        let mut store = Store::from_seed(&seed, "2024-01-01T00:00:00+00:00");
        store.services[0].connectors.insert(
            29,
            Connector {
                fields: into_object(json!({"id": 29})),
                user: Some("u".into()),
                password: Some("pw-secret".into()),
            },
        );
        assert!(!store.redacted().to_string().contains("pw-secret"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        store.save(&path).unwrap();
        let back = Store::load(&path).unwrap().unwrap();
        assert_eq!(
            back.services[0].connectors[&29].password.as_deref(),
            Some("pw-secret")
        );
        assert_eq!(back.services[0].accounts["a@d.ovh"]["domain"], "d.ovh");
        assert!(Store::load(&dir.path().join("none")).unwrap().is_none());
    }
}
