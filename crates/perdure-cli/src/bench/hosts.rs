//! `perdure bench --hosts N --rtt-ms R`: each worker process on a host of
//! its own, a network namespace joined to this one (PostgreSQL's host) by a
//! veth link, with `R` ms added to every round trip. The delay comes from
//! `tc netem` on both ends of each link where the kernel has it, else from
//! the relay every link goes through anyway (PostgreSQL listens on the
//! loopback of this namespace only): each chunk is held `R/2` ms in each
//! direction, in order, without limiting how much is in flight. The relay
//! also counts round trips: a request that follows an answer on the same
//! connection. Everything is created by the benchmark and removed when it
//! ends; it needs root (CAP_NET_ADMIN).

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The hosts of one run: namespaces, links and relays.
pub struct Hosts {
    names: Vec<String>,
    /// The store URL each host's worker uses (its relay's address).
    pub urls: Vec<String>,
    /// Requests that followed an answer, over every relay.
    pub round_trips: Arc<AtomicU64>,
    /// Whether the delay is the kernel's (netem) or the relays'.
    pub netem: bool,
    stop: Arc<AtomicBool>,
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (iproute2)"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Splits a store URL into what comes before its host, the host and port,
/// and what follows.
fn split_url(url: &str) -> Result<(&str, &str, &str)> {
    let scheme_end = url.find("://").context("the store URL has no scheme")? + 3;
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..auth_end].rfind('@').map_or(0, |i| i + 1);
    let host = &rest[host_start..auth_end];
    if host.is_empty() || host.starts_with('/') {
        bail!("--hosts needs a PostgreSQL URL with a TCP host (host:port)");
    }
    Ok((
        &url[..scheme_end + host_start],
        host,
        &url[scheme_end + auth_end..],
    ))
}

impl Hosts {
    /// Creates `n` hosts for workers that use `url`, with `rtt_ms` added to
    /// each round trip to it.
    pub fn create(n: usize, url: &str, rtt_ms: f64) -> Result<Hosts> {
        let (head, target, tail) = split_url(url)?;
        let target = if target.contains(':') {
            target.to_string()
        } else {
            format!("{target}:5432")
        };
        let tag = std::process::id() % 10_000;
        let mut hosts = Hosts {
            names: Vec::new(),
            urls: Vec::new(),
            round_trips: Arc::new(AtomicU64::new(0)),
            netem: true,
            stop: Arc::new(AtomicBool::new(false)),
        };
        let half = rtt_ms / 2.0;
        for i in 0..n {
            let ns = format!("pdb{tag}h{i}");
            let (outer, inner) = (format!("pdb{tag}a{i}"), format!("pdb{tag}b{i}"));
            let (here, there) = (format!("10.77.{i}.1"), format!("10.77.{i}.2"));
            ip(&["netns", "add", &ns]).context("creating a network namespace (needs root)")?;
            hosts.names.push(ns.clone());
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["addr", "add", &format!("{here}/30"), "dev", &outer])?;
            ip(&["link", "set", &outer, "up"])?;
            let in_ns = |args: &[&str]| {
                let mut v = vec!["netns", "exec", &ns, "ip"];
                v.extend_from_slice(args);
                ip(&v)
            };
            in_ns(&["addr", "add", &format!("{there}/30"), "dev", &inner])?;
            in_ns(&["link", "set", &inner, "up"])?;
            in_ns(&["link", "set", "lo", "up"])?;
            if half > 0.0 && hosts.netem {
                let delay = format!("{half}ms");
                let kernel = run(
                    "tc",
                    &[
                        "qdisc", "add", "dev", &outer, "root", "netem", "delay", &delay,
                    ],
                )
                .and_then(|()| {
                    run(
                        "ip",
                        &[
                            "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &inner, "root",
                            "netem", "delay", &delay,
                        ],
                    )
                });
                if kernel.is_err() {
                    hosts.netem = false;
                }
            }
            let listener = TcpListener::bind((here.as_str(), 5432))
                .with_context(|| format!("listening on {here}:5432"))?;
            let delay = if hosts.netem {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(half / 1000.0)
            };
            relay(
                listener,
                target.clone(),
                delay,
                hosts.round_trips.clone(),
                hosts.stop.clone(),
            );
            hosts.urls.push(format!("{head}{here}:5432{tail}"));
        }
        Ok(hosts)
    }

    /// The command that runs `program` on host `i`.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i]]).arg(program);
        c
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Removing a namespace removes its end of the link, and the link.
        for ns in &self.names {
            let _ = ip(&["netns", "delete", ns]);
        }
    }
}

/// Accepts connections on `listener` and joins each to `target`, holding
/// every chunk `delay` in each direction.
fn relay(
    listener: TcpListener,
    target: String,
    delay: Duration,
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(client) = conn else { continue };
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            // Set by an answer, cleared by the request after it.
            let answered = Arc::new(AtomicBool::new(true));
            let pipes = [
                (client.try_clone(), server.try_clone(), true),
                (server.try_clone(), client.try_clone(), false),
            ];
            for (from, to, request) in pipes {
                let (Ok(from), Ok(to)) = (from, to) else {
                    continue;
                };
                let (answered, counted) = (answered.clone(), round_trips.clone());
                pipe(from, to, delay, move || {
                    if request {
                        if answered.swap(false, Ordering::Relaxed) {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        answered.store(true, Ordering::Relaxed);
                    }
                });
            }
        }
    });
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (a
/// reader thread and a writer thread, so chunks in flight overlap).
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    on_chunk: impl Fn() + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    on_chunk();
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_splits_around_its_host() {
        let (head, host, tail) =
            split_url("postgres://postgres@127.0.0.1:5432/test?hub=bench_1").expect("split");
        assert_eq!(
            (head, host, tail),
            (
                "postgres://postgres@",
                "127.0.0.1:5432",
                "/test?hub=bench_1"
            )
        );
        let (head, host, tail) = split_url("postgresql://db/x").expect("split");
        assert_eq!((head, host, tail), ("postgresql://", "db", "/x"));
    }

    #[test]
    fn a_url_without_a_tcp_host_is_refused() {
        assert!(split_url("postgres:///test?host=/run/postgresql").is_err());
        assert!(split_url("no-scheme").is_err());
    }
}
