//! The dispatch hot paths in as few round trips as PostgreSQL allows: each
//! is one statement (data-modifying CTEs guarded by the lease check), run as
//! its own implicit transaction, and a read of the taken instances' inboxes
//! after it. Times come from the database clock (one `clock` CTE), so
//! machines with skewed clocks cannot steal each other's leases.

use crate::ops::{failure_text, filter_sql, record, INSTANCE_COLS, INSTANCE_COL_COUNT as N};
use crate::{backend, Woken};
use deadpool_postgres::GenericClient;
use perdure_core::{decode_event, encode_event, RuntimeStatus};
use perdure_store::*;
use std::collections::HashMap;
use tokio_postgres::Row;

/// The database clock in milliseconds, read once per statement. Lease-only
/// statements also turn off the wait for the WAL flush (`lease_only`).
pub(crate) fn clock(lease_only: bool) -> &'static str {
    if lease_only {
        "clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now,
                          set_config('synchronous_commit', 'off', true) AS cfg)"
    } else {
        "clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now)"
    }
}

fn returning_instance(alias: &str) -> String {
    INSTANCE_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes up to `max_items` instances with work, oldest work first: one
/// statement finds and leases them, one reads their inboxes. The visible
/// messages are read in order and each one's instance looked up by its key
/// (the lateral subquery, kept whole by `OFFSET 0`): the plan the server
/// caches for the connection, maybe while the hub was empty, stays in
/// proportion to the work taken, not to the tables.
pub(crate) async fn fetch_orchestrations<C: GenericClient + Sync>(
    c: &C,
    lease: i64,
    max: i64,
    max_items: usize,
    filter: &WorkFilter,
) -> Result<Vec<OrchestrationItem>, StoreError> {
    let (mode, json) = filter.to_sql();
    let sql = format!(
        "WITH {clock},
         cand AS (
             SELECT i.instance_id, m.visible_at, m.seq FROM inbox m
             CROSS JOIN LATERAL (
                 SELECT i.instance_id, i.status FROM instances i
                 WHERE i.instance_id = m.instance_id AND i.lock_expiry <= (SELECT now FROM clock)
                   AND {filter}
                 OFFSET 0) i
             WHERE m.visible_at <= (SELECT now FROM clock) AND (i.status <> $1 OR m.control)
             ORDER BY m.visible_at, m.seq LIMIT $4 FOR UPDATE OF i SKIP LOCKED),
         picked AS (
             SELECT instance_id, min(visible_at) AS v, min(seq) AS s FROM cand
             GROUP BY instance_id ORDER BY v, s LIMIT $5),
         upd AS (
             UPDATE instances i SET lock_token = replace(gen_random_uuid()::text, '-', ''),
                                    lock_expiry = (SELECT now FROM clock) + $6
             FROM picked WHERE i.instance_id = picked.instance_id
             RETURNING {cols}, i.lock_token, picked.v, picked.s)
         SELECT upd.*, (SELECT now FROM clock) FROM upd ORDER BY v, s",
        clock = clock(true),
        filter = filter_sql("i.name", "i.version", 2),
        cols = returning_instance("i"),
    );
    let stmt = c
        .prepare_cached(&sql)
        .await
        .map_err(|e| backend("taking orchestration work", e))?;
    let scan = (max_items.max(1) * 4) as i64;
    let rows = c
        .query(
            &stmt,
            &[
                &RuntimeStatus::Suspended.code(),
                &mode,
                &json,
                &scan,
                &(max_items.max(1) as i64),
                &lease,
            ],
        )
        .await
        .map_err(|e| backend("taking orchestration work", e))?;
    let now = rows.first().map(|r| r.get::<_, i64>(N + 3)).unwrap_or(0);
    with_inboxes(c, &rows, now, max).await
}

/// Builds the items for instances just leased (rows: instance columns, then
/// the lock token) with their visible messages, read in one statement.
async fn with_inboxes<C: GenericClient + Sync>(
    c: &C,
    rows: &[Row],
    now: i64,
    max: i64,
) -> Result<Vec<OrchestrationItem>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut leased = Vec::with_capacity(rows.len());
    for r in rows {
        leased.push((record(r)?, r.get::<_, String>(N)));
    }
    let ids: Vec<&str> = leased.iter().map(|(i, _)| i.instance_id.as_str()).collect();
    let suspended: Vec<&str> = leased
        .iter()
        .filter(|(i, _)| i.status == RuntimeStatus::Suspended)
        .map(|(i, _)| i.instance_id.as_str())
        .collect();
    let stmt = c
        .prepare_cached(
            // Instance by instance (the inbox's instance index), never a
            // scan of every visible message.
            "SELECT ids.id, m.seq, m.execution_id, m.event
             FROM unnest($1::text[]) AS ids(id)
             JOIN instances i ON i.instance_id = ids.id
             CROSS JOIN LATERAL (
                 SELECT seq, execution_id, event,
                        (i.history_len = 0
                         AND execution_id IS NOT DISTINCT FROM i.execution_id) AS first
                 FROM inbox
                 WHERE instance_id = ids.id AND visible_at <= $2
                   AND (control OR NOT ids.id = ANY($3))
                 ORDER BY first DESC, seq LIMIT $4) m
             ORDER BY ids.id, m.first DESC, m.seq",
        )
        .await
        .map_err(|e| backend("reading inboxes", e))?;
    let messages = c
        .query(&stmt, &[&ids, &now, &suspended, &max])
        .await
        .map_err(|e| backend("reading inboxes", e))?;
    let mut by_id: HashMap<String, Vec<InboxMessage>> = HashMap::new();
    for r in messages {
        by_id.entry(r.get(0)).or_default().push(InboxMessage {
            seq: r.get(1),
            execution_id: r.get(2),
            event: decode_event(r.get(3))?,
        });
    }
    Ok(leased
        .into_iter()
        .map(|(instance, lock_token)| {
            let messages = by_id.remove(&instance.instance_id).unwrap_or_default();
            OrchestrationItem::new(instance, messages, lock_token, now)
        })
        .collect())
}

