//! Activity dispatch: take a task, run the function (panics caught), and
//! hand its result on: to the turn that consumes it (run at once without a
//! lease, or in the instance taken for it), or to the instance's inbox. The
//! lease is renewed while the function runs; a crash before the result is
//! committed lets the task run again once the lease ends (at least once).

use super::backlog::BacklogPlace;
use super::Shared;
use crate::activity::ActivityContext;
use perdure_store::{ActivityItem, OrchestrationItem, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// What a taken activity runs under: a slot of the worker's, or, claimed
/// by a turn while every slot was busy, a place in the worker's backlog.
pub(crate) enum Slot {
    Running(OwnedSemaphorePermit),
    Waiting(BacklogPlace),
}

/// Runs a taken activity in its own task, holding its slot until its
/// function returns. A task from the backlog first waits for a slot (at
/// most the backlog's wait); if none comes, or
/// the worker stops, it is given back for any worker to take at once.
pub(super) fn spawn(shared: Arc<Shared>, item: ActivityItem, slot: Slot) {
    // Boxed, as a turn is (see `orchestrations::spawn`).
    tokio::spawn(Box::pin(async move {
        let permit = match slot {
            Slot::Running(permit) => permit,
            Slot::Waiting(place) => {
                let wait = shared.backlog.wait();
                let got =
                    tokio::time::timeout(wait, shared.activity_slots.clone().acquire_owned()).await;
                drop(place);
                match got {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        if let Err(e) = shared
                            .store
                            .abandon_activity(&item.lock_token, Duration::ZERO)
                            .await
                        {
                            tracing::debug!(error = %e, "a claimed task not given back; its lease will end");
                        }
                        return;
                    }
                }
            }
        };
        match run(&shared, item, Some(permit)).await {
            Ok(After::Turn(next, slot)) => super::orchestrations::spawn(shared, *next, slot),
            Ok(After::Ran(claimed)) => {
                for (item, slot) in claimed {
                    spawn(shared.clone(), item, slot);
                }
            }
            Ok(After::Recorded) | Err(_) => {}
        }
    }));
}

/// What became of an activity's result.
pub(super) enum After {
    /// Recorded in its instance's inbox.
    Recorded,
    /// Carried into the instance, taken for this worker with a turn slot:
    /// its turn is to run.
    Turn(Box<OrchestrationItem>, OwnedSemaphorePermit),
    /// Its turn ran at once without taking the instance; these are the
    /// activities that turn claimed for this worker.
    Ran(super::orchestrations::Claimed),
}

/// Runs a taken activity and hands its result on (see [`After`]). The
/// activity's slot (`permit`) is given back as soon as its function
/// returns: the turn that consumes the result may then claim it for the
/// activity it schedules.
pub(super) async fn run(
    shared: &Arc<Shared>,
    mut item: ActivityItem,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<After, StoreError> {
    // The input goes to the function as it is (not copied: it may be large).
    let input = std::mem::take(&mut item.activity.input);
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
        let run = shared.registry.invoke_activity(ctx, input);
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
    drop(permit);
    shared.backlog.observe(began.elapsed());
    if let Err(failure) = &outcome {
        span.in_scope(|| tracing::info!(%failure, "activity failed"));
    }
    crate::metrics::global().activity_finished(&a.name, outcome.is_ok(), Some(began.elapsed()));
    let span_outcome = outcome.as_ref().map(|_| ()).map_err(|f| f.to_string());
    let msg = crate::dispatch::activity_result(a, outcome);
    // Run the turn that consumes the result without a lease when this
    // worker holds the run and it waits on nothing else (on this task: the
    // activity's own, so such turns are bounded by the activity slots);
    // else, with a free turn slot, take the instance and carry the result
    // into its turn. Either way the turn's commit records the result (one
    // fsync for the step). Without a slot, or when the instance is busy,
    // the result is recorded on its own and waits in the inbox.
    let recorded = match super::orchestrations::unleased_turn(shared, &item, &msg).await {
        Some(claimed) => Ok(After::Ran(claimed)),
        None => match shared.orchestration_slots.clone().try_acquire_owned() {
            Ok(slot) => carry(shared, &item, msg).await.map(|taken| match taken {
                Some(next) => After::Turn(Box::new(next), slot),
                None => After::Recorded,
            }),
            Err(_) => shared
                .store
                .complete_activity(&item.lock_token, msg)
                .await
                .map(|()| After::Recorded),
        },
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

/// Takes the result's instance for this worker and carries the result into
/// its turn; records the result on its own when the instance cannot be
/// taken (leased elsewhere, suspended, finished) or its batch holds a
/// control message (a terminate, suspend or resume is decided without the
/// orchestrator, so the result must wait in the inbox).
async fn carry(
    shared: &Shared,
    item: &ActivityItem,
    msg: perdure_store::InstanceMessage,
) -> Result<Option<OrchestrationItem>, StoreError> {
    let store = &shared.store;
    let taken = store
        .take_for_result(
            &item.lock_token,
            &msg.instance_id,
            shared.options.lease,
            shared.options.max_batch,
            &shared.orchestration_filter,
        )
        .await?;
    let Some(mut next) = taken else {
        store.complete_activity(&item.lock_token, msg).await?;
        return Ok(None);
    };
    if crate::dispatch::carries_results(&next) {
        next.carried.push(perdure_store::CarriedResult {
            task_token: item.lock_token.clone(),
            execution_id: msg.execution_id,
            event: msg.event,
        });
        return Ok(Some(next));
    }
    // The instance is this worker's now: its turn runs either way.
    if let Err(e) = store.complete_activity(&item.lock_token, msg).await {
        tracing::warn!(error = %e, "recording an activity result failed; it runs again when its lease ends");
    }
    Ok(Some(next))
}
