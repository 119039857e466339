//! The OVH `/email/exchange` payloads this operator reads and writes (reference §2–3).
//!
//! Read models accept unknown fields (OVH adds fields over time); write bodies carry only the
//! writable fields they are meant to change, so a read-only field is never sent.
use super::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `email.exchange.smartHostAuthMechanismEnum`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum AuthMechanism {
    #[default]
    None,
    BasicAuth,
    #[serde(rename = "basicAuthRequireTLS")]
    BasicAuthRequireTls,
}

impl AuthMechanism {
    pub const ALL: [AuthMechanism; 3] = [Self::None, Self::BasicAuth, Self::BasicAuthRequireTls];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::BasicAuth => "basicAuth",
            Self::BasicAuthRequireTls => "basicAuthRequireTLS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for AuthMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `email.exchange.ObjectStateEnum`; values OVH may add later land in `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ObjectState {
    Creating,
    Deleting,
    InternalMigration,
    #[default]
    Ok,
    Reopening,
    Suspended,
    Suspending,
    #[serde(other)]
    Other,
}

impl ObjectState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Deleting => "deleting",
            Self::InternalMigration => "internalMigration",
            Self::Ok => "ok",
            Self::Reopening => "reopening",
            Self::Suspended => "suspended",
            Self::Suspending => "suspending",
            Self::Other => "unknown",
        }
    }
}

/// `email.exchange.TaskStatusEnum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskStatus {
    Todo,
    Doing,
    Done,
    Error,
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    /// `done`, `error` and `cancelled` never change again.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Error | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::Doing => "doing",
            Self::Done => "done",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `email.exchange.Task`: every asynchronous mutation returns one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: i64,
    /// `email.exchange.TaskFunctionEnum`, e.g. `addSendConnector`; kept as text because the
    /// enum has about 120 values.
    pub function: String,
    pub status: TaskStatus,
    pub todo_date: Option<String>,
    pub finish_date: Option<String>,
}

/// `email.exchange.sendConnector` as read with GET.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConnector {
    pub id: i64,
    pub display_name: String,
    pub smart_host: Option<String>,
    pub port: i64,
    #[serde(rename = "requireTLS")]
    pub require_tls: bool,
    pub max_send_size: i64,
    pub smart_host_auth_mechanism: AuthMechanism,
    #[serde(default)]
    pub state: ObjectState,
    /// `0` (or absent) when no task is pending.
    #[serde(default)]
    pub task_pending_id: Option<i64>,
    #[serde(default)]
    pub default: Option<bool>,
    #[serde(default)]
    pub dns_routing: Option<bool>,
    #[serde(default)]
    pub creation_date: Option<String>,
    #[serde(default)]
    pub last_update_date: Option<String>,
}

impl SendConnector {
    /// The pending task id, with OVH's `0` and `null` both meaning none.
    pub fn pending_task(&self) -> Option<i64> {
        self.task_pending_id.filter(|id| *id != 0)
    }
}

/// Body of `POST …/sendConnector`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSendConnector {
    pub display_name: String,
    pub smart_host: String,
    pub port: i64,
    #[serde(rename = "requireTLS")]
    pub require_tls: bool,
    pub max_send_size: i64,
    pub smart_host_auth_mechanism: AuthMechanism,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
}

impl fmt::Debug for NewSendConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSendConnector")
            .field("display_name", &self.display_name)
            .field("smart_host", &self.smart_host)
            .field("port", &self.port)
            .field("require_tls", &self.require_tls)
            .field("max_send_size", &self.max_send_size)
            .field("smart_host_auth_mechanism", &self.smart_host_auth_mechanism)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Body of `PUT …/sendConnector/{id}`: only the writable fields, only those that changed.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConnectorUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(rename = "requireTLS", skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_send_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_routing: Option<bool>,
}

impl SendConnectorUpdate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The OVH names of the fields this update sets, for Events and logs.
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.display_name.is_some() {
            names.push("displayName");
        }
        if self.smart_host.is_some() {
            names.push("smartHost");
        }
        if self.port.is_some() {
            names.push("port");
        }
        if self.require_tls.is_some() {
            names.push("requireTLS");
        }
        if self.max_send_size.is_some() {
            names.push("maxSendSize");
        }
        if self.dns_routing.is_some() {
            names.push("dnsRouting");
        }
        names
    }
}

/// Body of `POST …/sendConnector/{id}/changeAuthentication`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeAuthentication {
    pub smart_host_auth_mechanism: AuthMechanism,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
}