/// Creates a new instance and its start message in one statement: false
/// (nothing written) when the id is taken, for the caller's slower path
/// (which replaces a finished instance or refuses).
pub(crate) async fn create_instance<C: GenericClient + Sync>(
    c: &C,
    req: &CreateInstance,
    w: &mut Woken,
) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "WITH {clock},
             ins AS (
                 INSERT INTO instances (instance_id, name, version, status, execution_id, input,
                                        created_at, updated_at, parent_instance_id, tags)
                 SELECT $1, $2, $3, $4, $5, $6, now, now, $7, $8 FROM clock
                 ON CONFLICT (instance_id) DO NOTHING
                 RETURNING instance_id),
             msg AS (
                 INSERT INTO inbox (instance_id, execution_id, event, visible_at, control)
                 SELECT instance_id, $5, $9, $10, false FROM ins
                 RETURNING seq)
             SELECT (SELECT count(*) FROM ins), (SELECT now FROM clock),
                    (SELECT seq FROM msg)",
            clock = clock(false)
        ))
        .await
        .map_err(|e| backend("creating an instance", e))?;
    let row = req.row();
    let visible = ceil_millis(req.visible_at).max(0);
    let done = c
        .query_one(
            &stmt,
            &[
                &req.instance_id,
                &row.name,
                &row.version,
                &RuntimeStatus::Pending.code(),
                &row.execution_id,
                &row.input.as_deref(),
                &row.parent_instance_id,
                &tags_text(&row.tags),
                &encode_event(&req.start_event),
                &visible,
            ],
        )
        .await
        .map_err(|e| backend("creating an instance", e))?;
    let (created, now, seq): (i64, i64, Option<i64>) = (done.get(0), done.get(1), done.get(2));
    let created = created > 0 && seq.is_some();
    if created {
        w.orchestration_message(visible, now);
    }
    Ok(created)
}

/// How to take an instance for a carried result: lease (ms), most
/// messages, and the worker's filter.
pub(crate) type Take = (i64, i64, WorkFilter);

