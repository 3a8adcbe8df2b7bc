//! Slow and greedy clients cannot starve the others: over raw sockets, a
//! client that never finishes its headers, a kept-alive connection left
//! idle, a body that trickles in, a client that stops reading, connections
//! past the cap and long-poll waits past theirs. Each server runs with
//! short limits so that each refusal comes quickly; every check waits on
//! the server's answer (or its closing the socket) with a bounded timeout.

mod support;
use support::Server;

use perdure_server::Limits;
use reqwest::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a check waits for the server to act before failing.
const BOUND: Duration = Duration::from_secs(10);

fn short() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.authority()).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); the bytes
/// read.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("the server kept the connection open");
    got
}

fn get(s: &Server, path: &str) -> String {
    format!(
        "GET /runtime/webhooks/durabletask{path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.authority()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let s = Server::start_with(None, short()).await;
    let mut tcp = connect(&s).await;
    tcp.write_all(b"GET /runtime/webhooks/durabletask/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let got = read_to_close(&mut tcp).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "answered a request whose headers never ended"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_cut_off() {
    let s = Server::start_with(None, short()).await;
    let mut tcp = connect(&s).await;
    assert!(read_to_close(&mut tcp).await.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    let s = Server::start_with(None, short()).await;
    let mut tcp = connect(&s).await;
    tcp.write_all(get(&s, "/instances").as_bytes())
        .await
        .expect("write");
    let got = read_to_close(&mut tcp).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_answered_408() {
    let s = Server::start_with(None, short()).await;
    let mut tcp = connect(&s).await;
    let head = format!(
        "POST /runtime/webhooks/durabletask/orchestrators/HelloCities HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[1,",
        s.authority()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let got = String::from_utf8_lossy(&read_to_close(&mut tcp).await).to_string();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"RequestTimeout\""), "{got}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off() {
    let s = Server::start_with(None, short()).await;
    // An instance with an 8 MiB input, which its status shows.
    let input = format!("\"{}\"", "x".repeat(8 * 1024 * 1024));
    let r = s
        .http
        .post(s.url("/orchestrators/HelloCities/big"))
        .header("content-type", "application/json")
        .body(input)
        .send()
        .await
        .expect("start");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut tcp = connect(&s).await;
    tcp.write_all(get(&s, "/instances/big").as_bytes())
        .await
        .expect("write");
    // Read nothing until the server gives up on the write, then drain.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = read_to_close(&mut tcp).await;
    assert!(
        got.len() < 8 * 1024 * 1024,
        "the whole response was sent ({} bytes) to a client that did not read",
        got.len()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let s = Server::start_with(None, limits).await;
    let mut held = vec![connect(&s).await, connect(&s).await];
    for tcp in &mut held {
        // Each holds a slot once the server has answered on it.
        tcp.write_all(get(&s, "/instances").as_bytes())
            .await
            .expect("write");
        let mut buf = [0u8; 12];
        tcp.read_exact(&mut buf).await.expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut third = connect(&s).await;
    third
        .write_all(get(&s, "/instances").as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    drop(held.pop());
    tokio::time::timeout(BOUND, third.read_exact(&mut buf))
        .await
        .expect("the third connection was never served")
        .expect("read");
    assert_eq!(&buf, b"HTTP/1.1 200");
    s.stop().await;
}

/// A start that asks to wait: with a free wait slot it answers 200 with the
/// output; with none it answers 202 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_waits_past_the_cap_answer_at_once() {
    for (max_waits, expected) in [(1, StatusCode::OK), (0, StatusCode::ACCEPTED)] {
        let limits = Limits {
            max_waits,
            ..Limits::default()
        };
        let s = Server::start_with(None, limits).await;
        let r = s
            .http
            .post(s.url("/orchestrators/HelloCities?timeout=30"))
            .header("content-type", "application/json")
            .send()
            .await
            .expect("start");
        assert_eq!(r.status(), expected, "max_waits {max_waits}");
        s.stop().await;
    }
}
