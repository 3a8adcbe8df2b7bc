//! The activity queue in SQL: taking tasks under a lease (and, on a task's
//! start, its instance's queued results with it), completing, renewing and
//! giving them back, and the tasks an execution still has queued or
//! running.

use super::*;

/// Takes up to `max_items` visible tasks, oldest first, in one scan.
pub(crate) fn fetch_activities(
    c: &Connection,
    lease: i64,
    max_items: usize,
    filter: &WorkFilter,
    now: i64,
) -> Result<Vec<ActivityItem>, StoreError> {
    let (mode, json) = filter.to_sql();
    let sql = format!(
        "SELECT seq FROM tasks WHERE visible_at <= ?1 AND lock_expiry <= ?1 AND {}
         ORDER BY visible_at, seq LIMIT ?4",
        filter_sql("name", "version", 2)
    );
    let seqs: Vec<i64> = c
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params![now, mode, json, max_items.max(1) as i64], |r| {
                r.get(0)
            })?
            .collect()
        })
        .map_err(|e| backend("finding activity work", e))?;
    let mut lock = c
        .prepare_cached(
            "UPDATE tasks SET lock_token = ?1, lock_expiry = ?2, dequeue_count = dequeue_count + 1
             WHERE seq = ?3
             RETURNING instance_id, execution_id, task_id, name, version, input, dequeue_count, trace",
        )
        .map_err(|e| backend("locking an activity", e))?;
    let mut items = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let token = new_lock_token();
        let item = lock
            .query_row(params![token, now + lease, seq], |r| {
                Ok(ActivityItem {
                    activity: NewActivity {
                        trace_context: decode_trace(r.get(7)?),
                        instance_id: r.get(0)?,
                        execution_id: r.get(1)?,
                        task_id: r.get(2)?,
                        name: r.get(3)?,
                        version: r.get(4)?,
                        input: super::text(r, 5)?,
                    },
                    lock_token: token.clone(),
                    dequeue_count: r.get::<_, i64>(6)? as u32,
                })
            })
            .map_err(|e| backend("locking an activity", e))?;
        items.push(item);
    }
    Ok(items)
}

pub(crate) fn locked_task(c: &Connection, token: &str, now: i64) -> Result<i64, StoreError> {
    c.prepare_cached("SELECT seq FROM tasks WHERE lock_token = ?1 AND lock_expiry > ?2")
        .and_then(|mut s| s.query_row(params![token, now], |r| r.get(0)).optional())
        .map_err(|e| backend("checking an activity lease", e))?
        .ok_or_else(|| StoreError::LockLost("activity task".into()))
}

/// Deletes the task leased under `token` and records its result in the
/// instance's inbox (dropped if the instance is gone), in two statements.
pub(crate) fn complete_activity(
    c: &Connection,
    token: &str,
    result: &InstanceMessage,
    event: &str,
    now: i64,
) -> Result<Woken, StoreError> {
    // Read, then deleted by key: `DELETE ... RETURNING` runs as a trigger
    // and gets a statement journal.
    let seq = locked_task(c, token, now)?;
    c.prepare_cached("DELETE FROM tasks WHERE seq = ?1")
        .and_then(|mut s| s.execute([seq]))
        .map_err(|e| backend("completing an activity", e))?;
    let visible = ceil_millis(result.visible_at);
    // Two statements rather than one `INSERT ... SELECT ... WHERE EXISTS`:
    // SQLite gives a statement that may write several rows a statement
    // journal (a copy of every page it touches), which a single-row
    // `INSERT ... VALUES` does without. Both run in the writer's one
    // transaction.
    let inserted = if super::exists(c, &result.instance_id)? {
        c.prepare_cached(
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at, control)
             VALUES (?1, ?2, ?3, ?4, 0)",
        )
        .and_then(|mut s| {
            s.execute(params![
                result.instance_id,
                result.execution_id,
                event,
                visible
            ])
        })
        .map_err(|e| backend("recording an activity result", e))?
    } else {
        0
    };
    let mut w = Woken::default();
    if inserted > 0 {
        w.orchestration_message(visible, now);
    }
    Ok(w)
}

pub(crate) fn renew_activity(
    c: &Connection,
    token: &str,
    lease: i64,
    now: i64,
) -> Result<(), StoreError> {
    let seq = locked_task(c, token, now)?;
    exec_cached(
        c,
        "UPDATE tasks SET lock_expiry = ?2 WHERE seq = ?1",
        params![seq, now + lease],
    )
    .map_err(|e| backend("renewing an activity lease", e))?;
    Ok(())
}

pub(crate) fn abandon_activity(
    c: &Connection,
    token: &str,
    retry_after: i64,
    now: i64,
) -> Result<Woken, StoreError> {
    let seq = locked_task(c, token, now)?;
    exec_cached(
        c,
        "UPDATE tasks SET lock_token = NULL, lock_expiry = 0, visible_at = ?2 WHERE seq = ?1",
        params![seq, now + retry_after.max(0)],
    )
    .map_err(|e| backend("abandoning an activity", e))?;
    let mut w = Woken::default();
    if retry_after > 0 {
        w.activities_later.push(now + retry_after);
    } else {
        w.activities_now = true;
    }
    Ok(w)
}

/// Task ids of one execution whose tasks are still queued or running.
pub(crate) fn pending_tasks(
    c: &Connection,
    instance_id: &str,
    execution_id: &str,
) -> Result<Vec<i64>, StoreError> {
    let mut stmt = c
        .prepare_cached("SELECT task_id FROM tasks WHERE instance_id = ?1 AND execution_id = ?2")
        .map_err(|e| backend("reading pending tasks", e))?;
    let rows = stmt
        .query_map(params![instance_id, execution_id], |r| r.get::<_, i64>(0))
        .map_err(|e| backend("reading pending tasks", e))?;
    rows.map(|r| r.map_err(|e| backend("reading pending tasks", e)))
        .collect()
}
