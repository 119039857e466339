//! The `/email/exchange` handlers (reference §2–4, §10): send connectors, mailboxes, domains
//! and tasks of one service. They run under the core lock, after authentication.
use super::Core;
use super::errors::ApiError;
use super::listing;
use super::routes::Op;
use super::schema::{self, Field};
use super::store::{Connector, Object, Service, Target, pending};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

/// One authenticated API call.
pub struct ApiRequest<'a> {
    pub headers: &'a HeaderMap,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// A successful answer.
pub enum Reply {
    Json(Value),
    /// `void`: 200 with `null`.
    Void,
    Raw(Response),
}

const UPDATE_OPERATION: &str = "update handler";
const CREATE_OPERATION: &str = "creation handler";

/// Dispatches an Exchange operation. `params` are the decoded path parameters.
pub fn handle(
    core: &mut Core,
    op: Op,
    params: &[String],
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    match op {
        Op::ListOrganizations => {
            let mut orgs: Vec<&str> = core
                .store
                .services
                .iter()
                .map(|s| s.organization.as_str())
                .collect();
            orgs.sort_unstable();
            orgs.dedup();
            Ok(Reply::Json(json!(orgs)))
        }
        Op::ListServices => {
            let services: Vec<&str> = core
                .store
                .services
                .iter()
                .filter(|s| s.organization == params[0])
                .map(|s| s.service.as_str())
                .collect();
            if services.is_empty() {
                return Err(ApiError::service_not_found());
            }
            Ok(Reply::Json(json!(services)))
        }
        _ => {
            let si = core
                .service_index(&params[0], &params[1])
                .ok_or_else(ApiError::service_not_found)?;
            service_op(core, si, op, &params[2..], req)
        }
    }
}

fn service_op(
    core: &mut Core,
    si: usize,
    op: Op,
    params: &[String],
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    match op {
        Op::GetService => Ok(Reply::Json(core.store.services[si].view())),
        Op::ListConnectors => {
            let hide_creating = core.settings.list_connector_when_created;
            let service = &core.store.services[si];
            let visible = service
                .connectors
                .values()
                .filter(|c| !(hide_creating && c.fields.get("state") == Some(&json!("creating"))));
            list(
                core,
                req,
                visible.map(|c| (json!(c.fields["id"]), c.view())).collect(),
            )
        }
        Op::CreateConnector => create_connector(core, si, req),
        Op::GetConnector => single(core, req, &params[0], get_connector, si),
        Op::PutConnector => put_connector(core, si, &params[0], req),
        Op::DeleteConnector => delete_connector(core, si, &params[0]),
        Op::ChangeAuthentication => change_authentication(core, si, &params[0], req),
        Op::ListAccounts => {
            let service = &core.store.services[si];
            let accounts = service
                .accounts
                .values()
                .filter(|a| account_matches_query(a, &req.query))
                .map(|a| (a["primaryEmailAddress"].clone(), Value::Object(a.clone())))
                .collect();
            list(core, req, accounts)
        }
        Op::GetAccount => single(core, req, &params[0], get_account, si),
        Op::PutAccount => put_account(core, si, &params[0], req),
        Op::ListAccountTasks => {
            let email = &params[0];
            let service = &core.store.services[si];
            if !service.accounts.contains_key(email) {
                return Err(ApiError::object_not_found("primaryEmailAddress", email));
            }
            let include_finished = core.settings.task_list_includes_finished;
            let tasks = service
                .tasks
                .values()
                .filter(|t| t.account() == Some(email.as_str()))
                .filter(|t| include_finished || !t.is_finished())
                .map(|t| (json!(t.id), t.view()))
                .collect();
            list(core, req, tasks)
        }
        Op::GetAccountTask => {
            let email = params[0].clone();
            if !core.store.services[si].accounts.contains_key(&email) {
                return Err(ApiError::object_not_found("primaryEmailAddress", &email));
            }
            single(
                core,
                req,
                &params[1],
                move |s, k| {
                    let id = parse_id(k)?;
                    match s.tasks.get(&id) {
                        Some(t) if t.account() == Some(email.as_str()) => Ok(t.view()),
                        _ => Err(ApiError::object_not_found("id", k)),
                    }
                },
                si,
            )
        }
        Op::ListDomains => {
            let service = &core.store.services[si];
            let domains = service
                .domains
                .values()
                .map(|d| (d["name"].clone(), Value::Object(d.clone())))
                .collect();
            list(core, req, domains)
        }
        Op::GetDomain => single(core, req, &params[0], get_domain, si),
        Op::ChangeDefaultSbr => change_default_sbr(core, si, &params[0], req),
        Op::ListTasks => {
            let include_finished = core.settings.task_list_includes_finished;
            let tasks = core.store.services[si]
                .tasks
                .values()
                .filter(|t| include_finished || !t.is_finished())
                .map(|t| (json!(t.id), t.view()))
                .collect();
            list(core, req, tasks)
        }
        Op::GetTask => single(core, req, &params[0], get_task, si),
        Op::AuthTime | Op::AuthCredential | Op::ListOrganizations | Op::ListServices => {
            Err(ApiError::invalid_url())
        }
    }
}

