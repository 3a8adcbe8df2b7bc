//! The SQL of each store operation, each run inside one transaction.

use crate::{backend, Woken};
use deadpool_postgres::Transaction;
use perdure_core::{encode_event, FailureDetails, HistoryEvent, RuntimeStatus};
use perdure_store::*;
use tokio_postgres::{GenericClient, Row};

const NOW: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The database clock, for transactions that only take or extend a lease:
/// they commit without waiting for the WAL flush. Losing one in a server
/// crash only loses the lease (the work is taken again), and a worker whose
/// lease vanished cannot commit its result, so nothing else can go wrong.
pub(crate) async fn now_lease_only(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    // The transaction's statements are planned for their parameters: a
    // take (ORDER BY .. LIMIT n over a queue) cached generically while the
    // table was empty sorted the whole queue at every take.
    let stmt = tx
        .prepare_cached(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, set_config('synchronous_commit', 'off', true),
                    set_config('plan_cache_mode', 'force_custom_plan', true)",
        )
        .await
        .map_err(|e| backend("reading the clock", e))?;
    Ok(tx
        .query_one(&stmt, &[])
        .await
        .map_err(|e| backend("reading the clock", e))?
        .get(0))
}

/// The database clock (the transaction's cached statement).
pub(crate) async fn now(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    let stmt = tx
        .prepare_cached(NOW)
        .await
        .map_err(|e| backend("reading the clock", e))?;
    Ok(tx
        .query_one(&stmt, &[])
        .await
        .map_err(|e| backend("reading the clock", e))?
        .get(0))
}

fn ts(ms: i64) -> perdure_core::Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A payload column: its text, moved into a shared payload.
pub(crate) fn text(r: &Row, i: usize) -> perdure_core::Payload {
    r.get::<_, Option<String>>(i)
        .map(perdure_core::PayloadText::from)
}

pub(crate) fn failure_text(f: &Option<FailureDetails>) -> Option<String> {
    f.as_ref().and_then(|f| serde_json::to_string(f).ok())
}

pub(crate) const INSTANCE_COLS: &str = "instance_id, name, version, status, execution_id, input, output, failure, custom_status, created_at, updated_at, parent_instance_id, history_len, tags";

/// How many columns [`INSTANCE_COLS`] names: statements that return more
/// after them read those from this index on.
pub(crate) const INSTANCE_COL_COUNT: usize = 14;

pub(crate) fn record(r: &Row) -> Result<InstanceRecord, StoreError> {
    let id: String = r.get(0);
    let code: i32 = r.get(3);
    let failure: Option<String> = r.get(7);
    Ok(InstanceRecord {
        status: RuntimeStatus::from_code(code).ok_or_else(|| {
            StoreError::Corrupt(format!("instance `{id}` has status code {code}"))
        })?,
        failure: failure
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::Corrupt(format!("failure details of `{id}`: {e}")))
            })
            .transpose()?,
        instance_id: id,
        name: r.get(1),
        version: r.get(2),
        execution_id: r.get(4),
        input: text(r, 5),
        output: text(r, 6),
        custom_status: text(r, 8),
        created_at: ts(r.get(9)),
        updated_at: ts(r.get(10)),
        parent_instance_id: r.get(11),
        history_len: r.get::<_, i64>(12) as u64,
        tags: parse_tags(r.get::<_, Option<&str>>(13))?,
    })
}

/// Reads an instance with the connection's cached statement (a status
/// poll is parsed once per connection, not at every call).
pub(crate) async fn get_instance<C: deadpool_postgres::GenericClient + Sync>(
    c: &C,
    id: &str,
) -> Result<Option<InstanceRecord>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = $1"
        ))
        .await
        .map_err(|e| backend("reading an instance", e))?;
    c.query_opt(&stmt, &[&id])
        .await
        .map_err(|e| backend("reading an instance", e))?
        .map(|r| record(&r))
        .transpose()
}

pub(crate) async fn read_history<C: deadpool_postgres::GenericClient + Sync>(
    c: &C,
    id: &str,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT event FROM history WHERE instance_id = $1 ORDER BY seq")
        .await
        .map_err(|e| backend("reading history", e))?;
    let rows = c
        .query(&stmt, &[&id])
        .await
        .map_err(|e| backend("reading history", e))?;
    // A row holds one event, or a turn's run of them.
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.extend(perdure_core::decode_events(r.get(0))?);
    }
    Ok(out)
}

