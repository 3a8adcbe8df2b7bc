//! Instances in SQL: listing them a page at a time, and purging a
//! finished one (which an instance about to run again is not).

use super::*;

pub(crate) fn list_instances(
    c: &Connection,
    q: &InstanceQuery,
) -> Result<InstancePage, StoreError> {
    let after = q
        .continuation
        .as_deref()
        .map(decode_continuation)
        .transpose()?;
    let mut sql = format!("SELECT {INSTANCE_COLS} FROM instances WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |clause: &str, v: rusqlite::types::Value, sql: &mut String| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if !q.statuses.is_empty() {
        let codes: Vec<String> = q.statuses.iter().map(|s| s.code().to_string()).collect();
        sql.push_str(&format!(" AND status IN ({})", codes.join(",")));
    }
    if let Some(t) = q.created_from {
        push(
            " AND created_at >= ?",
            t.timestamp_millis().into(),
            &mut sql,
        );
    }
    if let Some(t) = q.created_to {
        push(
            " AND created_at <= ?",
            t.timestamp_millis().into(),
            &mut sql,
        );
    }
    if let Some(p) = &q.instance_id_prefix {
        // Range scan on the primary key: ids >= prefix and < prefix + U+10FFFF.
        push(" AND instance_id >= ?", p.clone().into(), &mut sql);
        push(
            " AND instance_id < ?",
            format!("{p}\u{10ffff}").into(),
            &mut sql,
        );
    }
    if let Some(p) = &q.parent_instance_id {
        push(" AND parent_instance_id = ?", p.clone().into(), &mut sql);
    }
    if let Some(n) = &q.name {
        push(" AND name = ?", n.clone().into(), &mut sql);
    }
    if let Some((ms, id)) = after {
        args.push(ms.into());
        args.push(id.into());
        sql.push_str(&format!(
            " AND (created_at, instance_id) > (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    let size = q.page_size.max(1);
    sql.push_str(&format!(
        " ORDER BY created_at, instance_id LIMIT {}",
        size + 1
    ));
    let mut stmt = c
        .prepare(&sql)
        .map_err(|e| backend("listing instances", e))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), instance_row)
        .map_err(|e| backend("listing instances", e))?;
    let mut instances = Vec::new();
    for row in rows {
        instances.push(finish_record(
            row.map_err(|e| backend("listing instances", e))?,
        )?);
    }
    let more = instances.len() > size;
    instances.truncate(size);
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
pub(crate) fn revive_waiting(
    c: &Connection,
    id: &str,
    execution_id: &str,
) -> Result<bool, StoreError> {
    let mut s = c
        .prepare_cached("SELECT event, execution_id FROM inbox WHERE instance_id = ?1")
        .map_err(|e| backend("reading an inbox", e))?;
    let rows = s
        .query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| backend("reading an inbox", e))?;
    for (text, tag) in rows {
        if perdure_store::revives(&decode_event(&text)?, tag.as_deref(), execution_id) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn purge_instance(c: &Connection, id: &str) -> Result<bool, StoreError> {
    let row: Option<(i64, String)> = c
        .query_row(
            "SELECT status, execution_id FROM instances WHERE instance_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| backend("purging an instance", e))?;
    let Some((code, execution_id)) = row else {
        return Ok(false);
    };
    let status = RuntimeStatus::from_code(code as i32)
        .ok_or_else(|| StoreError::Corrupt(format!("status code {code}")))?;
    if !status.is_terminal() {
        return Err(StoreError::NotFinished {
            id: id.to_string(),
            status,
        });
    }
    // An entity with requests waiting is not finished: they would be lost;
    // nor is an orchestration with a rewind or a new start waiting.
    let waiting = if perdure_core::is_entity_instance(id) {
        c.prepare_cached("SELECT 1 FROM inbox WHERE instance_id = ?1 LIMIT 1")
            .and_then(|mut s| s.exists([id]))
            .map_err(|e| backend("purging an instance", e))?
    } else {
        revive_waiting(c, id, &execution_id)?
    };
    if waiting {
        return Err(StoreError::NotFinished {
            id: id.to_string(),
            status: RuntimeStatus::Running,
        });
    }
    for table in ["history", "inbox", "tasks", "instances"] {
        exec_cached(
            c,
            &format!("DELETE FROM {table} WHERE instance_id = ?1"),
            [id],
        )
        .map_err(|e| backend("purging an instance", e))?;
    }
    Ok(true)
}
