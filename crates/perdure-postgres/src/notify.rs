//! Cross-process wake-ups sent after commit: work made visible, and
//! instances that finished (so that a client waiting in another process
//! learns it at once, not at its next poll). A `pg_notify` inside a
//! transaction takes a database-wide lock at commit, which would serialize
//! every committing worker; instead each commit hands what it made visible
//! to this task, which merges whatever is waiting and sends it in one
//! statement on its own connection. A notification lost to a crash between
//! the commit and the send is covered by the listeners' safety poll; for
//! the same reason the send does not wait for its WAL flush (a notifying
//! transaction takes a transaction id, so its commit would otherwise wait
//! for an fsync of its own).

use deadpool_postgres::Pool;
use perdure_core::RuntimeStatus;
use perdure_store::wake::Visible;
use std::collections::BTreeSet;
use tokio::sync::mpsc;

/// How long the notifier gathers before sending.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// What a commit announces.
enum Note {
    Visible(Visible),
    /// The instance's status after a commit that finished it.
    Finished(String, RuntimeStatus),
}

pub(crate) struct Notifier {
    tx: mpsc::UnboundedSender<Note>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    pub fn start(pool: Pool, channel: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(pool, channel, rx));
        Notifier { tx, task }
    }

    /// Announces `v` to the hub's other processes.
    pub fn send(&self, v: &Visible) {
        if v.orchestrations_now
            || v.activities_now
            || !v.orchestrations_later.is_empty()
            || !v.activities_later.is_empty()
        {
            let _ = self.tx.send(Note::Visible(v.clone()));
        }
    }

    /// Announces that a commit left `instance_id` with `status`, when that
    /// status is final: other processes' waits on it end at once.
    pub fn changed(&self, instance_id: &str, status: RuntimeStatus) {
        if status.is_terminal() {
            let _ = self
                .tx
                .send(Note::Finished(instance_id.to_string(), status));
        }
    }
}

/// The payload announcing that `instance_id` has `status`:
/// `s<status code>:<instance id>` (an id is at most 256 characters, well
/// under a notification's 8,000 bytes).
pub(crate) fn finished_payload(instance_id: &str, status: RuntimeStatus) -> String {
    format!("s{}:{instance_id}", status.code())
}

/// The instance and status a [`finished_payload`] names.
pub(crate) fn parse_finished(payload: &str) -> Option<(&str, RuntimeStatus)> {
    let (code, id) = payload.strip_prefix('s')?.split_once(':')?;
    let status = RuntimeStatus::from_code(code.parse().ok()?)?;
    (!id.is_empty()).then_some((id, status))
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn payloads(note: &Note, out: &mut BTreeSet<String>) {
    let v = match note {
        Note::Visible(v) => v,
        Note::Finished(id, status) => {
            out.insert(finished_payload(id, *status));
            return;
        }
    };
    if v.orchestrations_now {
        out.insert("o".into());
    }
    if v.activities_now {
        out.insert("a".into());
    }
    out.extend(v.orchestrations_later.iter().map(|t| format!("o:{t}")));
    out.extend(v.activities_later.iter().map(|t| format!("a:{t}")));
}

async fn run(pool: Pool, channel: String, mut rx: mpsc::UnboundedReceiver<Note>) {
    while let Some(first) = rx.recv().await {
        // Gather what the next few milliseconds make visible too: under
        // load, one notification then wakes the other processes for many
        // commits instead of each commit waking them.
        tokio::time::sleep(GATHER).await;
        let mut all = BTreeSet::new();
        payloads(&first, &mut all);
        while let Ok(more) = rx.try_recv() {
            payloads(&more, &mut all);
        }
        let all: Vec<String> = all.into_iter().collect();
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(
                    "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true))
                     SELECT pg_notify($1, p) FROM cfg, unnest($2::text[]) AS p",
                )
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&stmt, &[&channel, &all])
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "postgres wake-up notification failed; others will poll");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{finished_payload, parse_finished};
    use perdure_core::RuntimeStatus;

    #[test]
    fn a_finished_payload_names_its_instance_and_status() {
        let cases = [
            ("plain id", "order-1", RuntimeStatus::Completed),
            ("an id with colons", "a:b:c", RuntimeStatus::Failed),
            ("terminated", "x", RuntimeStatus::Terminated),
        ];
        for (what, id, status) in cases {
            let p = finished_payload(id, status);
            assert_eq!(parse_finished(&p), Some((id, status)), "{what}");
        }
    }

    #[test]
    fn other_payloads_are_not_finished_instances() {
        for p in [
            "o",
            "a",
            "o:1733000000000",
            "s",
            "s:",
            "sx:id",
            "s99:id",
            "s1:",
        ] {
            assert_eq!(parse_finished(p), None, "{p}");
        }
    }
}
