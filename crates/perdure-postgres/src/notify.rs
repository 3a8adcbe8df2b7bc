//! Cross-process wake-ups sent after commit. A `pg_notify` inside a
//! transaction takes a database-wide lock at commit, which would serialize
//! every committing worker; instead each commit hands what it made visible
//! to this task, which merges whatever is waiting and sends it in one
//! statement on its own connection. A notification lost to a crash between
//! the commit and the send is covered by the listeners' safety poll.

use deadpool_postgres::Pool;
use perdure_store::wake::Visible;
use std::collections::BTreeSet;
use tokio::sync::mpsc;

/// How long the notifier gathers before sending.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

pub(crate) struct Notifier {
    tx: mpsc::UnboundedSender<Visible>,
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
            let _ = self.tx.send(v.clone());
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn payloads(v: &Visible, out: &mut BTreeSet<String>) {
    if v.orchestrations_now {
        out.insert("o".into());
    }
    if v.activities_now {
        out.insert("a".into());
    }
    out.extend(v.orchestrations_later.iter().map(|t| format!("o:{t}")));
    out.extend(v.activities_later.iter().map(|t| format!("a:{t}")));
}

async fn run(pool: Pool, channel: String, mut rx: mpsc::UnboundedReceiver<Visible>) {
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
                .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
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
