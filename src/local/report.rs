//! The table `local` prints: what `kubectl get -o wide` would show for each resource, plus the
//! last OVH task and the Ready message.
use serde_json::Value;

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a resource stands once `local` stops waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    /// `--dry-run`: its calls are planned in `status.plan`.
    Planned,
    Stalled,
    Pending,
}

/// Ready for its current generation, Stalled, or still on its way.
pub fn outcome(obj: &Value) -> Outcome {
    let current = |c: &&Value| c["observedGeneration"] == obj["metadata"]["generation"];
    if condition(obj, "Ready")
        .filter(current)
        .is_some_and(|c| c["status"] == "True")
    {
        Outcome::Ready
    } else if condition(obj, "Ready")
        .filter(current)
        .is_some_and(|c| c["reason"] == "DryRun")
    {
        Outcome::Planned
    } else if condition(obj, "Stalled")
        .filter(current)
        .is_some_and(|c| c["status"] == "True")
        || condition(obj, "Ready")
            .filter(current)
            .is_some_and(|c| c["reason"] == "Paused")
    {
        Outcome::Stalled
    } else {
        Outcome::Pending
    }
}

fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i + 1 < cells.len() {
                // Pad to the column's width, then three spaces, as kubectl does.
                s.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()) + 3,
                ));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

fn ready_cells(obj: &Value) -> (String, String, String) {
    let ready = condition(obj, "Ready");
    (
        ready.map_or_else(|| "Unknown".into(), |c| text(&c["status"])),
        ready.map(|c| text(&c["reason"])).unwrap_or_default(),
        ready.map(|c| text(&c["message"])).unwrap_or_default(),
    )
}

/// The SendConnector table.
pub fn connectors(objects: &[Value]) -> String {
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            let (ready, reason, message) = ready_cells(o);
            let task = if o["status"]["pendingTask"].is_object() {
                format!(
                    "{} {} ({})",
                    text(&o["status"]["pendingTask"]["function"]),
                    text(&o["status"]["pendingTask"]["id"]),
                    text(&o["status"]["pendingTask"]["status"])
                )
            } else if o["status"]["lastTask"].is_object() {
                format!(
                    "{} {} ({})",
                    text(&o["status"]["lastTask"]["function"]),
                    text(&o["status"]["lastTask"]["id"]),
                    text(&o["status"]["lastTask"]["status"])
                )
            } else {
                String::new()
            };
            vec![
                text(&o["metadata"]["namespace"]),
                text(&o["metadata"]["name"]),
                ready,
                reason,
                text(&o["status"]["connectorId"]),
                text(&o["spec"]["smartHost"]),
                task,
                message,
            ]
        })
        .collect();
    render(
        &[
            "NAMESPACE",
            "NAME",
            "READY",
            "REASON",
            "ID",
            "SMARTHOST",
            "LAST TASK",
            "MESSAGE",
        ],
        &rows,
    )
}

/// The planned calls of every resource, like a plan: what a run without `--dry-run` would send.
pub fn plans(objects: &[Value]) -> String {
    let mut out = Vec::new();
    for o in objects {
        let calls = o["status"]["plan"].as_array().cloned().unwrap_or_default();
        let name = format!(
            "{} {}/{}",
            text(&o["kind"]),
            text(&o["metadata"]["namespace"]),
            text(&o["metadata"]["name"])
        );
        if calls.is_empty() {
            out.push(format!("{name}: nothing to change"));
            continue;
        }
        out.push(format!("{name}: {} call(s)", calls.len()));
        for c in calls {
            out.push(format!("  {} {}", text(&c["method"]), text(&c["path"])));
            if !c["body"].is_null() {
                out.push(format!("      {}", text(&c["body"])));
            }
            out.push(format!("      # {}", text(&c["reason"])));
        }
    }
    out.join("\n")
}

/// The MailboxBinding table.
pub fn bindings(objects: &[Value]) -> String {
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            let (ready, reason, message) = ready_cells(o);
            vec![
                text(&o["metadata"]["namespace"]),
                text(&o["metadata"]["name"]),
                ready,
                text(&o["spec"]["connectorRef"]["name"]),
                text(&o["status"]["bound"]),
                reason,
                message,
            ]
        })
        .collect();
    render(
        &[
            "NAMESPACE",
            "NAME",
            "READY",
            "CONNECTOR",
            "BOUND",
            "REASON",
            "MESSAGE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ready: &str, reason: &str, observed: i64) -> Value {
        json!({
            "metadata": {"name": "relay", "namespace": "mail", "generation": 2},
            "spec": {"smartHost": "smtp-relay.example.com", "connectorRef": {"name": "relay"}},
            "status": {
                "connectorId": 29, "bound": "3/3",
                "lastTask": {"id": 7, "function": "addSendConnector", "status": "done"},
                "conditions": [
                    {"type": "Ready", "status": ready, "reason": reason, "message": "m", "observedGeneration": observed},
                    {"type": "Stalled", "status": if reason == "OvhError" { "True" } else { "False" }, "reason": reason, "message": "", "observedGeneration": observed}
                ]
            }
        })
    }

    #[test]
    fn outcome_needs_the_current_generation() {
        assert_eq!(outcome(&obj("True", "Ready", 2)), Outcome::Ready);
        assert_eq!(outcome(&obj("True", "Ready", 1)), Outcome::Pending);
        assert_eq!(outcome(&obj("False", "OvhError", 2)), Outcome::Stalled);
        assert_eq!(outcome(&obj("False", "TaskPending", 2)), Outcome::Pending);
        assert_eq!(outcome(&obj("False", "DryRun", 2)), Outcome::Planned);
        assert_eq!(
            outcome(&json!({"metadata": {"generation": 1}})),
            Outcome::Pending
        );
    }

    #[test]
    fn tables_align_and_show_the_columns() {
        let t = connectors(&[obj("True", "Ready", 2)]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME    READY   REASON   ID   SMARTHOST"),
            "{t}"
        );
        assert!(
            lines[1].contains("smtp-relay.example.com")
                && lines[1].contains("addSendConnector 7 (done)"),
            "{t}"
        );
        let b = bindings(&[obj("True", "Ready", 2)]);
        assert!(b.lines().nth(1).unwrap().contains("3/3"), "{b}");
    }
}
