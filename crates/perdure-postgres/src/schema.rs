//! The hub's schema and its versioned migrations, applied under an advisory
//! lock so that workers starting together migrate once.

use crate::backend;
use perdure_store::StoreError;

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
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    parent_instance_id TEXT,
    history_len BIGINT NOT NULL DEFAULT 0,
    lock_token TEXT,
    lock_expiry BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX instances_created ON instances(created_at, instance_id);
CREATE INDEX instances_parent ON instances(parent_instance_id);
CREATE TABLE history (
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE inbox (
    seq BIGSERIAL PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    event TEXT NOT NULL,
    visible_at BIGINT NOT NULL,
    control BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX inbox_visible ON inbox(visible_at, seq);
CREATE INDEX inbox_instance ON inbox(instance_id, seq);
CREATE TABLE tasks (
    seq BIGSERIAL PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    input TEXT,
    visible_at BIGINT NOT NULL,
    lock_token TEXT,
    lock_expiry BIGINT NOT NULL DEFAULT 0,
    dequeue_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_visible ON tasks(visible_at, seq);
CREATE INDEX tasks_token ON tasks(lock_token);
CREATE INDEX tasks_instance ON tasks(instance_id);
"#,
    r#"
ALTER TABLE tasks ADD COLUMN trace TEXT;
"#,
    r#"
ALTER TABLE instances ADD COLUMN tags TEXT;
"#,
];

pub(crate) async fn migrate(
    cfg: &tokio_postgres::Config,
    tls: &crate::tls::Tls,
    schema: &str,
) -> Result<(), StoreError> {
    let (mut client, conn) = cfg.connect(tls.clone()).await.map_err(crate::connecting)?;
    let driver = tokio::spawn(conn);
    let result = async {
        let tx = client.transaction().await.map_err(|e| backend("migration", e))?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
            .await
            .map_err(|e| backend("migration lock", e))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.schema_version (version INTEGER NOT NULL)"
        ))
        .await
        .map_err(|e| backend("migration", e))?;
        let row = tx
            .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
            .await
            .map_err(|e| backend("migration", e))?;
        let version: i32 = match row {
            Some(r) => r.get(0),
            None => {
                tx.execute(&format!("INSERT INTO {schema}.schema_version VALUES (0)"), &[])
                    .await
                    .map_err(|e| backend("migration", e))?;
                0
            }
        };
        let known = MIGRATIONS.len() as i32;
        if version > known {
            return Err(StoreError::Corrupt(format!(
                "hub schema {schema} has version {version}; this build knows up to {known}"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {sql}"))
                .await
                .map_err(|e| backend("migration", e))?;
            tx.execute(&format!("UPDATE {schema}.schema_version SET version = $1"), &[&(i as i32 + 1)])
                .await
                .map_err(|e| backend("migration", e))?;
        }
        tx.commit().await.map_err(|e| backend("migration", e))
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}