/// A list route: the keys, or full objects in Iceberg mode.
fn list(core: &Core, req: &ApiRequest<'_>, items: Vec<(Value, Value)>) -> Result<Reply, ApiError> {
    if core.settings.iceberg && listing::is_iceberg(req.headers) {
        let objects = items.into_iter().map(|(_, o)| o).collect();
        return listing::iceberg(objects, req.headers).map(Reply::Raw);
    }
    Ok(Reply::Json(Value::Array(
        items.into_iter().map(|(k, _)| k).collect(),
    )))
}

/// A single-object route, or several objects with `X-Ovh-Batch`.
fn single(
    core: &Core,
    req: &ApiRequest<'_>,
    key: &str,
    get: impl Fn(&Service, &str) -> Result<Value, ApiError>,
    si: usize,
) -> Result<Reply, ApiError> {
    let service = &core.store.services[si];
    if core.settings.batch
        && let Some(separator) = listing::batch_separator(req.headers)
    {
        let mut out = Vec::new();
        for k in key.split(separator.as_str()) {
            match get(service, k) {
                Ok(value) => out.push(json!({"key": k, "value": value, "error": null})),
                Err(e) if core.settings.batch_missing_key_fails => return Err(e),
                Err(e) => out.push(json!({"key": k, "value": null, "error": e.message()})),
            }
        }
        return Ok(Reply::Json(Value::Array(out)));
    }
    get(service, key).map(Reply::Json)
}

fn parse_id(key: &str) -> Result<i64, ApiError> {
    key.parse::<i64>()
        .map_err(|_| ApiError::object_not_found("id", key))
}

fn get_connector(service: &Service, key: &str) -> Result<Value, ApiError> {
    let id = parse_id(key)?;
    service
        .connectors
        .get(&id)
        .map(Connector::view)
        .ok_or_else(|| ApiError::object_not_found("id", key))
}

fn get_account(service: &Service, key: &str) -> Result<Value, ApiError> {
    service
        .accounts
        .get(key)
        .map(|a| Value::Object(a.clone()))
        .ok_or_else(|| ApiError::object_not_found("primaryEmailAddress", key))
}

fn get_domain(service: &Service, key: &str) -> Result<Value, ApiError> {
    service
        .domains
        .get(key)
        .map(|d| Value::Object(d.clone()))
        .ok_or_else(|| ApiError::object_not_found("name", key))
}

fn get_task(service: &Service, key: &str) -> Result<Value, ApiError> {
    let id = parse_id(key)?;
    service
        .tasks
        .get(&id)
        .map(super::store::TaskRecord::view)
        .ok_or_else(|| ApiError::object_not_found("id", key))
}

