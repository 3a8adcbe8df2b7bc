//! Text renderings of Durable Functions' JSON shapes: the seed-style history
//! table, the instance list and a status summary.

use serde_json::Value;

fn cell(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    if s.chars().count() > width {
        out.pop();
        out.push('…');
    }
    format!("{out:<width$}")
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn row(cols: &[(&str, usize)], values: &[String]) -> String {
    let line: Vec<String> = values
        .iter()
        .zip(cols)
        .map(|(v, (_, w))| cell(v, *w))
        .collect();
    format!("{}\n", line.join(" ").trim_end())
}

/// The history as the seed documents show it: event type, timestamp, name,
/// result, status.
pub fn history_table(instance_id: &str, events: &Value) -> String {
    let short: String = instance_id.chars().take(8).collect();
    let cols = [
        ("PartitionKey", 12),
        ("EventType", 34),
        ("Timestamp", 24),
        ("Name", 22),
        ("Result", 52),
        ("Status", 9),
    ];
    let mut out = row(
        &cols,
        &cols.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
    );
    for e in events.as_array().into_iter().flatten() {
        let result = if e["Details"].is_string() {
            format!("{}: {}", text(&e["Reason"]), text(&e["Details"]))
        } else if !e["Result"].is_null() {
            text(&e["Result"])
        } else {
            text(&e["Reason"])
        };
        let name = [&e["FunctionName"], &e["Name"]]
            .into_iter()
            .map(text)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        out.push_str(&row(
            &cols,
            &[
                short.clone(),
                text(&e["EventType"]),
                text(&e["Timestamp"]),
                name,
                result,
                text(&e["OrchestrationStatus"]),
            ],
        ));
    }
    out
}

/// One line per instance.
pub fn list_table(list: &[Value]) -> String {
    let cols = [
        ("InstanceId", 34),
        ("Name", 24),
        ("Status", 15),
        ("Created", 21),
        ("LastUpdated", 21),
    ];
    let mut out = row(
        &cols,
        &cols.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
    );
    for s in list {
        out.push_str(&row(
            &cols,
            &[
                text(&s["instanceId"]),
                text(&s["name"]),
                text(&s["runtimeStatus"]),
                text(&s["createdTime"]),
                text(&s["lastUpdatedTime"]),
            ],
        ));
    }
    out
}

/// A status as `field: value` lines, then the history table if present.
pub fn status_text(st: &Value) -> String {
    let mut out = String::new();
    for (label, key) in [
        ("Instance", "instanceId"),
        ("Name", "name"),
        ("Status", "runtimeStatus"),
        ("Created", "createdTime"),
        ("Last updated", "lastUpdatedTime"),
        ("Input", "input"),
        ("Output", "output"),
        ("Custom status", "customStatus"),
    ] {
        out.push_str(&format!("{label:<14} {}\n", text(&st[key])));
    }
    if st["historyEvents"].is_array() {
        out.push('\n');
        out.push_str(&history_table(
            &text(&st["instanceId"]),
            &st["historyEvents"],
        ));
    }
    out
}