/// Records an activity's result (deleting its task, checking the lease) in
/// one statement.
pub(crate) async fn complete_activity<C: GenericClient + Sync>(
    c: &C,
    token: &str,
    result: &InstanceMessage,
) -> Result<Woken, StoreError> {
    let sql = format!(
        "WITH {clock},
         del AS (
             DELETE FROM tasks WHERE lock_token = $1 AND lock_expiry > (SELECT now FROM clock)
             RETURNING seq),
         ins AS (
             INSERT INTO inbox (instance_id, execution_id, event, visible_at, control)
             SELECT $2, $3, $4, $5, false
             WHERE EXISTS (SELECT 1 FROM del)
               AND EXISTS (SELECT 1 FROM instances WHERE instance_id = $2)
             RETURNING seq)
         SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins), (SELECT now FROM clock)",
        clock = clock(false),
    );
    let stmt = c
        .prepare_cached(&sql)
        .await
        .map_err(|e| backend("completing an activity", e))?;
    let visible = ceil_millis(result.visible_at).max(0);
    let row = c
        .query_one(
            &stmt,
            &[
                &token,
                &result.instance_id,
                &result.execution_id,
                &encode_event(&result.event),
                &visible,
            ],
        )
        .await
        .map_err(|e| backend("completing an activity", e))?;
    let (deleted, inserted, now): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if deleted == 0 {
        return Err(StoreError::LockLost("activity task".into()));
    }
    let mut w = Woken::default();
    if inserted > 0 {
        w.orchestration_message(visible, now);
    }
    Ok(w)
}

/// An item from a row of instance columns, then its lock token, a count,
/// another, the database time and its inbox as a JSON array of
/// `[seq, execution_id, event]` (as [`take_for_result`] answers).
fn item_of_row(row: &Row) -> Result<OrchestrationItem, StoreError> {
    let text: Option<String> = row.get(N + 4);
    let listed: Vec<(i64, Option<String>, String)> = match text {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("inbox of a taken instance: {e}")))?,
        None => Vec::new(),
    };
    let mut messages = Vec::with_capacity(listed.len());
    for (seq, execution_id, event) in listed {
        messages.push(InboxMessage {
            seq,
            execution_id,
            event: decode_event(&event)?,
        });
    }
    Ok(OrchestrationItem::new(
        record(row)?,
        messages,
        row.get(N),
        row.get::<_, i64>(N + 3),
    ))
}

/// Takes running instance `id` for the result of the task leased under
/// `token`, which its worker carries into the turn
/// ([`perdure_store::ActivityQueue::take_for_result`]), with its inbox, in
/// one statement. It runs in the group commit's transaction among durable
/// steps, so it must not turn off the wait for the flush (`clock(false)`).
pub(crate) async fn take_for_result<C: GenericClient + Sync>(
    c: &C,
    token: &str,
    id: &str,
    take: &Take,
) -> Result<Option<OrchestrationItem>, StoreError> {
    let (lease, max, filter) = take;
    let (mode, json) = filter.to_sql();
    let sql = format!(
        "WITH {clock},
         held AS (
             SELECT 1 FROM tasks WHERE lock_token = $1 AND lock_expiry > (SELECT now FROM clock)),
         cand AS (
             SELECT instance_id FROM instances
             WHERE instance_id = $2 AND EXISTS (SELECT 1 FROM held)
               AND lock_expiry <= (SELECT now FROM clock) AND status = $3 AND history_len > 0
               AND {filter}
             FOR UPDATE SKIP LOCKED),
         upd AS (
             UPDATE instances i SET lock_token = replace(gen_random_uuid()::text, '-', ''),
                                    lock_expiry = (SELECT now FROM clock) + $6
             FROM cand WHERE i.instance_id = cand.instance_id
             RETURNING {cols}, i.lock_token)
         SELECT upd.*, (SELECT count(*) FROM held), 0::bigint, (SELECT now FROM clock),
                (SELECT json_agg(json_build_array(m.seq, m.execution_id, m.event) ORDER BY m.seq)::text
                 FROM (SELECT seq, execution_id, event FROM inbox
                       WHERE instance_id = (SELECT instance_id FROM upd)
                         AND visible_at <= (SELECT now FROM clock)
                       ORDER BY seq LIMIT $7) m)
         FROM (SELECT 1) AS one LEFT JOIN upd ON true",
        clock = clock(false),
        filter = filter_sql("name", "version", 4),
        cols = returning_instance("i"),
    );
    let stmt = c
        .prepare_cached(&sql)
        .await
        .map_err(|e| backend("taking an instance for a result", e))?;
    let row = c
        .query_one(
            &stmt,
            &[
                &token,
                &id,
                &RuntimeStatus::Running.code(),
                &mode,
                &json,
                lease,
                max,
            ],
        )
        .await
        .map_err(|e| backend("taking an instance for a result", e))?;
    if row.get::<_, i64>(N + 1) == 0 {
        return Err(StoreError::LockLost("activity task".into()));
    }
    if row.get::<_, Option<String>>(0).is_none() {
        return Ok(None);
    }
    item_of_row(&row).map(Some)
}