/// `GET P/account` query filters: `primaryEmailAddress` and `company` (like, `%`
/// wildcards), `accountLicense` and `id` (equal).
fn account_matches_query(account: &Object, query: &[(String, String)]) -> bool {
    query.iter().all(|(k, v)| match k.as_str() {
        "primaryEmailAddress" | "company" => account
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| listing::like(v, s)),
        "accountLicense" => account.get(k).and_then(Value::as_str) == Some(v.as_str()),
        "id" => account.get(k).map(ToString::to_string).as_deref() == Some(v.as_str()),
        _ => true,
    })
}

fn body_object(req: &ApiRequest<'_>) -> Result<Object, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Object::new());
    }
    match serde_json::from_slice::<Value>(req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Object::new()),
        Ok(_) => Err(ApiError::bad_request(
            "The input body must be a JSON object",
        )),
        Err(_) => Err(ApiError::bad_request("Invalid JSON received")),
    }
}

fn validate(
    req: &ApiRequest<'_>,
    fields: &[Field],
    operation: &str,
    reject_read_only: bool,
) -> Result<(Object, Object), ApiError> {
    let body = body_object(req)?;
    let writable = schema::validate(&body, fields, operation, reject_read_only)?;
    Ok((body, writable))
}

fn check_ranges(fields: &Object) -> Result<(), ApiError> {
    let check = |name: &str, min: i64, max: i64| -> Result<(), ApiError> {
        match fields.get(name).and_then(Value::as_i64) {
            Some(v) if v < min || v > max => Err(ApiError::bad_request(&format!(
                "[{name}] Given data ({v}) is out of range ({min} to {max})"
            ))),
            _ => Ok(()),
        }
    };
    check("port", 1, 65535)?;
    check("maxSendSize", 1, 100)
}

fn reject_if_pending(core: &Core, object: &Object, what: &str) -> Result<(), ApiError> {
    let task = pending(object);
    if core.settings.reject_mutation_while_pending && task != 0 {
        return Err(ApiError::conflict(&format!(
            "This {what} is already being processed by task {task}, please try later"
        )));
    }
    Ok(())
}

fn create_connector(core: &mut Core, si: usize, req: &ApiRequest<'_>) -> Result<Reply, ApiError> {
    let (_, w) = validate(req, schema::CREATE_CONNECTOR, CREATE_OPERATION, false)?;
    check_ranges(&w)?;
    let id = core.store.next_connector_id;
    core.store.next_connector_id += 1;
    let task = core.new_task("addSendConnector", Target::Connector(id), None);
    let now = core.now_string();
    let fields = json!({
        "id": id,
        "displayName": w["displayName"],
        "smartHost": w["smartHost"],
        "port": w.get("port").cloned().unwrap_or(json!(25)),
        "requireTLS": w.get("requireTLS").cloned().unwrap_or(json!(false)),
        "maxSendSize": w.get("maxSendSize").cloned().unwrap_or(json!(100)),
        "smartHostAuthMechanism": w.get("smartHostAuthMechanism").cloned().unwrap_or(json!("none")),
        "state": "creating",
        "taskPendingId": task.id,
        "default": false,
        "dnsRouting": false,
        "creationDate": now,
        "lastUpdateDate": null,
    });
    let connector = Connector {
        fields: super::store::into_object(fields),
        user: w.get("user").and_then(Value::as_str).map(str::to_owned),
        password: w.get("password").and_then(Value::as_str).map(str::to_owned),
    };
    let view = task.view();
    let service = &mut core.store.services[si];
    service.connectors.insert(id, connector);
    service.tasks.insert(task.id, task);
    core.persist();
    Ok(Reply::Json(view))
}

fn connector_mut<'a>(
    core: &'a mut Core,
    si: usize,
    key: &str,
) -> Result<(i64, &'a mut Connector), ApiError> {
    let id = parse_id(key)?;
    core.store.services[si]
        .connectors
        .get_mut(&id)
        .map(|c| (id, c))
        .ok_or_else(|| ApiError::object_not_found("id", key))
}