impl fmt::Debug for ChangeAuthentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeAuthentication")
            .field("smart_host_auth_mechanism", &self.smart_host_auth_mechanism)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `email.exchange.spamAndVirusConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
#[allow(clippy::struct_excessive_bools)]
pub struct SpamAndVirusConfiguration {
    #[serde(rename = "checkDKIM")]
    pub check_dkim: bool,
    #[serde(rename = "checkSPF")]
    pub check_spf: bool,
    pub delete_spam: bool,
    pub delete_virus: bool,
    pub put_in_junk: bool,
    pub tag_spam: bool,
    pub tag_virus: bool,
}

/// The parts of `email.exchange.Account` the operator uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub primary_email_address: String,
    #[serde(default)]
    pub domain: Option<String>,
    /// `0` (or null) means the platform's own outgoing server.
    #[serde(default)]
    pub send_connector_id: Option<i64>,
    #[serde(default)]
    pub state: ObjectState,
    #[serde(default)]
    pub task_pending_id: Option<i64>,
    #[serde(default)]
    pub spam_and_virus_configuration: Option<SpamAndVirusConfiguration>,
}

impl Account {
    /// The connector the mailbox sends through, `0` for the platform's own server.
    pub fn connector_id(&self) -> i64 {
        self.send_connector_id.unwrap_or(0)
    }

    pub fn pending_task(&self) -> Option<i64> {
        self.task_pending_id.filter(|id| *id != 0)
    }
}

/// Body of `PUT …/account/{email}`: `sendConnectorId` alone, or with the mailbox's spam and
/// virus settings (`deleteVirus` forced on) when OVH rejects the partial body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountConnectorUpdate {
    pub send_connector_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spam_and_virus_configuration: Option<SpamAndVirusConfiguration>,
}

/// The parts of `email.exchange.Domain` the operator uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub name: String,
    #[serde(default)]
    pub send_connector_id_default: Option<i64>,
    #[serde(default)]
    pub sbr_default: Option<String>,
    #[serde(default)]
    pub state: ObjectState,
    #[serde(default)]
    pub task_pending_id: Option<i64>,
}

impl Domain {
    pub fn default_connector_id(&self) -> i64 {
        self.send_connector_id_default.unwrap_or(0)
    }

    pub fn pending_task(&self) -> Option<i64> {
        self.task_pending_id.filter(|id| *id != 0)
    }
}

/// Body of `PUT …/domain/{name}/changeDefaultSBR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDefaultSbr {
    pub send_connector_id_default: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbr_default: Option<String>,
}

/// An OVH error body: `message` always, the rest depending on the layer that answered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_guide_example() {
        let c: SendConnector = serde_json::from_str(r#"{"smartHost":"smtp-relay.example.com","displayName":"testconnector","state":"ok","maxSendSize":100,"smartHostAuthMechanism":"basicAuthRequireTLS","port":587,"lastUpdateDate":null,"creationDate":"2023-09-25T14:06:02+02:00","taskPendingId":0,"id":29,"requireTLS":true}"#).unwrap();
        assert_eq!(c.id, 29);
        assert_eq!(
            c.smart_host_auth_mechanism,
            AuthMechanism::BasicAuthRequireTls
        );
        assert_eq!(c.pending_task(), None);
        let t: Task = serde_json::from_str(r#"{"todoDate":"2023-09-25T14:06:02+02:00","id":113924189,"finishDate":null,"function":"addSendConnector","status":"todo"}"#).unwrap();
        assert_eq!((t.id, t.status), (113_924_189, TaskStatus::Todo));
    }

    #[test]
    fn write_bodies_carry_only_what_they_set() {
        let u = SendConnectorUpdate {
            port: Some(2525),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"port":2525}"#);
        assert_eq!(u.field_names(), vec!["port"]);
        let a = AccountConnectorUpdate {
            send_connector_id: 29,
            spam_and_virus_configuration: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"sendConnectorId":29}"#
        );
    }

    #[test]
    fn passwords_do_not_print_but_are_sent() {
        let c = ChangeAuthentication {
            smart_host_auth_mechanism: AuthMechanism::BasicAuth,
            user: Some("u".into()),
            password: Some("pa55".into()),
        };
        assert!(!format!("{c:?}").contains("pa55"));
        assert!(
            serde_json::to_string(&c)
                .unwrap()
                .contains(r#""password":"pa55""#)
        );
    }
}