/// A turn's lease check, history, consumed messages and new tasks in one
/// statement; messages to instances are the caller's (in the same
/// transaction, when there are any). Returns whether the lease held, and
/// the database time.
///
/// With `unleased` (the instance's last update, ms, as the turn saw it) the
/// statement checks, instead of the lease, that the instance is free,
/// running, unchanged and has no visible message
/// ([`perdure_store::OrchestrationQueue::commit_unleased`]).
pub(crate) async fn commit_turn<C: GenericClient + Sync>(
    c: &C,
    k: &OrchestrationCommit,
    w: &mut Woken,
    unleased: Option<i64>,
) -> Result<(bool, i64), StoreError> {
    let guard = match unleased {
        None => Guard::Lease,
        Some(last) => Guard::Unleased(last),
    };
    commit_guarded(c, k, w, guard).await
}

/// What a turn's statement checks before it applies.
#[derive(Clone, Copy)]
pub(crate) enum Guard {
    /// The commit's lease and history length.
    Lease,
    /// No lease: the instance free, running, unchanged since this update
    /// (ms) and without a visible message.
    Unleased(i64),
    /// A new instance's first turn
    /// ([`perdure_store::OrchestrationQueue::create_with_first_turn`]): the
    /// row is inserted with the turn's state, unless the id is taken.
    New,
}