/// Applies `changes`, returning the previous values of the keys it touched.
fn apply(object: &mut Object, changes: &Object) -> Object {
    let mut previous = Object::new();
    for (k, v) in changes {
        previous.insert(k.clone(), object.get(k).cloned().unwrap_or(Value::Null));
        object.insert(k.clone(), v.clone());
    }
    previous
}

fn put_connector(
    core: &mut Core,
    si: usize,
    key: &str,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let reject_ro = core.settings.reject_read_only_keys;
    let creates_task = core.settings.put_connector_creates_task;
    let (id, connector) = connector_mut(core, si, key)?;
    let current = connector.fields.clone();
    reject_if_pending(core, &current, "send connector")?;
    let (_, w) = validate(req, schema::CONNECTOR, UPDATE_OPERATION, reject_ro)?;
    check_ranges(&w)?;
    let now = core.now_string();
    let task = creates_task.then(|| core.new_task("setSendConnector", Target::Connector(id), None));
    let service = &mut core.store.services[si];
    let Some(connector) = service.connectors.get_mut(&id) else {
        return Err(ApiError::object_not_found("id", key));
    };
    let mut previous = apply(&mut connector.fields, &w);
    previous.insert(
        "lastUpdateDate".to_owned(),
        current["lastUpdateDate"].clone(),
    );
    connector
        .fields
        .insert("lastUpdateDate".to_owned(), json!(now));
    if let Some(mut task) = task {
        connector
            .fields
            .insert("taskPendingId".to_owned(), json!(task.id));
        task.revert = Some(previous);
        service.tasks.insert(task.id, task);
    }
    core.persist();
    Ok(Reply::Void)
}

fn delete_connector(core: &mut Core, si: usize, key: &str) -> Result<Reply, ApiError> {
    let (id, connector) = connector_mut(core, si, key)?;
    let current = connector.fields.clone();
    reject_if_pending(core, &current, "send connector")?;
    if core.settings.reject_delete_of_used_connector && core.store.services[si].connector_in_use(id)
    {
        return Err(ApiError::forbidden(&format!(
            "The send connector {id} is still used by accounts or domains"
        )));
    }
    let task = core.new_task("deleteSendConnector", Target::Connector(id), None);
    let view = task.view();
    let service = &mut core.store.services[si];
    if let Some(connector) = service.connectors.get_mut(&id) {
        connector
            .fields
            .insert("state".to_owned(), json!("deleting"));
        connector
            .fields
            .insert("taskPendingId".to_owned(), json!(task.id));
    }
    service.tasks.insert(task.id, task);
    core.persist();
    Ok(Reply::Json(view))
}

fn change_authentication(
    core: &mut Core,
    si: usize,
    key: &str,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let (id, connector) = connector_mut(core, si, key)?;
    let current = connector.fields.clone();
    reject_if_pending(core, &current, "send connector")?;
    let (_, w) = validate(
        req,
        schema::CHANGE_AUTHENTICATION,
        "changeAuthentication",
        false,
    )?;
    let function = core.settings.change_authentication_function.clone();
    let now = core.now_string();
    let mut task = core.new_task(&function, Target::Connector(id), None);
    let view = task.view();
    let service = &mut core.store.services[si];
    let Some(connector) = service.connectors.get_mut(&id) else {
        return Err(ApiError::object_not_found("id", key));
    };
    let mut previous = Object::new();
    if let Some(mechanism) = w.get("smartHostAuthMechanism") {
        let changes = super::store::into_object(json!({"smartHostAuthMechanism": mechanism}));
        previous = apply(&mut connector.fields, &changes);
    }
    if let Some(user) = w.get("user").and_then(Value::as_str) {
        connector.user = Some(user.to_owned());
    }
    if let Some(password) = w.get("password").and_then(Value::as_str) {
        connector.password = Some(password.to_owned());
    }
    connector
        .fields
        .insert("lastUpdateDate".to_owned(), json!(now));
    connector
        .fields
        .insert("taskPendingId".to_owned(), json!(task.id));
    task.revert = Some(previous);
    service.tasks.insert(task.id, task);
    core.persist();
    Ok(Reply::Json(view))
}

