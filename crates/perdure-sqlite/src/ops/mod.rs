//! The SQL of each store operation. Every function runs inside the writer's
//! transaction (or on a read connection) and is all-or-nothing there.

use crate::{backend, Woken};
use perdure_core::{
    decode_event, decode_events, encode_event, FailureDetails, HistoryEvent, RuntimeStatus,
};
use perdure_store::*;
use rusqlite::{params, Connection, OptionalExtension, Row};

mod activities;
mod instances;
pub(crate) use activities::*;
pub(crate) use instances::*;

/// Runs a statement through the connection's statement cache.
/// A payload column: its text, moved into a shared payload.
pub(crate) fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<perdure_core::Payload> {
    Ok(r.get::<_, Option<String>>(i)?
        .map(perdure_core::PayloadText::from))
}

fn exec_cached<P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

fn ts(ms: i64) -> perdure_core::Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn failure_text(f: &Option<FailureDetails>) -> Option<String> {
    f.as_ref().and_then(|f| serde_json::to_string(f).ok())
}

const INSTANCE_COLS: &str = "instance_id, name, version, status, execution_id, input, output, failure, custom_status, created_at, updated_at, parent_instance_id, history_len, tags";

/// An instance row as read: the record, and the columns still to decode
/// (failure details, status code, tags).
type RawInstance = (InstanceRecord, Option<String>, i64, Option<String>);

fn instance_row(r: &Row) -> rusqlite::Result<RawInstance> {
    let status: i64 = r.get(3)?;
    let failure: Option<String> = r.get(7)?;
    let tags: Option<String> = r.get(13)?;
    Ok((
        InstanceRecord {
            instance_id: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            status: RuntimeStatus::Running,
            execution_id: r.get(4)?,
            input: text(r, 5)?,
            output: text(r, 6)?,
            failure: None,
            custom_status: text(r, 8)?,
            created_at: ts(r.get(9)?),
            updated_at: ts(r.get(10)?),
            parent_instance_id: r.get(11)?,
            history_len: r.get::<_, i64>(12)? as u64,
            tags: Default::default(),
        },
        failure,
        status,
        tags,
    ))
}

fn finish_record(
    (mut rec, failure, status, tags): RawInstance,
) -> Result<InstanceRecord, StoreError> {
    rec.tags = parse_tags(tags.as_deref())?;
    rec.status = RuntimeStatus::from_code(status as i32).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "instance `{}` has status code {status}",
            rec.instance_id
        ))
    })?;
    rec.failure = match failure {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            StoreError::Corrupt(format!("failure details of `{}`: {e}", rec.instance_id))
        })?),
        None => None,
    };
    Ok(rec)
}

pub(crate) fn get_instance(c: &Connection, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql =
        SQL.get_or_init(|| format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = ?1"));
    let row = c
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row([id], instance_row).optional())
        .map_err(|e| backend("reading an instance", e))?;
    row.map(finish_record).transpose()
}

pub(crate) fn read_history(c: &Connection, id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut stmt = c
        .prepare_cached("SELECT event FROM history WHERE instance_id = ?1 ORDER BY seq")
        .map_err(|e| backend("reading history", e))?;
    let rows = stmt
        .query_map([id], |r| r.get::<_, String>(0))
        .map_err(|e| backend("reading history", e))?;
    let mut out = Vec::new();
    for text in rows {
        out.extend(decode_events(
            &text.map_err(|e| backend("reading history", e))?,
        )?);
    }
    Ok(out)
}

