//! `perdure-postgres` is the PostgreSQL store: any number of worker
//! processes on any number of machines share one task hub. Work is taken
//! with `FOR UPDATE SKIP LOCKED` under leases with lock tokens checked in the
//! same transaction as every commit; new work wakes idle workers through
//! LISTEN/NOTIFY; each task hub lives in its own schema (`perdure_<hub>`),
//! so several hubs share one database.
//!
//! Module map: `schema` (versioned migrations), `ops` (the SQL of each
//! operation), `activities` (taking, renewing and giving back activity
//! leases), `fast` and `batch` (the hot paths as single statements, group
//! committed), `notify`, `listen` (the LISTEN connection and wake-ups), `tls` (the
//! connector every connection uses, chosen by the URL's `sslmode`), this
//! file (the Store trait impls, URL parsing and the connection pool).
//!
//! Store URLs are shown only through [`perdure_store::redact_url`]: no
//! error of this crate carries a password.
//!
//! Architecture invariant: every store operation is one PostgreSQL
//! transaction; times that decide leases come from the database's clock, so
//! machines with skewed clocks cannot steal each other's leases.

mod activities;
mod batch;
mod fast;
mod listen;
mod notify;
mod ops;
mod schema;
mod tls;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use perdure_core::HistoryEvent;
use perdure_store::redact_url;
use perdure_store::wake::WakeHub;
use perdure_store::*;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn backend(context: &str, e: impl std::fmt::Display + std::fmt::Debug) -> StoreError {
    let text = e.to_string();
    // tokio-postgres says only "db error"; the details are in its Debug form.
    let text = if text == "db error" {
        format!("{e:?}")
    } else {
        text
    };
    StoreError::Backend(format!("postgres: {context}: {text}"))
}

/// A failed connection: [`StoreError::Tls`] when TLS refused the server,
/// else a backend error naming the causes too ("error connecting to
/// server: Connection refused"). None of them holds the password: the
/// driver's errors never show its configuration.
pub(crate) fn connecting(e: impl std::error::Error + 'static) -> StoreError {
    if let Some(failure) = tls::classify(&e) {
        return StoreError::Tls(failure);
    }
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    backend("connecting", text)
}

/// The slowest an idle dispatcher looks for work without a notification.
const SAFETY_POLL: Duration = Duration::from_secs(2);

pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

pub(crate) use perdure_store::wake::Visible as Woken;

/// The PostgreSQL store (`postgres://user@host/db?hub=NAME`).
pub struct PostgresStore {
    pool: Pool,
    wake: Arc<WakeHub>,
    channel: String,
    hub: String,
    listener: tokio::task::JoinHandle<()>,
    counters: Arc<perdure_store::stats::CommitCounters>,
    notifier: notify::Notifier,
    batch: batch::Batcher,
    /// The database clock minus this machine's (ms), as last seen by a
    /// commit: the time of turns run without a lease.
    skew_ms: std::sync::atomic::AtomicI64,
}

impl PostgresStore {
    /// A turn's commit, leased or not; false when an unleased one was not
    /// applied.
    /// Keeps the database clock's lead on this one, from a time (ms) the
    /// database just answered with (see `unleased_now`).
    fn saw_database_time(&self, db_now: i64) {
        let local = chrono::Utc::now().timestamp_millis();
        self.skew_ms
            .store(db_now - local, std::sync::atomic::Ordering::Relaxed);
    }

