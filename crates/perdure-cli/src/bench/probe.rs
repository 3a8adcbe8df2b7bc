//! What the machine can do, measured beside each benchmark run: the rate of
//! fsync'd single-row commits on the store's own medium (the physical limit
//! a durable engine works against), and peak resident memory of processes.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long each probe runs.
const PROBE_TIME: Duration = Duration::from_millis(600);

/// Single-row SQLite commits per second with Perdure's settings (WAL,
/// `synchronous=FULL`) in a scratch file in `dir`.
pub fn sqlite_commit_rate(dir: &Path) -> Result<f64> {
    let path = dir.join(format!("fsync-probe-{}.db", std::process::id()));
    let rate = (|| -> Result<f64> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT);",
        )?;
        let began = Instant::now();
        let mut n = 0u64;
        while began.elapsed() < PROBE_TIME {
            conn.execute("INSERT INTO t (v) VALUES ('x')", [])?;
            n += 1;
        }
        Ok(n as f64 / began.elapsed().as_secs_f64())
    })();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rate.context("probing the SQLite commit rate")
}

/// The disk's sequential write rate in MB/s: 64 MiB written in 1 MiB
/// blocks to a file in `dir`, then flushed (fsync), timed together.
pub fn disk_write_rate(dir: &Path) -> Result<f64> {
    use std::io::Write as _;
    let path = dir.join(format!("write-probe-{}.bin", std::process::id()));
    let rate = (|| -> Result<f64> {
        let block = vec![0x5au8; 1 << 20];
        let began = Instant::now();
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..64 {
            f.write_all(&block)?;
        }
        f.sync_all()?;
        Ok((64 << 20) as f64 / 1e6 / began.elapsed().as_secs_f64())
    })();
    let _ = std::fs::remove_file(&path);
    rate.context("probing the disk's sequential write rate")
}

/// Single-row PostgreSQL commits per second, one connection, in a
/// temporary table.
pub async fn postgres_commit_rate(url: &str) -> Result<f64> {
    // The store's own connection (its TLS too), so the probe measures
    // what the store gets.
    let (client, driver) = perdure_postgres::connect(url)
        .await
        .context("connecting to PostgreSQL for the commit probe")?;
    client
        .batch_execute("CREATE TEMP TABLE perdure_probe (k serial PRIMARY KEY, v text)")
        .await?;
    let stmt = client
        .prepare("INSERT INTO perdure_probe (v) VALUES ('x')")
        .await?;
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed() < PROBE_TIME {
        client.execute(&stmt, &[]).await?;
        n += 1;
    }
    let rate = n as f64 / began.elapsed().as_secs_f64();
    drop(client);
    driver.abort();
    Ok(rate)
}

/// Peak resident memory of a process, in bytes (Linux: `VmHWM`).
pub fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