/// Future visible times and lease expiries, to seed the wake-ups on open.
pub(crate) fn pending_times(c: &Connection, now: i64) -> Result<Woken, StoreError> {
    let collect = |sql: &str| -> Result<Vec<i64>, StoreError> {
        let mut stmt = c
            .prepare(sql)
            .map_err(|e| backend("scanning due times", e))?;
        let rows = stmt
            .query_map([now], |r| r.get::<_, Option<i64>>(0))
            .map_err(|e| backend("scanning due times", e))?;
        let mut v = Vec::new();
        for t in rows {
            if let Some(t) = t.map_err(|e| backend("scanning due times", e))? {
                v.push(t);
            }
        }
        Ok(v)
    };
    let mut orch = collect("SELECT DISTINCT visible_at FROM inbox WHERE visible_at > ?1")?;
    orch.extend(collect(
        "SELECT MIN(lock_expiry) FROM instances WHERE lock_expiry > ?1",
    )?);
    let mut act = collect("SELECT DISTINCT visible_at FROM tasks WHERE visible_at > ?1")?;
    act.extend(collect(
        "SELECT MIN(lock_expiry) FROM tasks WHERE lock_expiry > ?1",
    )?);
    Ok(Woken {
        orchestrations_later: orch,
        activities_later: act,
        ..Woken::default()
    })
}

fn insert_message(
    c: &Connection,
    m: &InstanceMessage,
    event: &str,
    w: &mut Woken,
    now: i64,
) -> Result<(), StoreError> {
    let visible = ceil_millis(m.visible_at);
    c.prepare_cached(
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at, control) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            m.instance_id,
            m.execution_id,
            event,
            visible,
            is_control(&m.event)
        ])
    })
    .map_err(|e| backend("enqueueing a message", e))?;
    w.orchestration_message(visible, now);
    Ok(())
}