    async fn commit_turn(
        &self,
        commit: OrchestrationCommit,
        unleased: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (id, status) = (commit.instance_id.clone(), commit.update.status);
        let carried = commit.completed_tasks.len();
        let w = if commit.messages.is_empty() && !commit.replace_history {
            // The common turn: one guarded statement, group-committed with
            // other workers' steps.
            let (token, expected) = (commit.lock_token.clone(), commit.expected_history_len);
            let (held, w, db_now) = self.batch.turn(commit, unleased).await?;
            self.saw_database_time(db_now);
            match (held, unleased) {
                (true, _) => w,
                (false, Some(_)) => return Ok(false),
                (false, None) => {
                    let c = self.client().await?;
                    return Err(ops::lease_or_history_error(&c, &id, &token, expected).await);
                }
            }
        } else {
            let done = self
                .run(|tx, _| Box::pin(ops::commit_orchestration(tx, commit, unleased)))
                .await?;
            match done {
                Some(w) => w,
                None => return Ok(false),
            }
        };
        // The turn, and each activity result it carried in.
        self.counters.steps(1 + carried);
        self.wake.instance_changed(&id, status);
        self.notifier.changed(&id, status);
        self.signal(w);
        Ok(true)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// A store URL read: what the driver is given, and Perdure's own
/// parameters.
#[derive(Debug)]
struct StoreUrl {
    /// The URL without Perdure's parameters (nor the TLS ones, which
    /// [`tls`] handles).
    conn: String,
    hub: String,
    pool_size: usize,
    tls: tls::TlsOptions,
}

/// Splits Perdure's own parameters (`hub`, `pool_size`) and TLS's
/// (`sslmode`, `sslrootcert`) off a PostgreSQL URL.
fn parse_url(url: &str) -> Result<StoreUrl, StoreError> {
    let bad = |why: &str| StoreError::BadUrl(redact_url(url), why.to_string());
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad(
            "expected postgres://user@host[:port]/database[?hub=NAME]",
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut hub = "default".to_string();
    let mut pool_size = 16usize;
    let mut tls = tls::TlsOptions::default();
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("hub", v)) => hub = v.to_string(),
            Some(("pool_size", v)) => {
                pool_size = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("pool_size must be a positive number"))?
            }
            Some((k, v)) if tls.take(k, v).map_err(|why| bad(&why))? => {}
            _ => rest.push(kv),
        }
    }
    if hub.is_empty()
        || hub.len() > 40
        || !hub
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad("hub must be 1 to 40 characters of a-z, 0-9 and _"));
    }
    let conn = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(StoreUrl {
        conn,
        hub,
        pool_size,
        tls,
    })
}

impl StoreUrl {
    /// The driver's configuration and the TLS connector for it; `url` is
    /// the whole URL, shown redacted in errors.
    fn connection(&self, url: &str) -> Result<(tokio_postgres::Config, tls::Tls), StoreError> {
        let mut cfg: tokio_postgres::Config = self
            .conn
            .parse()
            .map_err(|e| StoreError::BadUrl(redact_url(url), format!("{e}")))?;
        self.tls.configure(&mut cfg);
        Ok((cfg, self.tls.connector(url)?))
    }
}

/// One connection to the database `url` names, with the store's TLS
/// (for tools beside the store: benchmark probes, admin statements), and
/// the task driving it, which ends when the client is dropped.
pub async fn connect(
    url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let (cfg, tls) = parse_url(url)?.connection(url)?;
    let (client, conn) = cfg.connect(tls).await.map_err(connecting)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok((client, driver))
}

