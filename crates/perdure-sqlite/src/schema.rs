//! The SQLite schema and its versioned migrations (`PRAGMA user_version`).

use crate::backend;
use perdure_store::StoreError;
use rusqlite::Connection;

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT,
    status INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    input TEXT,
    output TEXT,
    failure TEXT,
    custom_status TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    parent_instance_id TEXT,
    history_len INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    lock_expiry INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX instances_created ON instances(created_at);
CREATE TABLE history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    event TEXT NOT NULL,
    visible_at INTEGER NOT NULL
);
CREATE INDEX inbox_visible ON inbox(visible_at, seq);
CREATE INDEX inbox_instance ON inbox(instance_id, seq);
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    input TEXT,
    visible_at INTEGER NOT NULL,
    lock_token TEXT,
    lock_expiry INTEGER NOT NULL DEFAULT 0,
    dequeue_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_visible ON tasks(visible_at, seq);
CREATE INDEX tasks_token ON tasks(lock_token);
CREATE INDEX tasks_instance ON tasks(instance_id);
"#,
    r#"
ALTER TABLE inbox ADD COLUMN control INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_parent ON instances(parent_instance_id);
"#,
    r#"
ALTER TABLE tasks ADD COLUMN trace TEXT;
"#,
    r#"
ALTER TABLE instances ADD COLUMN tags TEXT;
"#,
    // History rows live in a rowid table, found through the (instance_id,
    // seq) index. As a WITHOUT ROWID table every row was a key: a turn
    // with a large payload put 64 KiB records in the b-tree's interior
    // pages, and each insert read them in full to compare keys.
    r#"
CREATE TABLE history_rows (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
INSERT INTO history_rows (instance_id, seq, event) SELECT instance_id, seq, event FROM history;
DROP TABLE history;
ALTER TABLE history_rows RENAME TO history;
"#,
];

/// Brings the schema up to date, in one transaction per step.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| backend("reading schema version", e))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}; this build knows up to {known}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| backend("migration", e))?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| backend("reading schema version", e))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql).map_err(|e| backend("migration", e))?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(|e| backend("migration", e))?;
        tx.commit().map_err(|e| backend("migration", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database left at `version` by an earlier build, with `rows` of
    /// history (instance, seq, event).
    fn database_at(version: usize, rows: &[(&str, i64, &str)]) -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).expect("an earlier migration");
        }
        conn.execute_batch(&format!("PRAGMA user_version = {version}"))
            .expect("setting the version");
        for (id, seq, event) in rows {
            conn.execute(
                "INSERT INTO history (instance_id, seq, event) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, seq, event],
            )
            .expect("a history row");
        }
        conn
    }

    #[test]
    fn history_moves_to_a_rowid_table_with_its_rows() {
        let rows = [("a", 0, "[1]"), ("a", 2, "[2]"), ("b", 0, "[3]")];
        let mut conn = database_at(4, &rows);
        migrate(&mut conn).expect("migrating");
        let read: Vec<(String, i64, String)> = conn
            .prepare("SELECT instance_id, seq, event FROM history ORDER BY instance_id, seq")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("reading history");
        let want: Vec<(String, i64, String)> = rows
            .iter()
            .map(|(i, s, e)| (i.to_string(), *s, e.to_string()))
            .collect();
        assert_eq!(read, want);
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'history'",
                [],
                |r| r.get(0),
            )
            .expect("the table's definition");
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        let duplicate = conn.execute(
            "INSERT INTO history (instance_id, seq, event) VALUES ('a', 2, '[9]')",
            [],
        );
        assert!(duplicate.is_err(), "(instance_id, seq) stays unique");
    }
}