pub(crate) fn exists(c: &Connection, id: &str) -> Result<bool, StoreError> {
    c.prepare_cached("SELECT 1 FROM instances WHERE instance_id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(|e| backend("looking up an instance", e))
}

fn insert_instance(
    c: &Connection,
    id: &str,
    new: &ImplicitInstance,
    now: i64,
) -> Result<(), StoreError> {
    exec_cached(c,
        "INSERT OR REPLACE INTO instances (instance_id, name, version, status, execution_id, input, output, failure, custom_status, created_at, updated_at, parent_instance_id, history_len, lock_token, lock_expiry, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, NULL, ?7, ?7, ?8, 0, NULL, 0, ?9)",
        params![id, new.name, new.version, RuntimeStatus::Pending.code(), new.execution_id, new.input.as_deref(), now,
            new.parent_instance_id, tags_text(&new.tags)],
    )
    .map_err(|e| backend("creating an instance", e))?;
    Ok(())
}

pub(crate) fn create_instance(
    c: &Connection,
    req: &CreateInstance,
    now: i64,
) -> Result<Woken, StoreError> {
    let existing: Option<(i64, String)> = c
        .prepare_cached("SELECT status, execution_id FROM instances WHERE instance_id = ?1")
        .and_then(|mut s| {
            s.query_row([&req.instance_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| backend("looking up an instance", e))?;
    if let Some((code, execution_id)) = existing {
        let status = RuntimeStatus::from_code(code as i32)
            .ok_or_else(|| StoreError::Corrupt(format!("status code {code}")))?;
        if !status.is_terminal() {
            return Err(StoreError::AlreadyExists {
                id: req.instance_id.clone(),
                status,
            });
        }
        // Finished, but about to run again (a rewind or a parent's new
        // start waits): not replaced.
        if revive_waiting(c, &req.instance_id, &execution_id)? {
            return Err(StoreError::AlreadyExists {
                id: req.instance_id.clone(),
                status: RuntimeStatus::Running,
            });
        }
        for table in ["history", "inbox", "tasks"] {
            exec_cached(
                c,
                &format!("DELETE FROM {table} WHERE instance_id = ?1"),
                [&req.instance_id],
            )
            .map_err(|e| backend("replacing a finished instance", e))?;
        }
    }
    let new = req.row();
    insert_instance(c, &req.instance_id, &new, now)?;
    let mut w = Woken::default();
    insert_message(
        c,
        &InstanceMessage {
            instance_id: req.instance_id.clone(),
            execution_id: Some(req.execution_id.clone()),
            event: req.start_event.clone(),
            visible_at: req.visible_at,
        },
        &encode_event(&req.start_event),
        &mut w,
        now,
    )?;
    Ok(w)
}

/// Creates instance `e.commit.instance_id` with its first turn
/// ([`perdure_store::OrchestrationQueue::create_with_first_turn`]): its row
/// as the turn leaves it, then the turn's other writes, in the same
/// transaction. `None`, nothing written, when the id is taken.
pub(crate) fn create_with_first_turn(
    c: &Connection,
    e: &EncodedCommit,
    now: i64,
) -> Result<Option<Woken>, StoreError> {
    let k = &e.commit;
    let u = &k.update;
    let at = k.now.timestamp_millis();
    let inserted = exec_cached(c,
        "INSERT INTO instances (instance_id, name, version, status, execution_id, input, output, failure, custom_status, created_at, updated_at, parent_instance_id, history_len, lock_token, lock_expiry, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, NULL, 0, ?13)
         ON CONFLICT (instance_id) DO NOTHING",
        params![k.instance_id, u.name, u.version, u.status.code(), u.execution_id, u.input.as_deref(), u.output.as_deref(),
            failure_text(&u.failure), u.custom_status.as_deref(), at, u.parent_instance_id, k.history.len() as i64,
            tags_text(&u.tags)],
    )
    .map_err(|e| backend("creating an instance", e))?;
    if inserted == 0 {
        return Ok(None);
    }
    apply_turn(c, e, 0, now).map(Some)
}

fn create_implicit(
    c: &Connection,
    id: &str,
    new: &ImplicitInstance,
    now: i64,
) -> Result<(), StoreError> {
    insert_instance(c, id, new, now)
}

pub(crate) fn send_message(
    c: &Connection,
    m: &InstanceMessage,
    now: i64,
) -> Result<Woken, StoreError> {
    if !exists(c, &m.instance_id)? {
        let Some(new) = implicit_instance(m) else {
            return Err(StoreError::NotFound(m.instance_id.clone()));
        };
        create_implicit(c, &m.instance_id, &new, now)?;
    }
    let mut w = Woken::default();
    insert_message(c, m, &encode_event(&m.event), &mut w, now)?;
    Ok(w)
}

/// The SQL condition for [`WorkFilter`] on a name and a version column,
/// with the filter's mode and JSON in parameters `?{p}` and `?{p+1}`.
fn filter_sql(name: &str, version: &str, p: usize) -> String {
    let (m, j) = (p, p + 1);
    format!(
        "(?{m} = 0
          OR (?{m} = 1 AND EXISTS (SELECT 1 FROM json_each(?{j}) f
                WHERE lower(json_extract(f.value, '$.n')) = lower({name})
                  AND (json_array_length(f.value, '$.v') = 0
                       OR EXISTS (SELECT 1 FROM json_each(f.value, '$.v') v
                                  WHERE v.value = COALESCE({version}, '')))))
          OR (?{m} = 2 AND NOT EXISTS (SELECT 1 FROM json_each(?{j}) f
                WHERE lower(json_extract(f.value, '$.n')) = lower({name}))))"
    )
}

/// Takes up to `max_items` instances with work, oldest work first: one
/// scan for candidates (the instances of the oldest visible messages), then
/// one lock-and-read per instance.
pub(crate) fn fetch_orchestrations(
    c: &Connection,
    lease: i64,
    max: usize,
    max_items: usize,
    filter: &WorkFilter,
    now: i64,
) -> Result<Vec<OrchestrationItem>, StoreError> {
    let (mode, json) = filter.to_sql();
    let sql = format!(
        "SELECT m.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
         WHERE m.visible_at <= ?1 AND i.lock_expiry <= ?1 AND (i.status != ?2 OR m.control = 1)
           AND {}
         ORDER BY m.visible_at, m.seq LIMIT ?5",
        filter_sql("i.name", "i.version", 3)
    );
    // Several messages may belong to one instance: look a little further.
    let scan = (max_items.max(1) * 4) as i64;
    let mut ids: Vec<String> = Vec::new();
    {
        let mut stmt = c
            .prepare_cached(&sql)
            .map_err(|e| backend("finding orchestration work", e))?;
        let rows = stmt
            .query_map(
                params![now, RuntimeStatus::Suspended.code(), mode, json, scan],
                |r| r.get::<_, String>(0),
            )
            .map_err(|e| backend("finding orchestration work", e))?;
        for id in rows {
            let id = id.map_err(|e| backend("finding orchestration work", e))?;
            if !ids.contains(&id) {
                ids.push(id);
                if ids.len() >= max_items.max(1) {
                    break;
                }
            }
        }
    }
    ids.iter()
        .map(|id| lock_and_read(c, id, now, lease, max))
        .collect()
}

/// Locks instance `id` for `lease` and reads its visible messages.
fn lock_and_read(
    c: &Connection,
    id: &str,
    now: i64,
    lease: i64,
    max: usize,
) -> Result<OrchestrationItem, StoreError> {
    let instance = get_instance(c, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let token = lock_instance(c, id, now + lease)?;
    read_inbox(c, id, now, max, instance, token)
}

/// Gives instance `id` a new lease until `expiry` and returns its token:
/// a single-row update by key, read beforehand rather than through
/// `RETURNING` (SQLite runs `RETURNING` as a trigger, which gives the
/// statement a journal of every page it touches).
fn lock_instance(c: &Connection, id: &str, expiry: i64) -> Result<String, StoreError> {
    let token = new_lock_token();
    exec_cached(
        c,
        "UPDATE instances SET lock_token = ?1, lock_expiry = ?2 WHERE instance_id = ?3",
        params![token, expiry, id],
    )
    .map_err(|e| backend("locking an instance", e))?;
    Ok(token)
}

/// The visible messages of instance `id` just locked under `token`.
fn read_inbox(
    c: &Connection,
    id: &str,
    now: i64,
    max: usize,
    instance: InstanceRecord,
    token: String,
) -> Result<OrchestrationItem, StoreError> {
    let only_control = instance.status == RuntimeStatus::Suspended;
    // While no execution runs, the one about to start comes first. A
    // running instance's messages come in sequence order straight from the
    // index: its statement has no sort (a temporary b-tree per turn).
    let no_execution = instance.history_len == 0;
    let row = |r: &rusqlite::Row| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
        ))
    };
    let read = |e| backend("reading an inbox", e);
    let rows: Vec<(i64, Option<String>, String)> = if no_execution {
        let mut stmt = c
            .prepare_cached(
                "SELECT seq, execution_id, event FROM inbox
                 WHERE instance_id = ?1 AND visible_at <= ?2 AND control >= ?4
                 ORDER BY (execution_id IS ?5) DESC, seq LIMIT ?3",
            )
            .map_err(read)?;
        let rows = stmt
            .query_map(
                params![id, now, max as i64, only_control, instance.execution_id],
                row,
            )
            .map_err(read)?;
        rows.collect::<Result<_, _>>().map_err(read)?
    } else {
        let mut stmt = c
            .prepare_cached(
                "SELECT seq, execution_id, event FROM inbox
                 WHERE instance_id = ?1 AND visible_at <= ?2 AND control >= ?4
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(read)?;
        let rows = stmt
            .query_map(params![id, now, max as i64, only_control], row)
            .map_err(read)?;
        rows.collect::<Result<_, _>>().map_err(read)?
    };
    let mut messages = Vec::with_capacity(rows.len());
    for (seq, execution_id, text) in rows {
        messages.push(InboxMessage {
            seq,
            execution_id,
            event: decode_event(&text)?,
        });
    }
    Ok(OrchestrationItem::new(instance, messages, token, now))
}

/// Takes running instance `id` for the result of a task still leased under
/// `task_token` that its worker carries into the turn (see
/// [`perdure_store::ActivityQueue::take_for_result`]): no live lease,
/// running, passes `filter`; its inbox may be empty.
pub(crate) fn take_for_result(
    c: &Connection,
    task_token: &str,
    id: &str,
    lease: i64,
    max: usize,
    filter: &WorkFilter,
    now: i64,
) -> Result<Option<OrchestrationItem>, StoreError> {
    locked_task(c, task_token, now)?;
    let (mode, json) = filter.to_sql();
    // The same text every time: built once (formatting it was 1% of a
    // step's instructions).
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {INSTANCE_COLS} FROM instances
             WHERE instance_id = ?1 AND lock_expiry <= ?2 AND status = ?3 AND history_len > 0 AND {}",
            filter_sql("name", "version", 4)
        )
    });
    let params = params![id, now, RuntimeStatus::Running.code(), mode, json];
    lease_if(c, sql, params, id, lease, max, now)
}

