//! The test server: the HTTP API over a real socket with an in-process
//! worker running the samples on SQLite.

#![allow(dead_code)]

pub mod grpc;

use perdure::{Client, Worker, WorkerOptions};
use perdure_server::{serve_on, ServerConfig, BASE_PATH};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<Worker>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(api_key: Option<&str>) -> Server {
        Server::start_with(api_key, perdure_server::Limits::default()).await
    }

    /// A server under `limits` (short timeouts, small caps).
    pub async fn start_with(api_key: Option<&str>, limits: perdure_server::Limits) -> Server {
        Server::start_config(ServerConfig {
            api_key: api_key.map(str::to_string),
            waits: perdure_server::Waits::new(limits.max_waits),
            limits,
            ..Default::default()
        })
        .await
    }

    /// A server under `config`; the orchestrators it knows are the samples.
    pub async fn start_config(config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = perdure::open_store(&format!("sqlite://{}", dir.path().join("h.db").display()))
            .await
            .expect("store");
        let client = Client::new(store.clone());
        let registry = perdure_examples::registry(client.clone());
        let known = registry
            .orchestrator_names()
            .iter()
            .map(|n| n.to_lowercase())
            .collect();
        let worker = Worker::start(store, registry, WorkerOptions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let config = ServerConfig {
            known_orchestrators: Some(known),
            ..config
        };
        tokio::spawn(serve_on(listener, client, config, async move {
            let _ = rx.await;
        }));
        Server {
            base: format!("http://{addr}{BASE_PATH}"),
            http: reqwest::Client::new(),
            stop: Some(stop),
            worker: Some(worker),
            _dir: dir,
        }
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(w) = self.worker.take() {
            w.shutdown().await;
        }
    }

    pub async fn wait_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .get(self.url(&format!("/instances/{id}")))
                .send()
                .await
                .expect("get");
            if r.status() == StatusCode::OK {
                return r.json().await.expect("json");
            }
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{id} while running");
            assert!(Instant::now() < deadline, "{id} did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn body(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}
