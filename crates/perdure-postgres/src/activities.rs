//! The SQL of the activity queue's own operations: taking activities (one
//! lease-only statement), renewing and giving back an activity's lease (a
//! transaction each). Completion is a step's commit
//! (`fast`, `batch`).

use crate::ops::{filter_sql, now, now_lease_only, text};
use crate::{backend, Woken};
use deadpool_postgres::{GenericClient, Transaction};
use perdure_store::*;

/// Takes up to `max` visible tasks for any activity, oldest first, in one
/// statement run as its own lease-only transaction (no wait for the WAL
/// flush: a claim lost in a crash is a task that runs again once its lease
/// ends, as any lost lease). The statement is planned once per connection,
/// so it is written for any table size: the ordered index finds the tasks
/// (no clause on parameters for the plan to guess at), and each is updated
/// by the address its lock returned (a TID scan), not by a join the plan
/// could have chosen while the queue was empty.
pub(crate) async fn fetch_activities<C: GenericClient + Sync>(
    c: &C,
    lease: i64,
    max: i64,
) -> Result<Vec<ActivityItem>, StoreError> {
    let sql = format!(
        "WITH {clock},
         picked AS (
             SELECT ctid AS at FROM tasks
             WHERE visible_at <= (SELECT now FROM clock) AND lock_expiry <= (SELECT now FROM clock)
             ORDER BY visible_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE tasks t SET lock_token = replace(gen_random_uuid()::text, '-', ''),
                lock_expiry = (SELECT now FROM clock) + $1, dequeue_count = t.dequeue_count + 1
         WHERE t.ctid = ANY(ARRAY(SELECT at FROM picked))
         RETURNING {TAKEN}",
        clock = crate::fast::clock(true),
    );
    let stmt = c
        .prepare_cached(&sql)
        .await
        .map_err(|e| backend("finding activity work", e))?;
    let rows = c
        .query(&stmt, &[&lease, &max])
        .await
        .map_err(|e| backend("taking activities", e))?;
    Ok(taken(rows))
}

/// Takes up to `max` visible tasks that pass a worker's filter, oldest
/// first, in a lease-only transaction whose statements are planned for
/// their values: the filter is a clause on parameters, whose rows a plan
/// made once could only guess (and, guessing few, sort the whole queue).
pub(crate) async fn fetch_filtered_activities(
    tx: &Transaction<'_>,
    lease: i64,
    max: i64,
    filter: &WorkFilter,
) -> Result<Vec<ActivityItem>, StoreError> {
    let now = now_lease_only(tx).await?;
    let (mode, json) = filter.to_sql();
    let sql = format!(
        "UPDATE tasks t SET lock_token = replace(gen_random_uuid()::text, '-', ''),
                lock_expiry = $1 + $2, dequeue_count = t.dequeue_count + 1
         FROM (SELECT seq FROM tasks WHERE visible_at <= $1 AND lock_expiry <= $1 AND {}
               ORDER BY visible_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) picked
         WHERE t.seq = picked.seq
         RETURNING {TAKEN}",
        filter_sql("name", "version", 4)
    );
    let stmt = tx
        .prepare_cached(&sql)
        .await
        .map_err(|e| backend("finding activity work", e))?;
    let rows = tx
        .query(&stmt, &[&now, &lease, &max, &mode, &json])
        .await
        .map_err(|e| backend("taking activities", e))?;
    Ok(taken(rows))
}

/// The columns a take returns, as [`taken`] reads them.
const TAKEN: &str = "t.seq, t.instance_id, t.execution_id, t.task_id, t.name, t.version, t.input,
                   t.dequeue_count, t.lock_token, t.trace";

/// Taken tasks in the order they were queued.
fn taken(mut rows: Vec<tokio_postgres::Row>) -> Vec<ActivityItem> {
    rows.sort_by_key(|r| r.get::<_, i64>(0));
    rows.into_iter()
        .map(|r| ActivityItem {
            activity: NewActivity {
                trace_context: decode_trace(r.get(9)),
                instance_id: r.get(1),
                execution_id: r.get(2),
                task_id: r.get(3),
                name: r.get(4),
                version: r.get(5),
                input: text(&r, 6),
            },
            dequeue_count: r.get::<_, i32>(7) as u32,
            lock_token: r.get(8),
        })
        .collect()
}

async fn locked_task(tx: &Transaction<'_>, token: &str, now: i64) -> Result<i64, StoreError> {
    tx.query_opt(
        "SELECT seq FROM tasks WHERE lock_token = $1 AND lock_expiry > $2 FOR UPDATE",
        &[&token, &now],
    )
    .await
    .map_err(|e| backend("checking an activity lease", e))?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::LockLost("activity task".into()))
}

pub(crate) async fn renew_activity(
    tx: &Transaction<'_>,
    token: String,
    lease: i64,
) -> Result<(), StoreError> {
    let now = now_lease_only(tx).await?;
    let seq = locked_task(tx, &token, now).await?;
    tx.execute(
        "UPDATE tasks SET lock_expiry = $2 WHERE seq = $1",
        &[&seq, &(now + lease)],
    )
    .await
    .map_err(|e| backend("renewing an activity lease", e))?;
    Ok(())
}

pub(crate) async fn abandon_activity(
    tx: &Transaction<'_>,
    token: String,
    after: i64,
) -> Result<Woken, StoreError> {
    let now = now(tx).await?;
    let seq = locked_task(tx, &token, now).await?;
    let at = now + after.max(0);
    tx.execute(
        "UPDATE tasks SET lock_token = NULL, lock_expiry = 0, visible_at = $2 WHERE seq = $1",
        &[&seq, &at],
    )
    .await
    .map_err(|e| backend("abandoning an activity", e))?;
    let mut w = Woken::default();
    if after > 0 {
        w.activities_later.push(at);
    } else {
        w.activities_now = true;
    }
    Ok(w)
}