/// Leases instance `id` and reads its inbox when `sql` (parameters
/// `params`) finds its row.
fn lease_if(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    id: &str,
    lease: i64,
    max: usize,
    now: i64,
) -> Result<Option<OrchestrationItem>, StoreError> {
    let instance = c
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, instance_row).optional())
        .map_err(|e| backend("taking an instance", e))?
        .map(finish_record)
        .transpose()?;
    let Some(instance) = instance else {
        return Ok(None);
    };
    let token = lock_instance(c, id, now + lease)?;
    read_inbox(c, id, now, max, instance, token).map(Some)
}

fn check_instance_lock(c: &Connection, id: &str, token: &str, now: i64) -> Result<u64, StoreError> {
    let row: Option<(Option<String>, i64, i64)> = c
        .prepare_cached(
            "SELECT lock_token, lock_expiry, history_len FROM instances WHERE instance_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(|e| backend("checking a lease", e))?;
    match row {
        None => Err(StoreError::NotFound(id.to_string())),
        Some((Some(t), exp, len)) if t == token && exp > now => Ok(len as u64),
        Some(_) => Err(StoreError::LockLost(format!("instance `{id}`"))),
    }
}

/// A commit with its history run and messages encoded, off the writer
/// thread.
pub(crate) struct EncodedCommit {
    pub commit: OrchestrationCommit,
    history: String,
    messages: Vec<String>,
}

impl EncodedCommit {
    pub fn new(commit: OrchestrationCommit) -> Self {
        EncodedCommit {
            history: perdure_core::encode_events(&commit.history),
            messages: commit
                .messages
                .iter()
                .map(|m| encode_event(&m.event))
                .collect(),
            commit,
        }
    }
}

/// Commits a turn under its lease, or, given `unleased` (the instance's
/// last update, ms, as the turn saw it), only when the instance is free,
/// running, unchanged and has no visible message
/// ([`perdure_store::OrchestrationQueue::commit_unleased`]): `None`, with
/// nothing written, when that check fails.
pub(crate) fn commit_orchestration(
    c: &Connection,
    e: &EncodedCommit,
    now: i64,
    unleased: Option<i64>,
) -> Result<Option<Woken>, StoreError> {
    let k = &e.commit;
    let base = if k.replace_history {
        0
    } else {
        k.expected_history_len
    };
    let u = &k.update;
    // The lease (or, unleased, the instance's state) and the history length
    // are checked by the update itself.
    static LEASED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static UNLEASED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let update = |guard: &str| {
        format!(
            "UPDATE instances SET name = ?2, version = ?3, status = ?4, execution_id = ?5, input = ?6, output = ?7, failure = ?8,
             custom_status = ?9, parent_instance_id = ?10, updated_at = ?11, history_len = ?12, lock_token = NULL, lock_expiry = 0,
             tags = ?17
             WHERE instance_id = ?1 AND {guard}"
        )
    };
    let sql = match unleased {
        None => LEASED.get_or_init(|| {
            update("lock_token = ?13 AND lock_expiry > ?14 AND (?15 OR history_len = ?16)")
        }),
        Some(_) => UNLEASED.get_or_init(|| {
            update(&format!(
                "lock_expiry <= ?14 AND updated_at = ?13 AND NOT ?15 AND history_len = ?16
                 AND status = {}
                 AND NOT EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = ?1 AND m.visible_at <= ?14)",
                RuntimeStatus::Running.code()
            ))
        }),
    };
    let holder: &dyn rusqlite::ToSql = match &unleased {
        None => &k.lock_token,
        Some(last) => last,
    };
    let updated = c
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                k.instance_id,
                u.name,
                u.version,
                u.status.code(),
                u.execution_id,
                u.input.as_deref(),
                u.output.as_deref(),
                failure_text(&u.failure),
                u.custom_status.as_deref(),
                u.parent_instance_id,
                k.now.timestamp_millis(),
                (base + k.history.len() as u64) as i64,
                holder,
                now,
                k.replace_history,
                k.expected_history_len as i64,
                tags_text(&u.tags)
            ])
        })
        .map_err(|e| backend("updating an instance", e))?;
    if updated == 0 {
        if unleased.is_some() {
            return Ok(None);
        }
        let len = check_instance_lock(c, &k.instance_id, &k.lock_token, now)?;
        return Err(StoreError::HistoryConflict {
            id: k.instance_id.clone(),
            expected: k.expected_history_len,
            actual: len,
        });
    }
    if k.replace_history {
        exec_cached(
            c,
            "DELETE FROM history WHERE instance_id = ?1",
            [&k.instance_id],
        )
        .map_err(|e| backend("dropping history", e))?;
    }
    apply_turn(c, e, base, now).map(Some)
}

