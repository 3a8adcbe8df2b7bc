//! Text renderings: the history table of the seed documents and status JSON.

use perdure::{EventKind, HistoryEvent, OrchestrationStatus};
use serde_json::{json, Value};

fn cell(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    if s.chars().count() > width {
        out.pop();
        out.push('…');
    }
    format!("{out:<width$}")
}

/// The history as a table: event type, timestamp, name, input, result, status.
pub fn history_table(instance_id: &str, history: &[HistoryEvent]) -> String {
    let short: String = instance_id.chars().take(8).collect();
    let cols = [
        ("PartitionKey", 12),
        ("EventType", 26),
        ("Timestamp", 24),
        ("Name", 16),
        ("Input", 12),
        ("Result", 52),
        ("Status", 9),
    ];
    let mut out = String::new();
    let header: Vec<String> = cols.iter().map(|(n, w)| cell(n, *w)).collect();
    out.push_str(header.join(" ").trim_end());
    out.push('\n');
    for e in history {
        let status = match &e.kind {
            EventKind::ExecutionCompleted { status, .. } => status.to_string(),
            _ => String::new(),
        };
        let row = [
            short.clone(),
            e.type_name().to_string(),
            e.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            e.name().unwrap_or_default().to_string(),
            e.input().unwrap_or_default().to_string(),
            e.result().unwrap_or_default(),
            status,
        ];
        let line: Vec<String> = row
            .iter()
            .zip(cols.iter())
            .map(|(v, (_, w))| cell(v, *w))
            .collect();
        out.push_str(line.join(" ").trim_end());
        out.push('\n');
    }
    out
}

fn parsed(p: &Option<String>) -> Value {
    p.as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

/// Durable Functions' status object.
pub fn status_json(st: &OrchestrationStatus) -> Value {
    json!({
        "name": st.name,
        "instanceId": st.instance_id,
        "runtimeStatus": st.runtime_status.as_str(),
        "input": parsed(&st.input),
        "customStatus": parsed(&st.custom_status),
        "output": match &st.failure { Some(f) => json!(f.to_string()), None => parsed(&st.output) },
        "createdTime": st.created_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "lastUpdatedTime": st.last_updated_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}