impl PostgresStore {
    /// Connects, creates or migrates the hub's schema, and starts listening
    /// for wake-ups.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let parsed = parse_url(url)?;
        let (hub, pool_size) = (parsed.hub.clone(), parsed.pool_size);
        let schema = format!("perdure_{hub}");
        let (mut cfg, tls) = parsed.connection(url)?;
        cfg.application_name(format!("perdure:{hub}"));
        // Every statement of ours is written for an index. A plan cached
        // while a table was small (a new hub; no autovacuum to analyze it)
        // must not go on scanning the whole table as it grows. And a hot
        // statement is planned once per connection, not at every run: left
        // to choose, the server kept planning the turn's commit afresh at
        // each bind (as long as running it). No JIT: a statement of ours
        // runs in well under a millisecond, and the few that scan (a due
        // time at start) were compiled for 50 to 300 ms each (the seq
        // scans' disabled cost passes every JIT threshold).
        cfg.options(format!(
            "-c search_path={schema} -c enable_seqscan=off -c plan_cache_mode=force_generic_plan -c jit=off"
        ));
        cfg.connect_timeout(Duration::from_secs(10));
        schema::migrate(&cfg, &tls, &schema).await?;
        let mgr = Manager::from_config(
            cfg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| backend("building the pool", e))?;
        let wake = Arc::new(WakeHub::default());
        let channel = schema.clone();
        let listener = tokio::spawn(listen::run(cfg, tls, channel.clone(), wake.clone()));
        let counters = Arc::new(perdure_store::stats::CommitCounters::default());
        let store = PostgresStore {
            pool: pool.clone(),
            wake,
            channel,
            hub,
            listener,
            batch: batch::Batcher::start(pool.clone(), counters.clone()),
            skew_ms: Default::default(),
            counters,
            notifier: notify::Notifier::start(pool.clone(), schema.clone()),
        };
        let pending = store.run(|tx, _| Box::pin(ops::pending_times(tx))).await?;
        store.wake.signal(pending);
        store.wake.notify(WorkKind::Orchestration);
        store.wake.notify(WorkKind::Activity);
        Ok(store)
    }

    /// Deletes task hub `url` names: its schema, with every instance,
    /// history, message and task in it. Stores still open on it fail from
    /// then on; opening it again creates it empty.
    pub async fn delete_hub(url: &str) -> Result<(), StoreError> {
        let hub = parse_url(url)?.hub;
        let (client, driver) = connect(url).await?;
        // The name is checked by `parse_url` (a-z, 0-9, _), so it can be
        // spliced into the statement.
        let dropped = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS perdure_{hub} CASCADE"))
            .await
            .map_err(|e| backend("deleting the task hub", e));
        drop(client);
        let _ = driver.await;
        dropped
    }

    /// The task hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// Drops the task hub's schema with everything in it (for tests).
    pub async fn drop_hub(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(connecting)?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.channel))
            .await
            .map_err(|e| backend("dropping the hub", e))
    }

    /// Wakes this process's dispatchers and announces `w` to the others.
    fn signal(&self, w: Woken) {
        self.notifier.send(&w);
        self.wake.signal(w);
    }

    /// A pooled connection for a single-statement operation (its own
    /// implicit transaction).
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(connecting)
    }

    /// Runs `f` in one transaction and commits it.
    async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: for<'a> FnOnce(
            &'a deadpool_postgres::Transaction<'a>,
            &'a str,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<R, StoreError>> + Send + 'a>,
        >,
    {
        let mut client = self.pool.get().await.map_err(connecting)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("begin", e))?;
        let began = std::time::Instant::now();
        let r = match f(&tx, &self.channel).await {
            Ok(r) => r,
            Err(e) => {
                // Roll back before answering: a dropped transaction rolls
                // back later, and until then its row locks make a fetch
                // skip the instance it refused to change.
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await.map_err(|e| backend("commit", e))?;
        self.counters.transaction(1, began.elapsed());
        Ok(r)
    }
}

#[async_trait]
impl InstanceStore for PostgresStore {
    async fn create_instance(&self, req: CreateInstance) -> Result<(), StoreError> {
        // A new id, the usual case: one statement, group-committed with
        // other clients' starts and the workers' steps. A taken id (a
        // finished instance to replace, or a refusal) goes the long way.
        let w = match self.batch.create(req).await? {
            Ok(w) => w,
            Err(req) => {
                self.run(|tx, _| Box::pin(ops::create_instance(tx, *req)))
                    .await?
            }
        };
        self.signal(w);
        Ok(())
    }

    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let client = self.pool.get().await.map_err(connecting)?;
        ops::get_instance(&client, instance_id).await
    }

    async fn send_message(&self, msg: InstanceMessage) -> Result<(), StoreError> {
        let w = self
            .run(|tx, _| Box::pin(ops::send_message(tx, msg)))
            .await?;
        self.signal(w);
        Ok(())
    }

    async fn list_instances(&self, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
        let client = self.pool.get().await.map_err(connecting)?;
        ops::list_instances(&**client, query).await
    }

    async fn purge_instance(&self, instance_id: &str) -> Result<bool, StoreError> {
        let id = instance_id.to_string();
        self.run(|tx, _| Box::pin(ops::purge_instance(tx, id)))
            .await
    }
}

#[async_trait]
impl HistoryStore for PostgresStore {
    async fn read_history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        let client = self.pool.get().await.map_err(connecting)?;
        ops::read_history(&client, instance_id).await
    }
}

#[async_trait]
impl OrchestrationQueue for PostgresStore {
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max_messages: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError> {
        let c = self.client().await?;
        fast::fetch_orchestrations(
            &c,
            dur_ms(lease),
            max_messages.max(1) as i64,
            max_items,
            filter,
        )
        .await
    }

    async fn commit_orchestration(&self, commit: OrchestrationCommit) -> Result<(), StoreError> {
        self.commit_turn(commit, None).await.map(|_| ())
    }

