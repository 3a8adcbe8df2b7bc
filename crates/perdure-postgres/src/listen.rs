//! The LISTEN connection: one per store, reconnecting by itself. A
//! notification `o` or `a` wakes idle orchestration or activity dispatchers;
//! `o:<millis>` / `a:<millis>` schedules a wake-up for work visible later
//! (durable timers, retries); `s<status>:<id>` tells this process's waits
//! on that instance that another process finished it. After every
//! (re)connect both kinds are woken,
//! so nothing sent while disconnected is missed for longer than a poll.

use futures::StreamExt;
use perdure_store::wake::WakeHub;
use perdure_store::WorkKind;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

fn apply(wake: &WakeHub, payload: &str) {
    if let Some((id, status)) = crate::notify::parse_finished(payload) {
        wake.instance_changed(id, status);
        return;
    }
    let (kind, at) = payload
        .split_once(':')
        .map_or((payload, None), |(k, t)| (k, t.parse::<i64>().ok()));
    let kind = match kind {
        "o" => WorkKind::Orchestration,
        "a" => WorkKind::Activity,
        _ => return,
    };
    match at.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => wake.schedule(kind, t),
        None => wake.notify(kind),
    }
}

pub(crate) async fn run(
    cfg: tokio_postgres::Config,
    tls: crate::tls::Tls,
    channel: String,
    wake: Arc<WakeHub>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match cfg.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = futures::channel::mpsc::unbounded::<String>();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.unbounded_send(n.payload().to_string()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "postgres listener connection failed");
                                return;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    backoff = Duration::from_millis(100);
                    wake.notify(WorkKind::Orchestration);
                    wake.notify(WorkKind::Activity);
                    while let Some(p) = rx.next().await {
                        apply(&wake, &p);
                    }
                }
                driver.abort();
            }
            Err(e) => {
                let error = crate::connecting(e);
                tracing::warn!(%error, "postgres listener cannot connect; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