/// [`commit_turn`] under any [`Guard`]: whether it applied, and the
/// database time.
pub(crate) async fn commit_guarded<C: GenericClient + Sync>(
    c: &C,
    k: &OrchestrationCommit,
    w: &mut Woken,
    guard: Guard,
) -> Result<(bool, i64), StoreError> {
    let unleased = match guard {
        Guard::Unleased(last) => Some(last),
        Guard::Lease | Guard::New => None,
    };
    let base = if k.replace_history {
        0
    } else {
        k.expected_history_len
    };
    // The turn's events in one row, keyed by the first one's position (as
    // SQLite keeps them): one insert per turn, not one per event.
    let events: Option<String> =
        (!k.history.is_empty()).then(|| perdure_core::encode_events(&k.history));
    let a = &k.activities;
    let iids: Vec<&str> = a.iter().map(|x| x.instance_id.as_str()).collect();
    let eids: Vec<&str> = a.iter().map(|x| x.execution_id.as_str()).collect();
    let tids: Vec<i64> = a.iter().map(|x| x.task_id).collect();
    let names: Vec<&str> = a.iter().map(|x| x.name.as_str()).collect();
    let versions: Vec<Option<&str>> = a.iter().map(|x| x.version.as_deref()).collect();
    let inputs: Vec<Option<&str>> = a.iter().map(|x| x.input.as_deref()).collect();
    let traces: Vec<Option<String>> = a.iter().map(|x| encode_trace(&x.trace_context)).collect();
    let tokens: Vec<Option<&str>> = (0..a.len())
        .map(|i| k.claims.tokens.get(i).map(String::as_str))
        .collect();
    if tokens.iter().any(Option::is_none) {
        w.activities_now = true;
    }
    let claim_lease = i64::try_from(k.claims.lease.as_millis()).unwrap_or(i64::MAX / 4);
    let check = match guard {
        Guard::Lease | Guard::New => "lock_token = $13 AND lock_expiry > (SELECT now FROM clock) AND ($14 OR history_len = $15)"
            .to_string(),
        Guard::Unleased(_) => format!(
            "updated_at = $13 AND lock_expiry <= (SELECT now FROM clock) AND NOT $14
               AND history_len = $15 AND status = {}
               AND NOT EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = $1
                               AND m.visible_at <= (SELECT now FROM clock))",
            RuntimeStatus::Running.code()
        ),
    };
    let head = match guard {
        Guard::Lease | Guard::Unleased(_) => format!(
            "UPDATE instances SET name = $2, version = $3, status = $4, execution_id = $5, input = $6,
                 output = $7, failure = $8, custom_status = $9, parent_instance_id = $10, updated_at = $11,
                 history_len = $12, lock_token = NULL, lock_expiry = 0, tags = $28
             WHERE instance_id = $1 AND {check}
             RETURNING instance_id"
        ),
        // The first turn's own checks hold by construction (a token, no
        // replace, an empty history); the row is the turn's state.
        Guard::New => "INSERT INTO instances (instance_id, name, version, status, execution_id, input, output,
                                    failure, custom_status, parent_instance_id, created_at, updated_at,
                                    history_len, lock_token, lock_expiry, tags)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, NULL, 0, $28
             WHERE $13::text IS NOT NULL AND NOT $14 AND $15::bigint = 0
             ON CONFLICT (instance_id) DO NOTHING
             RETURNING instance_id"
            .to_string(),
    };
    let stmt = c
        .prepare_cached(&format!(
            "WITH {clock},
             upd AS ({head}),
             hist AS (
                 INSERT INTO history (instance_id, seq, event)
                 SELECT $1, $16, $17 WHERE $17::text IS NOT NULL AND EXISTS (SELECT 1 FROM upd)),
             consumed AS (
                 DELETE FROM inbox WHERE seq = ANY($18) AND EXISTS (SELECT 1 FROM upd)),
             carried AS (
                 DELETE FROM tasks WHERE lock_token = ANY($29) AND EXISTS (SELECT 1 FROM upd)),
             tasks AS (
                 INSERT INTO tasks (instance_id, execution_id, task_id, name, version, input, visible_at,
                                    lock_token, lock_expiry, dequeue_count, trace)
                 SELECT t.i, t.e, t.k, t.n, t.v, t.p, (SELECT now FROM clock), t.l,
                        CASE WHEN t.l IS NULL THEN 0 ELSE (SELECT now FROM clock) + $26 END,
                        CASE WHEN t.l IS NULL THEN 0 ELSE 1 END, t.tr
                 FROM unnest($19::text[], $20::text[], $21::bigint[], $22::text[], $23::text[], $24::text[],
                             $25::text[], $27::text[]) AS t(i, e, k, n, v, p, l, tr)
                 WHERE EXISTS (SELECT 1 FROM upd))
             SELECT (SELECT count(*) FROM upd), (SELECT now FROM clock),
                    EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = $1
                            AND m.visible_at <= (SELECT now FROM clock) AND NOT (m.seq = ANY($18)))",
            clock = clock(false),
            head = head,
        ))
        .await
        .map_err(|e| backend("committing a turn", e))?;
    let u = &k.update;
    let last = unleased.unwrap_or_default();
    let holder: &(dyn tokio_postgres::types::ToSql + Sync) = match unleased {
        None => &k.lock_token,
        Some(_) => &last,
    };
    let row = c
        .query_one(
            &stmt,
            &[
                &k.instance_id,
                &u.name,
                &u.version,
                &u.status.code(),
                &u.execution_id,
                &u.input.as_deref(),
                &u.output.as_deref(),
                &failure_text(&u.failure),
                &u.custom_status.as_deref(),
                &u.parent_instance_id,
                &k.now.timestamp_millis(),
                &((base + k.history.len() as u64) as i64),
                holder,
                &k.replace_history,
                &(k.expected_history_len as i64),
                &(base as i64),
                &events,
                &k.consumed,
                &iids,
                &eids,
                &tids,
                &names,
                &versions,
                &inputs,
                &tokens,
                &claim_lease,
                &traces,
                &tags_text(&u.tags),
                &k.completed_tasks,
            ],
        )
        .await
        .map_err(|e| backend("committing a turn", e))?;
    let held = row.get::<_, i64>(0) > 0;
    // Messages that arrived while the turn held the lease were not taken
    // when they woke the dispatchers (the instance was leased): with the
    // lease given back, wake them again, or the messages wait for the
    // safety poll.
    if held && row.get::<_, bool>(2) {
        w.orchestrations_now = true;
    }
    Ok((held, row.get(1)))
}