    async fn commit_unleased(
        &self,
        commit: OrchestrationCommit,
        last_update: perdure_core::Timestamp,
    ) -> Result<bool, StoreError> {
        self.commit_turn(commit, Some(last_update.timestamp_millis()))
            .await
    }

    async fn create_with_first_turn(
        &self,
        commit: OrchestrationCommit,
    ) -> Result<FirstTurn, StoreError> {
        let commit = commit.into_first_turn();
        let (id, status) = (commit.instance_id.clone(), commit.update.status);
        let w = if commit.messages.is_empty() {
            // The common first turn: one statement, group-committed.
            match self.batch.first(commit).await? {
                Ok((w, db_now)) => {
                    self.saw_database_time(db_now);
                    w
                }
                Err(commit) => return Ok(FirstTurn::Declined(commit)),
            }
        } else {
            // Messages to instances (a sub-orchestration, an event): the
            // row leased to the commit, then the turn as any leased one.
            let done = self
                .run(|tx, _| Box::pin(ops::create_with_first_turn(tx, commit)))
                .await?;
            match done {
                Ok(w) => w,
                Err(commit) => return Ok(FirstTurn::Declined(commit)),
            }
        };
        self.counters.steps(1);
        self.wake.instance_changed(&id, status);
        self.notifier.changed(&id, status);
        self.signal(w);
        Ok(FirstTurn::Created)
    }

    fn unleased_now(&self) -> Option<perdure_core::Timestamp> {
        let skew = self.skew_ms.load(std::sync::atomic::Ordering::Relaxed);
        let ms = chrono::Utc::now().timestamp_millis().saturating_add(skew);
        chrono::DateTime::from_timestamp_millis(ms)
    }

    async fn renew_orchestration_lock(
        &self,
        instance_id: &str,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let (id, tok, lease) = (
            instance_id.to_string(),
            lock_token.to_string(),
            dur_ms(lease),
        );
        self.run(|tx, _| Box::pin(ops::renew_orchestration(tx, id, tok, lease)))
            .await
    }

    async fn abandon_orchestration(
        &self,
        instance_id: &str,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let (id, tok, after) = (
            instance_id.to_string(),
            lock_token.to_string(),
            dur_ms(retry_after),
        );
        let w = self
            .run(|tx, _| Box::pin(ops::abandon_orchestration(tx, id, tok, after)))
            .await?;
        self.signal(w);
        Ok(())
    }
}

#[async_trait]
impl ActivityQueue for PostgresStore {
    fn shared_by_processes(&self) -> bool {
        true
    }

    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        let lease = dur_ms(lease);
        let filter = filter.clone();
        let max = max_items.max(1) as i64;
        if matches!(filter, WorkFilter::Any) {
            let c = self.client().await?;
            return activities::fetch_activities(&c, lease, max).await;
        }
        self.run(move |tx, _| {
            Box::pin(
                async move { activities::fetch_filtered_activities(tx, lease, max, &filter).await },
            )
        })
        .await
    }

    async fn pending_tasks(
        &self,
        instance_id: &str,
        execution_id: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let client = self.pool.get().await.map_err(connecting)?;
        let rows = client
            .query(
                "SELECT task_id FROM tasks WHERE instance_id = $1 AND execution_id = $2",
                &[&instance_id, &execution_id],
            )
            .await
            .map_err(|e| backend("reading pending tasks", e))?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
    }

    async fn complete_activity(
        &self,
        lock_token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError> {
        let woken = self.batch.result(lock_token, result).await?;
        self.counters.step();
        self.signal(woken);
        Ok(())
    }

    async fn take_for_result(
        &self,
        lock_token: &str,
        instance_id: &str,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let take = (dur_ms(lease), max_messages.max(1) as i64, filter.clone());
        self.batch.take(lock_token, instance_id, take).await
    }

    async fn renew_activity_lock(
        &self,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let (tok, lease) = (lock_token.to_string(), dur_ms(lease));
        self.run(|tx, _| Box::pin(activities::renew_activity(tx, tok, lease)))
            .await
    }

    async fn abandon_activity(
        &self,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let (tok, after) = (lock_token.to_string(), dur_ms(retry_after));
        let w = self
            .run(|tx, _| Box::pin(activities::abandon_activity(tx, tok, after)))
            .await?;
        self.signal(w);
        Ok(())
    }
}