/// A turn's writes after its instance row: history, consumed messages,
/// carried tasks, new tasks and messages to instances.
fn apply_turn(c: &Connection, e: &EncodedCommit, base: u64, now: i64) -> Result<Woken, StoreError> {
    let k = &e.commit;
    if !k.history.is_empty() {
        exec_cached(
            c,
            "INSERT INTO history (instance_id, seq, event) VALUES (?1, ?2, ?3)",
            params![k.instance_id, base as i64, e.history],
        )
        .map_err(|e| backend("appending history", e))?;
    }
    {
        let mut del = c
            .prepare_cached("DELETE FROM inbox WHERE seq = ?1")
            .map_err(|e| backend("consuming messages", e))?;
        for seq in &k.consumed {
            del.execute([seq])
                .map_err(|e| backend("consuming messages", e))?;
        }
    }
    if !k.completed_tasks.is_empty() {
        // The tasks whose results the turn carried in.
        let mut del = c
            .prepare_cached("DELETE FROM tasks WHERE lock_token = ?1")
            .map_err(|e| backend("completing carried tasks", e))?;
        for token in &k.completed_tasks {
            del.execute([token])
                .map_err(|e| backend("completing carried tasks", e))?;
        }
    }
    let mut w = Woken::default();
    {
        let mut ins = c
            .prepare_cached("INSERT INTO tasks (instance_id, execution_id, task_id, name, version, input, visible_at, lock_token, lock_expiry, dequeue_count, trace) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
            .map_err(|e| backend("enqueueing activities", e))?;
        for (i, a) in k.activities.iter().enumerate() {
            let (token, expiry) = k.claims.lock(i, now);
            ins.execute(params![
                a.instance_id,
                a.execution_id,
                a.task_id,
                a.name,
                a.version,
                a.input.as_deref(),
                now,
                token,
                expiry,
                token.is_some() as i64,
                encode_trace(&a.trace_context)
            ])
            .map_err(|e| backend("enqueueing activities", e))?;
            if token.is_none() {
                w.activities_now = true;
            } else {
                w.activities_later.push(expiry);
            }
        }
    }
    for (m, text) in k.messages.iter().zip(&e.messages) {
        if !exists(c, &m.instance_id)? {
            let Some(new) = implicit_instance(m) else {
                continue; // undeliverable: dropped
            };
            create_implicit(c, &m.instance_id, &new, k.now.timestamp_millis())?;
        }
        insert_message(c, m, text, &mut w, now)?;
    }
    Ok(w)
}

pub(crate) fn renew_orchestration(
    c: &Connection,
    id: &str,
    token: &str,
    lease: i64,
    now: i64,
) -> Result<(), StoreError> {
    check_instance_lock(c, id, token, now)?;
    exec_cached(
        c,
        "UPDATE instances SET lock_expiry = ?2 WHERE instance_id = ?1",
        params![id, now + lease],
    )
    .map_err(|e| backend("renewing a lease", e))?;
    Ok(())
}

pub(crate) fn abandon_orchestration(
    c: &Connection,
    id: &str,
    token: &str,
    retry_after: i64,
    now: i64,
) -> Result<Woken, StoreError> {
    check_instance_lock(c, id, token, now)?;
    exec_cached(
        c,
        "UPDATE instances SET lock_token = NULL, lock_expiry = ?2 WHERE instance_id = ?1",
        params![
            id,
            if retry_after > 0 {
                now + retry_after
            } else {
                0
            }
        ],
    )
    .map_err(|e| backend("abandoning work", e))?;
    let mut w = Woken::default();
    if retry_after > 0 {
        w.orchestrations_later.push(now + retry_after);
    } else {
        w.orchestrations_now = true;
    }
    Ok(w)
}

/// Counts the queues now (see [`perdure_store::QueueDepths`]).
pub(crate) fn queue_depths(
    c: &Connection,
    now: i64,
) -> Result<perdure_store::QueueDepths, StoreError> {
    let n = |r: &rusqlite::Row, i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
    c.prepare_cached(QUEUE_DEPTHS_SQL)
        .and_then(|mut s| {
            // A timer counts as scheduled while its execution may still
            // take it: not one of an ended instance or an earlier execution.
            let open = [
                RuntimeStatus::Running,
                RuntimeStatus::Pending,
                RuntimeStatus::Suspended,
            ]
            .map(RuntimeStatus::code);
            s.query_row(params![now, open[0], open[1], open[2]], |r| {
                Ok(perdure_store::QueueDepths {
                    messages_ready: n(r, 0)?,
                    messages_scheduled: n(r, 1)?,
                    timers_due: n(r, 2)?,
                    timers_scheduled: n(r, 3)?,
                    activities_ready: n(r, 4)?,
                    activities_running: n(r, 5)?,
                    activities_delayed: n(r, 6)?,
                })
            })
        })
        .map_err(|e| backend("counting the queues", e))
}

const QUEUE_DEPTHS_SQL: &str = r#"SELECT
    (SELECT count(*) FROM inbox WHERE visible_at <= ?1),
    (SELECT count(*) FROM inbox WHERE visible_at > ?1),
    (SELECT count(*) FROM inbox WHERE visible_at <= ?1 AND substr(event, instr(event, '"type":"'), 20) = '"type":"TimerFired",'),
    (SELECT count(*) FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
       WHERE m.visible_at > ?1 AND substr(m.event, instr(m.event, '"type":"'), 20) = '"type":"TimerFired",'
         AND i.status IN (?2, ?3, ?4) AND (m.execution_id IS NULL OR m.execution_id = i.execution_id)),
    (SELECT count(*) FROM tasks WHERE visible_at <= ?1 AND lock_expiry <= ?1),
    (SELECT count(*) FROM tasks WHERE lock_expiry > ?1),
    (SELECT count(*) FROM tasks WHERE visible_at > ?1 AND lock_expiry <= ?1)"#;