fn check_connector_exists(
    service: &Service,
    field: &str,
    value: Option<&Value>,
) -> Result<(), ApiError> {
    match value.and_then(Value::as_i64) {
        Some(id) if id != 0 && !service.connectors.contains_key(&id) => Err(ApiError::bad_request(
            &format!("[{field}] The send connector {id} does not exist"),
        )),
        _ => Ok(()),
    }
}

fn put_account(
    core: &mut Core,
    si: usize,
    email: &str,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let Some(current) = core.store.services[si].accounts.get(email).cloned() else {
        return Err(ApiError::object_not_found("primaryEmailAddress", email));
    };
    reject_if_pending(core, &current, "account")?;
    let (_, mut w) = validate(
        req,
        schema::ACCOUNT,
        UPDATE_OPERATION,
        core.settings.reject_read_only_keys,
    )?;
    if core.settings.reject_partial_account_put && !w.contains_key("spamAndVirusConfiguration") {
        return Err(ApiError::bad_request(
            "[spamAndVirusConfiguration] Property is mandatory",
        ));
    }
    if let Some(Value::Object(spam)) = w.get_mut("spamAndVirusConfiguration") {
        if core.settings.reject_delete_virus_false
            && spam.get("deleteVirus") == Some(&Value::Bool(false))
        {
            return Err(ApiError::bad_request(
                "[spamAndVirusConfiguration.deleteVirus] Virus deletion cannot be disabled",
            ));
        }
        // A partial nested object keeps the other flags.
        let mut merged = current
            .get("spamAndVirusConfiguration")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in spam.iter() {
            merged.insert(k.clone(), v.clone());
        }
        *spam = merged;
    }
    check_connector_exists(
        &core.store.services[si],
        "sendConnectorId",
        w.get("sendConnectorId"),
    )?;
    let now = core.now_string();
    let task = core
        .settings
        .put_account_creates_task
        .then(|| core.new_task("setAccount", Target::Account(email.to_owned()), None));
    let service = &mut core.store.services[si];
    let Some(account) = service.accounts.get_mut(email) else {
        return Err(ApiError::object_not_found("primaryEmailAddress", email));
    };
    let mut previous = apply(account, &w);
    previous.insert(
        "lastUpdateDate".to_owned(),
        current["lastUpdateDate"].clone(),
    );
    account.insert("lastUpdateDate".to_owned(), json!(now));
    if let Some(mut task) = task {
        account.insert("taskPendingId".to_owned(), json!(task.id));
        task.revert = Some(previous);
        service.tasks.insert(task.id, task);
    }
    core.persist();
    Ok(Reply::Void)
}

fn change_default_sbr(
    core: &mut Core,
    si: usize,
    name: &str,
    req: &ApiRequest<'_>,
) -> Result<Reply, ApiError> {
    let service = &core.store.services[si];
    if !service.domains.contains_key(name) {
        return Err(ApiError::object_not_found("name", name));
    }
    let (_, w) = validate(req, schema::CHANGE_DEFAULT_SBR, "changeDefaultSBR", false)?;
    check_connector_exists(
        service,
        "sendConnectorIdDefault",
        w.get("sendConnectorIdDefault"),
    )?;
    if let Some(domain) = core.store.services[si].domains.get_mut(name) {
        if let Some(id) = w.get("sendConnectorIdDefault") {
            domain.insert("sendConnectorIdDefault".to_owned(), id.clone());
        }
        if let Some(sbr) = w.get("sbrDefault").and_then(Value::as_str) {
            let sbr = if sbr.is_empty() {
                Value::Null
            } else {
                json!(sbr)
            };
            domain.insert("sbrDefault".to_owned(), sbr);
        }
    }
    core.persist();
    Ok(Reply::Void)
}