pub(crate) async fn pending_times(tx: &Transaction<'_>) -> Result<Woken, StoreError> {
    let now = now(tx).await?;
    let times = |sql: &'static str| async move {
        let rows = tx
            .query(sql, &[&now])
            .await
            .map_err(|e| backend("scanning due times", e))?;
        Ok::<Vec<i64>, StoreError>(
            rows.iter()
                .filter_map(|r| r.get::<_, Option<i64>>(0))
                .collect(),
        )
    };
    let mut orch = times("SELECT DISTINCT visible_at FROM inbox WHERE visible_at > $1").await?;
    orch.extend(times("SELECT MIN(lock_expiry) FROM instances WHERE lock_expiry > $1").await?);
    let mut act = times("SELECT DISTINCT visible_at FROM tasks WHERE visible_at > $1").await?;
    act.extend(times("SELECT MIN(lock_expiry) FROM tasks WHERE lock_expiry > $1").await?);
    Ok(Woken {
        orchestrations_later: orch,
        activities_later: act,
        ..Woken::default()
    })
}

async fn insert_messages(
    tx: &Transaction<'_>,
    msgs: &[InstanceMessage],
    now: i64,
    w: &mut Woken,
) -> Result<(), StoreError> {
    if msgs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = msgs.iter().map(|m| m.instance_id.as_str()).collect();
    let execs: Vec<Option<&str>> = msgs.iter().map(|m| m.execution_id.as_deref()).collect();
    let events: Vec<String> = msgs.iter().map(|m| encode_event(&m.event)).collect();
    let visible: Vec<i64> = msgs
        .iter()
        .map(|m| ceil_millis(m.visible_at).max(0))
        .collect();
    let control: Vec<bool> = msgs.iter().map(|m| is_control(&m.event)).collect();
    let stmt = tx
        .prepare_cached(
            // ORDER BY the array position: sequence numbers (the inbox
            // order) must follow the order the messages were sent in, which
            // a semi-join alone does not keep.
            "INSERT INTO inbox (instance_id, execution_id, event, visible_at, control)
             SELECT t.iid, t.eid, t.ev, t.vis, t.ctl
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
                  WITH ORDINALITY AS t(iid, eid, ev, vis, ctl, ord)
             WHERE EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = t.iid)
             ORDER BY t.ord",
        )
        .await
        .map_err(|e| backend("enqueueing messages", e))?;
    tx.execute(&stmt, &[&ids, &execs, &events, &visible, &control])
        .await
        .map_err(|e| backend("enqueueing messages", e))?;
    for v in visible {
        w.orchestration_message(v, now);
    }
    Ok(())
}

async fn insert_instance(
    tx: &Transaction<'_>,
    id: &str,
    new: &ImplicitInstance,
    created: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT INTO instances (instance_id, name, version, status, execution_id, input, created_at, updated_at, parent_instance_id, tags)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) ON CONFLICT (instance_id) DO NOTHING",
            &[&id, &new.name, &new.version, &RuntimeStatus::Pending.code(), &new.execution_id, &new.input.as_deref(), &created,
              &new.parent_instance_id, &tags_text(&new.tags)],
        )
        .await
        .map_err(|e| backend("creating an instance", e))?;
    Ok(n == 1)
}

