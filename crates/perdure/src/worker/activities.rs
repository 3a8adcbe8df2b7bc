//! Activity dispatch: take a task, run the function (panics caught), and
//! commit its result to the instance's inbox. The lease is renewed while the
//! function runs; a crash before the commit lets the task run again once
//! the lease ends (at least once).

use super::Shared;
use crate::activity::ActivityContext;
use perdure_store::{ActivityItem, OrchestrationItem, StoreError};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// Runs a taken activity in its own task, holding its slot until its
/// result is recorded.
pub(super) fn spawn(shared: Arc<Shared>, item: ActivityItem, permit: OwnedSemaphorePermit) {
    // Boxed, as a turn is (see `orchestrations::spawn`).
    tokio::spawn(Box::pin(async move {
        let next = run(&shared, item).await;
        drop(permit);
        if let Ok(Some((next, slot))) = next {
            super::orchestrations::spawn(shared, next, slot);
        }
    }));
}

/// Runs a taken activity and records its result. With a free turn slot the
/// instance the result went to is taken in the same transaction and
/// returned, with its slot, for the turn that consumes the result.
pub(super) async fn run(
    shared: &Arc<Shared>,
    item: ActivityItem,
) -> Result<Option<(OrchestrationItem, OwnedSemaphorePermit)>, StoreError> {
    let lease = shared.options.lease;
    let a = &item.activity;
    let span = tracing::info_span!(
        "activity",
        otel.name = %format!("activity:{}", a.name),
        instance_id = %a.instance_id,
        task_id = a.task_id,
        attempt = item.dequeue_count,
    );
    let began = std::time::Instant::now();
    let began_at = std::time::SystemTime::now();
    let outcome = async {
        let ctx = ActivityContext::new(&a.instance_id, &a.name, a.task_id, item.dequeue_count);
        let run = shared.registry.invoke_activity(ctx, a.input.clone());
        tokio::pin!(run);
        let renew_every = lease / 3;
        loop {
            tokio::select! {
                done = &mut run => return done,
                _ = tokio::time::sleep(renew_every) => {
                    if let Err(e) = shared.store.renew_activity_lock(&item.lock_token, lease).await {
                        tracing::warn!(error = %e, "lost the lease on a running activity; its result will be discarded");
                    }
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    if let Err(failure) = &outcome {
        span.in_scope(|| tracing::info!(%failure, "activity failed"));
    }
    crate::metrics::global().activity_finished(&a.name, outcome.is_ok(), Some(began.elapsed()));
    let span_outcome = outcome.as_ref().map(|_| ()).map_err(|f| f.to_string());
    let msg = crate::dispatch::activity_result(a, outcome);
    // With a free turn slot, take the instance in the same transaction and
    // run the turn that consumes this result at once.
    let recorded = match shared.orchestration_slots.clone().try_acquire_owned() {
        Ok(slot) => shared
            .store
            .complete_activity_and_take(
                &item.lock_token,
                msg,
                lease,
                shared.options.max_batch,
                &shared.orchestration_filter,
            )
            .await
            .map(|taken| taken.map(|next| (next, slot))),
        Err(_) => shared
            .store
            .complete_activity(&item.lock_token, msg)
            .await
            .map(|()| None),
    };
    match &recorded {
        Ok(_) => crate::telemetry::activity_span(a, began_at, span_outcome),
        Err(StoreError::LockLost(what)) => {
            tracing::warn!(%what, "activity result discarded: lease lost; another worker runs it");
        }
        Err(e) => {
            tracing::warn!(error = %e, "recording an activity result failed; it runs again when its lease ends");
        }
    }
    recorded
}
