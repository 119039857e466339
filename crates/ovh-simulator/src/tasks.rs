//! The task clock. A task is `todo` for its todo time, then `doing`, then `done` (or `error`
//! when a failure was injected). Status is computed lazily from timestamps: every request and
//! every read through the Rust API first calls [`advance`], which also applies the task's
//! effect on its object when it finishes.
use super::settings::Settings;
use super::store::{Object, Service, Store, Target, TaskRecord, pending};
use serde_json::{Value, json};

/// Real clock, in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// An OVH datetime (`2023-09-25T14:06:02+00:00`) for Unix milliseconds.
pub fn format_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

fn seconds_to_ms(seconds: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let ms = (seconds.max(0.0) * 1000.0).round() as i64;
    ms
}

/// A new task, queued now. `fail_next` holds pending failure injections (`None` = any
/// function); the first one that matches is consumed.
pub fn new_task(
    store: &mut Store,
    settings: &Settings,
    fail_next: &mut Vec<Option<String>>,
    skew_seconds: i64,
    function: &str,
    target: Target,
    revert: Option<Object>,
) -> TaskRecord {
    let id = store.next_task_id;
    store.next_task_id += 1;
    let fails = match fail_next
        .iter()
        .position(|f| f.as_deref().is_none_or(|f| f == function))
    {
        Some(i) => {
            fail_next.remove(i);
            true
        }
        None => false,
    };
    let now = now_ms();
    TaskRecord {
        id,
        function: function.to_owned(),
        status: "todo".to_owned(),
        todo_date: format_ms(now + skew_seconds * 1000),
        finish_date: None,
        created_ms: now,
        todo_ms: seconds_to_ms(settings.task_todo_seconds),
        doing_ms: seconds_to_ms(settings.task_doing_seconds),
        finished_ms: None,
        fails,
        target,
        revert,
    }
}

/// Moves every task along the clock; returns whether anything changed.
pub fn advance(store: &mut Store, settings: &Settings, now: i64, skew_seconds: i64) -> bool {
    let mut changed = false;
    let retention_ms = i64::try_from(settings.task_retention_seconds)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(1000);
    for service in &mut store.services {
        let mut to_finish = Vec::new();
        for task in service.tasks.values_mut() {
            if task.is_finished() {
                continue;
            }
            let elapsed = now - task.created_ms;
            if elapsed >= task.todo_ms + task.doing_ms {
                to_finish.push(task.id);
            } else if elapsed >= task.todo_ms && task.status == "todo" {
                "doing".clone_into(&mut task.status);
                changed = true;
            }
        }
        for id in to_finish {
            finish(service, id, skew_seconds);
            changed = true;
        }
        let before = service.tasks.len();
        service.tasks.retain(|_, t| match t.finished_ms {
            None => true,
            Some(_) if settings.vanishing_tasks => false,
            Some(at) => now - at < retention_ms,
        });
        changed |= service.tasks.len() != before;
    }
    changed
}

fn finish(service: &mut Service, id: i64, skew_seconds: i64) {
    let Some(task) = service.tasks.get_mut(&id) else {
        return;
    };
    let end = task.created_ms + task.todo_ms + task.doing_ms;
    task.finished_ms = Some(end);
    task.finish_date = Some(format_ms(end + skew_seconds * 1000));
    if task.fails { "error" } else { "done" }.clone_into(&mut task.status);
    let task = task.clone();
    match &task.target {
        Target::Connector(cid) => finish_connector(service, &task, *cid),
        Target::Account(email) => {
            if let Some(account) = service.accounts.get_mut(email) {
                settle(account, &task);
            }
        }
        Target::Nothing => {}
    }
}

fn finish_connector(service: &mut Service, task: &TaskRecord, cid: i64) {
    match (task.function.as_str(), task.fails) {
        ("addSendConnector", true) => {
            service.connectors.remove(&cid);
        }
        ("deleteSendConnector", false) => {
            service.connectors.remove(&cid);
            service.drop_connector_references(cid);
        }
        _ => {
            if let Some(connector) = service.connectors.get_mut(&cid) {
                settle(&mut connector.fields, task);
            }
        }
    }
}

/// The object's task ended: back to `ok`, no pending task, and the old values if it failed.
fn settle(object: &mut Object, task: &TaskRecord) {
    if task.fails
        && let Some(revert) = &task.revert
    {
        for (k, v) in revert {
            object.insert(k.clone(), v.clone());
        }
    }
    if pending(object) == task.id {
        object.insert("taskPendingId".to_owned(), json!(0));
        object.insert("state".to_owned(), Value::String("ok".to_owned()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::{Connector, into_object};

    fn store_with_connector() -> Store {
        let mut store = Store::from_seed(
            &[crate::seed::SeedService {
                organization: "o".into(),
                service: None,
                domains: vec!["d.ovh".into()],
                accounts: vec!["a@d.ovh".into()],
            }],
            "now",
        );
        store.services[0].connectors.insert(
            29,
            Connector {
                fields: into_object(json!({"id": 29, "state": "creating", "taskPendingId": 0})),
                user: None,
                password: None,
            },
        );
        store
    }

    #[test]
    fn todo_doing_done() {
        let mut store = store_with_connector();
        let settings = Settings {
            task_todo_seconds: 1.0,
            task_doing_seconds: 1.0,
            ..Settings::default()
        };
        let mut task = new_task(
            &mut store,
            &settings,
            &mut Vec::new(),
            0,
            "addSendConnector",
            Target::Connector(29),
            None,
        );
        task.created_ms = 0;
        let id = task.id;
        store.services[0].connectors.get_mut(&29).unwrap().fields["taskPendingId"] = json!(id);
        store.services[0].tasks.insert(id, task);
        assert!(!advance(&mut store, &settings, 500, 0));
        assert!(advance(&mut store, &settings, 1500, 0));
        assert_eq!(store.services[0].tasks[&id].status, "doing");
        assert!(advance(&mut store, &settings, 2000, 0));
        assert_eq!(store.services[0].tasks[&id].status, "done");
        assert_eq!(
            store.services[0].tasks[&id].finish_date.as_deref(),
            Some("1970-01-01T00:00:02+00:00")
        );
        let c = &store.services[0].connectors[&29].fields;
        assert_eq!(
            (c["state"].as_str(), c["taskPendingId"].as_i64()),
            (Some("ok"), Some(0))
        );
        // Retention: gone after 48 h.
        assert!(advance(&mut store, &settings, 2000 + 48 * 3600 * 1000, 0));
        assert!(store.services[0].tasks.is_empty());
    }

    #[test]
    fn injected_failure_is_consumed_once() {
        let mut store = Store::default();
        let settings = Settings::default();
        let mut fail = vec![Some("deleteSendConnector".to_owned()), None];
        let a = new_task(
            &mut store,
            &settings,
            &mut fail,
            0,
            "addSendConnector",
            Target::Nothing,
            None,
        );
        assert!(a.fails);
        assert_eq!(fail, vec![Some("deleteSendConnector".to_owned())]);
        let b = new_task(
            &mut store,
            &settings,
            &mut fail,
            0,
            "addSendConnector",
            Target::Nothing,
            None,
        );
        assert!(!b.fails);
        let c = new_task(
            &mut store,
            &settings,
            &mut fail,
            0,
            "deleteSendConnector",
            Target::Nothing,
            None,
        );
        assert!(c.fails && fail.is_empty());
    }
}