pub(crate) async fn create_instance(
    tx: &Transaction<'_>,
    req: CreateInstance,
) -> Result<Woken, StoreError> {
    let now = now(tx).await?;
    let existing = tx
        .query_opt(
            "SELECT status, execution_id FROM instances WHERE instance_id = $1 FOR UPDATE",
            &[&req.instance_id],
        )
        .await
        .map_err(|e| backend("looking up an instance", e))?;
    if let Some(row) = existing {
        let code: i32 = row.get(0);
        let execution_id: String = row.get(1);
        let status = RuntimeStatus::from_code(code)
            .ok_or_else(|| StoreError::Corrupt(format!("status code {code}")))?;
        // Finished, but about to run again (a rewind or a parent's new
        // start waits): not replaced.
        if status.is_terminal() && revive_waiting(tx, &req.instance_id, &execution_id).await? {
            return Err(StoreError::AlreadyExists {
                id: req.instance_id,
                status: RuntimeStatus::Running,
            });
        }
        if !status.is_terminal() {
            return Err(StoreError::AlreadyExists {
                id: req.instance_id,
                status,
            });
        }
        for table in ["history", "inbox", "tasks", "instances"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE instance_id = $1"),
                &[&req.instance_id],
            )
            .await
            .map_err(|e| backend("replacing a finished instance", e))?;
        }
    }
    // Created by the database's clock, like every turn after it.
    let created = now;
    let new = req.row();
    if !insert_instance(tx, &req.instance_id, &new, created).await? {
        // Created by someone else since we looked.
        return Err(StoreError::AlreadyExists {
            id: req.instance_id,
            status: RuntimeStatus::Pending,
        });
    }
    let mut w = Woken::default();
    let msg = InstanceMessage {
        instance_id: req.instance_id.clone(),
        execution_id: Some(req.execution_id.clone()),
        event: req.start_event,
        visible_at: req.visible_at,
    };
    insert_messages(tx, &[msg], now, &mut w).await?;
    Ok(w)
}

/// Creates the instance a message brings into being (if it is not there).
async fn insert_implicit(
    tx: &Transaction<'_>,
    id: &str,
    new: &ImplicitInstance,
    now: i64,
) -> Result<bool, StoreError> {
    insert_instance(tx, id, new, now).await
}

/// Makes sure the entity's row exists and holds a share lock on it until
/// the transaction ends, so that a purge of the (empty) entity either waits
/// for the message to be committed and sees it, or finishes first and the
/// row is created again here.
async fn lock_entity_row(tx: &Transaction<'_>, id: &str, now: i64) -> Result<(), StoreError> {
    let name = perdure_core::EntityId::parse(id)
        .map(|e| e.instance_name())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let new = ImplicitInstance {
        name,
        version: None,
        execution_id: String::new(),
        input: None,
        parent_instance_id: None,
        tags: Default::default(),
    };
    for _ in 0..5 {
        insert_instance(tx, id, &new, now).await?;
        let locked = tx
            .query_opt(
                "SELECT 1 FROM instances WHERE instance_id = $1 FOR SHARE",
                &[&id],
            )
            .await
            .map_err(|e| backend("locking an entity", e))?;
        if locked.is_some() {
            return Ok(());
        }
    }
    Err(StoreError::Backend(format!(
        "entity `{id}` kept disappearing while a message was sent to it"
    )))
}

pub(crate) async fn send_message(
    tx: &Transaction<'_>,
    m: InstanceMessage,
) -> Result<Woken, StoreError> {
    let now = now(tx).await?;
    if perdure_core::is_entity_instance(&m.instance_id) {
        lock_entity_row(tx, &m.instance_id, now).await?;
        let mut w = Woken::default();
        insert_messages(tx, &[m], now, &mut w).await?;
        return Ok(w);
    }
    let exists = tx
        .query_opt(
            "SELECT 1 FROM instances WHERE instance_id = $1",
            &[&m.instance_id],
        )
        .await
        .map_err(|e| backend("looking up an instance", e))?;
    if exists.is_none() {
        let Some(new) = implicit_instance(&m) else {
            return Err(StoreError::NotFound(m.instance_id));
        };
        insert_implicit(tx, &m.instance_id, &new, now).await?;
    }
    let mut w = Woken::default();
    insert_messages(tx, &[m], now, &mut w).await?;
    Ok(w)
}

/// The SQL condition for [`WorkFilter`] on a name and a version column,
/// with the filter's mode and JSON in parameters `${p}` and `${p+1}`.
pub(crate) fn filter_sql(name: &str, version: &str, p: usize) -> String {
    let (m, j) = (p, p + 1);
    format!(
        "(${m}::int = 0
          OR (${m}::int = 1 AND EXISTS (SELECT 1 FROM jsonb_array_elements(${j}::text::jsonb) f
                WHERE lower(f->>'n') = lower({name})
                  AND (jsonb_array_length(f->'v') = 0 OR (f->'v') ? COALESCE({version}, ''))))
          OR (${m}::int = 2 AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(${j}::text::jsonb) f
                WHERE lower(f->>'n') = lower({name}))))"
    )
}