#[async_trait]
impl WakeSignal for PostgresStore {
    async fn wait_for_work(&self, kind: WorkKind, max_wait: Duration) {
        // NOTIFY wakes us for new work and announces future work, so the
        // poll is only a safety net (for leases that expired elsewhere).
        self.wake.wait(kind, max_wait.max(SAFETY_POLL)).await
    }

    fn watch_instance(&self, instance_id: &str) -> Option<InstanceWatch> {
        self.wake.watch_instance(instance_id)
    }
}

#[async_trait]
impl StoreStats for PostgresStore {
    fn commit_stats(&self) -> CommitStats {
        self.counters.snapshot()
    }

    async fn queue_depths(&self) -> Result<perdure_store::QueueDepths, StoreError> {
        let c = self.client().await?;
        ops::queue_depths(&c).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;
    use crate::tls::{Roots, SslMode};

    /// What a URL is read as: the driver's URL, the hub, the pool size,
    /// the sslmode and the roots; or the words its error must hold.
    type Read = Result<
        (
            &'static str,
            &'static str,
            usize,
            SslMode,
            Option<&'static str>,
        ),
        &'static str,
    >;

    const CASES: &[(&str, &str, Read)] = &[
        (
            "Perdure's parameters are taken off",
            "postgres://postgres@127.0.0.1:5432/test?hub=a_1&pool_size=4",
            Ok((
                "postgres://postgres@127.0.0.1:5432/test",
                "a_1",
                4,
                SslMode::Prefer,
                None,
            )),
        ),
        (
            "sslmode is taken off and read; other parameters stay",
            "postgresql://u@h/db?sslmode=disable&connect_timeout=3",
            Ok((
                "postgresql://u@h/db?connect_timeout=3",
                "default",
                16,
                SslMode::Disable,
                None,
            )),
        ),
        (
            "verify-full and a root file",
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            Ok((
                "postgres://u@h/db",
                "default",
                16,
                SslMode::VerifyFull,
                Some("/etc/ca.pem"),
            )),
        ),
        (
            "verify-ca, and a root file's path percent-decoded",
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/my%20certs/ca.pem",
            Ok((
                "postgres://u@h/db",
                "default",
                16,
                SslMode::VerifyCa,
                Some("/my certs/ca.pem"),
            )),
        ),
        (
            "sslrootcert=system names the system's roots",
            "postgres://u@h/db?sslmode=require&sslrootcert=system",
            Ok((
                "postgres://u@h/db",
                "default",
                16,
                SslMode::Require,
                Some("system"),
            )),
        ),
        (
            "an unknown sslmode is refused by name",
            "postgres://u@h/db?sslmode=verify-everything",
            Err("unknown sslmode `verify-everything`"),
        ),
        (
            "sslmode is case-sensitive, as in libpq",
            "postgres://u@h/db?sslmode=Require",
            Err("unknown sslmode `Require`"),
        ),
        (
            "an empty sslrootcert",
            "postgres://u@h/db?sslrootcert=",
            Err("sslrootcert names no file"),
        ),
        (
            "a bad hub name",
            "postgres://u@h/db?hub=Bad-Name",
            Err("hub must be"),
        ),
        (
            "another scheme",
            "mysql://u@h/db",
            Err("expected postgres://"),
        ),
        (
            "a refused URL does not show its password",
            "postgres://app:s3cret@h/db?sslmode=nope&password=s3cret",
            Err("postgres://app:***@h/db?sslmode=nope&password=***"),
        ),
    ];

    #[test]
    fn urls() {
        for (what, url, want) in CASES {
            let got = parse_url(url);
            match (got, want) {
                (Ok(u), Ok((conn, hub, pool, mode, roots))) => {
                    let read = match &u.tls.roots {
                        None => None,
                        Some(Roots::System) => Some("system".to_string()),
                        Some(Roots::File(p)) => Some(p.display().to_string()),
                    };
                    assert_eq!(
                        (
                            u.conn.as_str(),
                            u.hub.as_str(),
                            u.pool_size,
                            u.tls.mode,
                            read.as_deref()
                        ),
                        (*conn, *hub, *pool, *mode, *roots),
                        "{what}"
                    );
                }
                (Err(e), Err(words)) => {
                    let text = e.to_string();
                    assert!(text.contains(words), "{what}: {text}");
                    assert!(!text.contains("s3cret"), "{what}: {text}");
                }
                (got, _) => panic!("{what}: {url} read as {got:?}"),
            }
        }
    }
}