/// Why a turn's guarded update changed nothing: the lease, or the history.
pub(crate) async fn lease_or_history_error<C: deadpool_postgres::GenericClient + Sync>(
    c: &C,
    instance_id: &str,
    lock_token: &str,
    expected_history_len: u64,
) -> StoreError {
    let row = c
        .query_opt(
            &format!("SELECT lock_token, lock_expiry, history_len, ({}) FROM instances WHERE instance_id = $1", &NOW["SELECT ".len()..]),
            &[&instance_id],
        )
        .await;
    match row {
        Err(e) => backend("checking a lease", e),
        Ok(None) => StoreError::NotFound(instance_id.to_string()),
        Ok(Some(r)) => {
            let (token, expiry, len, now): (Option<String>, i64, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if token.as_deref() != Some(lock_token) || expiry <= now {
                StoreError::LockLost(format!("instance `{instance_id}`"))
            } else {
                StoreError::HistoryConflict {
                    id: instance_id.to_string(),
                    expected: expected_history_len,
                    actual: len as u64,
                }
            }
        }
    }
}

async fn check_lock(
    tx: &Transaction<'_>,
    id: &str,
    token: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let row = tx
        .query_opt("SELECT lock_token, lock_expiry, history_len FROM instances WHERE instance_id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(|e| backend("checking a lease", e))?;
    match row {
        None => Err(StoreError::NotFound(id.to_string())),
        Some(r) => {
            let (t, exp, len): (Option<String>, i64, i64) = (r.get(0), r.get(1), r.get(2));
            if t.as_deref() == Some(token) && exp > now {
                Ok(len as u64)
            } else {
                Err(StoreError::LockLost(format!("instance `{id}`")))
            }
        }
    }
}

/// Creates instance `k.instance_id` with its first turn, when the turn
/// sends messages to instances: the row leased to the commit, then the
/// turn as [`commit_orchestration`] applies a leased one. The commit back,
/// nothing written, when the id is taken.
pub(crate) async fn create_with_first_turn(
    tx: &Transaction<'_>,
    k: OrchestrationCommit,
) -> Result<Result<Woken, Box<OrchestrationCommit>>, StoreError> {
    let inserted = tx
        .execute(
            "INSERT INTO instances (instance_id, name, status, execution_id, created_at, updated_at,
                                    lock_token, lock_expiry)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
             ON CONFLICT (instance_id) DO NOTHING",
            &[
                &k.instance_id,
                &k.update.name,
                &RuntimeStatus::Pending.code(),
                &k.update.execution_id,
                &k.now.timestamp_millis(),
                &k.lock_token,
                &i64::MAX,
            ],
        )
        .await
        .map_err(|e| backend("creating an instance", e))?;
    if inserted == 0 {
        return Ok(Err(Box::new(k)));
    }
    match commit_orchestration(tx, k, None).await? {
        Some(w) => Ok(Ok(w)),
        None => Err(StoreError::Backend(
            "a new instance's first turn was refused".into(),
        )),
    }
}

/// A turn with messages to instances, or one that replaces the history:
/// [`crate::fast::commit_turn`] and the messages in one transaction.
/// With `unleased` see [`crate::fast::commit_turn`]: `None`, with nothing
/// written, when its check fails.
pub(crate) async fn commit_orchestration(
    tx: &Transaction<'_>,
    k: OrchestrationCommit,
    unleased: Option<i64>,
) -> Result<Option<Woken>, StoreError> {
    if unleased.is_some() && k.replace_history {
        return Ok(None); // a new execution is never an unleased turn
    }
    if k.replace_history {
        let now = now(tx).await?;
        check_lock(tx, &k.instance_id, &k.lock_token, now).await?;
        tx.execute(
            "DELETE FROM history WHERE instance_id = $1",
            &[&k.instance_id],
        )
        .await
        .map_err(|e| backend("dropping history", e))?;
    }
    let mut w = Woken::default();
    let (held, now) = crate::fast::commit_turn(tx, &k, &mut w, unleased).await?;
    if !held && unleased.is_some() {
        return Ok(None);
    }
    if !held {
        return Err(lease_or_history_error(
            tx,
            &k.instance_id,
            &k.lock_token,
            k.expected_history_len,
        )
        .await);
    }
    for m in &k.messages {
        if perdure_core::is_entity_instance(&m.instance_id) {
            lock_entity_row(tx, &m.instance_id, k.now.timestamp_millis()).await?;
        } else if let Some(new) = implicit_instance(m) {
            insert_implicit(tx, &m.instance_id, &new, k.now.timestamp_millis()).await?;
        }
    }
    insert_messages(tx, &k.messages, now, &mut w).await?;
    Ok(Some(w))
}

pub(crate) async fn renew_orchestration(
    tx: &Transaction<'_>,
    id: String,
    token: String,
    lease: i64,
) -> Result<(), StoreError> {
    let now = now_lease_only(tx).await?;
    check_lock(tx, &id, &token, now).await?;
    tx.execute(
        "UPDATE instances SET lock_expiry = $2 WHERE instance_id = $1",
        &[&id, &(now + lease)],
    )
    .await
    .map_err(|e| backend("renewing a lease", e))?;
    Ok(())
}

pub(crate) async fn abandon_orchestration(
    tx: &Transaction<'_>,
    id: String,
    token: String,
    after: i64,
) -> Result<Woken, StoreError> {
    let now = now(tx).await?;
    check_lock(tx, &id, &token, now).await?;
    let until = if after > 0 { now + after } else { 0 };
    tx.execute(
        "UPDATE instances SET lock_token = NULL, lock_expiry = $2 WHERE instance_id = $1",
        &[&id, &until],
    )
    .await
    .map_err(|e| backend("abandoning work", e))?;
    let mut w = Woken::default();
    if after > 0 {
        w.orchestrations_later.push(until);
    } else {
        w.orchestrations_now = true;
    }
    Ok(w)
}

pub(crate) async fn list_instances<C: GenericClient + Sync>(
    c: &C,
    q: &InstanceQuery,
) -> Result<InstancePage, StoreError> {
    let after = q
        .continuation
        .as_deref()
        .map(decode_continuation)
        .transpose()?;
    let codes: Vec<i32> = q.statuses.iter().map(|s| s.code()).collect();
    let from = q.created_from.map(|t| t.timestamp_millis());
    let to = q.created_to.map(|t| t.timestamp_millis());
    let prefix = q.instance_id_prefix.as_deref().map(|p| {
        format!(
            "{}%",
            p.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let (after_ms, after_id) = match &after {
        Some((ms, id)) => (Some(*ms), Some(id.as_str())),
        None => (None, None),
    };
    let size = q.page_size.max(1) as i64;
    let rows = c
        .query(
            &format!(
                "SELECT {INSTANCE_COLS} FROM instances
                 WHERE (cardinality($1::int[]) = 0 OR status = ANY($1))
                   AND ($2::bigint IS NULL OR created_at >= $2) AND ($3::bigint IS NULL OR created_at <= $3)
                   AND ($4::text IS NULL OR instance_id LIKE $4) AND ($5::text IS NULL OR parent_instance_id = $5)
                   AND ($6::bigint IS NULL OR (created_at, instance_id) > ($6, $7::text))
                   AND ($9::text IS NULL OR name = $9)
                 ORDER BY created_at, instance_id LIMIT $8"
            ),
            &[&codes, &from, &to, &prefix, &q.parent_instance_id, &after_ms, &after_id, &(size + 1), &q.name],
        )
        .await
        .map_err(|e| backend("listing instances", e))?;
    let mut instances = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    let more = instances.len() as i64 > size;
    instances.truncate(size as usize);
    let continuation = if more {
        instances.last().map(encode_continuation)
    } else {
        None
    };
    Ok(InstancePage {
        instances,
        continuation,
    })
}

/// True if a message that runs finished instance `id` again waits in its
/// inbox (see [`perdure_store::revives`]).
async fn revive_waiting(
    tx: &Transaction<'_>,
    id: &str,
    execution_id: &str,
) -> Result<bool, StoreError> {
    let rows = tx
        .query(
            "SELECT event, execution_id FROM inbox WHERE instance_id = $1",
            &[&id],
        )
        .await
        .map_err(|e| backend("reading an inbox", e))?;
    for r in rows {
        let tag: Option<String> = r.get(1);
        let event = perdure_core::decode_event(r.get(0))?;
        if perdure_store::revives(&event, tag.as_deref(), execution_id) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) async fn purge_instance(tx: &Transaction<'_>, id: String) -> Result<bool, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT status, execution_id FROM instances WHERE instance_id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(|e| backend("purging an instance", e))?
    else {
        return Ok(false);
    };
    let code: i32 = row.get(0);
    let execution_id: String = row.get(1);
    let status = RuntimeStatus::from_code(code)
        .ok_or_else(|| StoreError::Corrupt(format!("status code {code}")))?;
    if !status.is_terminal() {
        return Err(StoreError::NotFinished { id, status });
    }
    // An entity with requests waiting is not finished: they would be lost.
    // The row lock above waited for any transaction that was sending it a
    // message (those hold a share lock on the row, see `lock_entity_row`);
    // this statement's fresh snapshot sees what they committed.
    // Nor is an orchestration with a rewind or a new start waiting.
    let waiting = if perdure_core::is_entity_instance(&id) {
        tx.query_opt("SELECT 1 FROM inbox WHERE instance_id = $1 LIMIT 1", &[&id])
            .await
            .map_err(|e| backend("purging an instance", e))?
            .is_some()
    } else {
        revive_waiting(tx, &id, &execution_id).await?
    };
    if waiting {
        return Err(StoreError::NotFinished {
            id,
            status: RuntimeStatus::Running,
        });
    }
    for table in ["history", "inbox", "tasks", "instances"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE instance_id = $1"),
            &[&id],
        )
        .await
        .map_err(|e| backend("purging an instance", e))?;
    }
    Ok(true)
}

/// Counts the queues now, by the database's clock (see
/// [`perdure_store::QueueDepths`]).
pub(crate) async fn queue_depths(
    c: &impl deadpool_postgres::GenericClient,
) -> Result<perdure_store::QueueDepths, StoreError> {
    let row = c
        .query_one(
            r#"WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t)
            SELECT
              (SELECT count(*) FROM inbox, now WHERE visible_at <= now.t),
              (SELECT count(*) FROM inbox, now WHERE visible_at > now.t),
              (SELECT count(*) FROM inbox, now WHERE visible_at <= now.t AND substr(event, strpos(event, '"type":"'), 20) = '"type":"TimerFired",'),
              (SELECT count(*) FROM inbox m JOIN instances i ON i.instance_id = m.instance_id, now
                 WHERE m.visible_at > now.t AND substr(m.event, strpos(m.event, '"type":"'), 20) = '"type":"TimerFired",'
                   AND i.status = ANY($1) AND (m.execution_id IS NULL OR m.execution_id = i.execution_id)),
              (SELECT count(*) FROM tasks, now WHERE visible_at <= now.t AND lock_expiry <= now.t),
              (SELECT count(*) FROM tasks, now WHERE lock_expiry > now.t),
              (SELECT count(*) FROM tasks, now WHERE visible_at > now.t AND lock_expiry <= now.t)"#,
            // A timer counts as scheduled while its execution may still
            // take it: not one of an ended instance or an earlier execution.
            &[&[
                RuntimeStatus::Running,
                RuntimeStatus::Pending,
                RuntimeStatus::Suspended,
            ]
            .map(RuntimeStatus::code)
            .to_vec()],
        )
        .await
        .map_err(|e| backend("counting the queues", e))?;
    let n = |i: usize| row.try_get::<_, i64>(i).map(|v| v.max(0) as u64);
    let get = || -> Result<perdure_store::QueueDepths, tokio_postgres::Error> {
        Ok(perdure_store::QueueDepths {
            messages_ready: n(0)?,
            messages_scheduled: n(1)?,
            timers_due: n(2)?,
            timers_scheduled: n(3)?,
            activities_ready: n(4)?,
            activities_running: n(5)?,
            activities_delayed: n(6)?,
        })
    };
    get().map_err(|e| backend("counting the queues", e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_instance_column_count_matches_the_list() {
        assert_eq!(
            super::INSTANCE_COLS.split(", ").count(),
            super::INSTANCE_COL_COUNT
        );
    }
}
