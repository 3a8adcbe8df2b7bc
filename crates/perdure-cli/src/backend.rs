//! Where instance commands act: directly on a store through the Rust
//! client, or on a running server through its HTTP API. Both give the same
//! JSON (Durable Functions' status shape), so the printing is shared.

use crate::Target;
use anyhow::{anyhow, bail, Context, Result};
use perdure::{Client, InstanceQuery, PurgeFilter, RuntimeStatus};
use perdure_server::wire;
use serde_json::Value;

pub enum Control {
    Terminate { recursive: bool },
    Suspend,
    Resume,
    Rewind,
}

pub enum Backend {
    Local(Client),
    Remote {
        http: reqwest::Client,
        base: String,
        key: Option<String>,
    },
}

pub async fn open(t: &Target) -> Result<Backend> {
    match &t.server {
        Some(url) => Ok(Backend::Remote {
            http: reqwest::Client::new(),
            base: format!("{}{}", url.trim_end_matches('/'), perdure_server::BASE_PATH),
            key: t.api_key.clone(),
        }),
        None => {
            let store = perdure::open_store(&t.store)
                .await
                .with_context(|| format!("opening store {}", perdure::redact_url(&t.store)))?;
            Ok(Backend::Local(Client::new(store)))
        }
    }
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Backend {
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Value)> {
        let Backend::Remote { key, .. } = self else {
            bail!("not a remote backend")
        };
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.context("cannot reach the server")?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.context("reading the server's answer")?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let msg = body["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("server answered {status}: {msg}");
        }
        Ok((status, headers, body))
    }

    pub(crate) fn url(&self, path: &str) -> String {
        match self {
            Backend::Remote { base, .. } => format!("{base}{path}"),
            Backend::Local(_) => String::new(),
        }
    }

    pub(crate) fn http(&self) -> Result<&reqwest::Client> {
        match self {
            Backend::Remote { http, .. } => Ok(http),
            Backend::Local(_) => bail!("not a remote backend"),
        }
    }

    pub async fn start(&self, name: &str, id: Option<&str>, input: Value) -> Result<String> {
        match self {
            Backend::Local(c) => Ok(c.start_new(name, id, input).await?),
            Backend::Remote { .. } => {
                let path = match id {
                    Some(id) => format!("/orchestrators/{}/{}", enc(name), enc(id)),
                    None => format!("/orchestrators/{}", enc(name)),
                };
                let (_, _, body) = self
                    .send(self.http()?.post(self.url(&path)).json(&input))
                    .await?;
                body["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("the server's answer has no id"))
            }
        }
    }

    pub async fn status(&self, id: &str, history: bool) -> Result<Value> {
        match self {
            Backend::Local(c) => {
                let st = c
                    .get_status(id, history)
                    .await?
                    .ok_or_else(|| anyhow!("instance `{id}` was not found"))?;
                Ok(wire::status(&st, true, history, true).into_value())
            }
            Backend::Remote { .. } => {
                let path = format!(
                    "/instances/{}?showHistory={history}&showHistoryOutput=true",
                    enc(id)
                );
                Ok(self.send(self.http()?.get(self.url(&path))).await?.2)
            }
        }
    }

    pub async fn list(
        &self,
        statuses: &[String],
        prefix: Option<&str>,
        top: usize,
    ) -> Result<Vec<Value>> {
        let parsed: Vec<RuntimeStatus> = statuses
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let want = top.saturating_sub(out.len()).min(1000);
            if want == 0 {
                return Ok(out);
            }
            match self {
                Backend::Local(c) => {
                    let q = InstanceQuery {
                        statuses: parsed.clone(),
                        instance_id_prefix: prefix.map(str::to_string),
                        page_size: want,
                        continuation: continuation.clone(),
                        ..InstanceQuery::default()
                    };
                    let page = c.list_instances(&q, false).await?;
                    out.extend(
                        page.instances
                            .iter()
                            .map(|s| wire::status(s, false, false, false).into_value()),
                    );
                    continuation = page.continuation_token;
                }
                Backend::Remote { .. } => {
                    let mut path = format!("/instances?top={want}");
                    if !parsed.is_empty() {
                        let names: Vec<&str> = parsed.iter().map(|s| s.as_str()).collect();
                        path.push_str(&format!("&runtimeStatus={}", names.join(",")));
                    }
                    if let Some(p) = prefix {
                        path.push_str(&format!("&instanceIdPrefix={}", enc(p)));
                    }
                    let mut req = self.http()?.get(self.url(&path));
                    if let Some(c) = &continuation {
                        req = req.header("x-ms-continuation-token", c);
                    }
                    let (_, headers, body) = self.send(req).await?;
                    out.extend(body.as_array().cloned().unwrap_or_default());
                    continuation = headers
                        .get("x-ms-continuation-token")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                }
            }
            if continuation.is_none() {
                return Ok(out);
            }
        }
    }

    pub async fn raise(&self, id: &str, event: &str, data: Value) -> Result<()> {
        match self {
            Backend::Local(c) => Ok(c.raise_event(id, event, data).await?),
            Backend::Remote { .. } => {
                let path = format!("/instances/{}/raiseEvent/{}", enc(id), enc(event));
                self.send(self.http()?.post(self.url(&path)).json(&data))
                    .await
                    .map(|_| ())
            }
        }
    }

    pub async fn control(&self, id: &str, what: Control, reason: &str) -> Result<()> {
        match self {
            Backend::Local(c) => {
                match what {
                    Control::Terminate { recursive } => {
                        c.terminate_with_options(id, reason, recursive).await?
                    }
                    Control::Suspend => c.suspend(id, reason).await?,
                    Control::Resume => c.resume(id, reason).await?,
                    Control::Rewind => c.rewind(id, reason).await?,
                }
                Ok(())
            }
            Backend::Remote { .. } => {
                let (op, extra) = match what {
                    Control::Terminate { recursive } => {
                        ("terminate", format!("&recursive={recursive}"))
                    }
                    Control::Suspend => ("suspend", String::new()),
                    Control::Resume => ("resume", String::new()),
                    Control::Rewind => ("rewind", String::new()),
                };
                let path = format!("/instances/{}/{op}?reason={}{extra}", enc(id), enc(reason));
                self.send(self.http()?.post(self.url(&path)))
                    .await
                    .map(|_| ())
            }
        }
    }

    pub async fn restart(&self, id: &str, new_id: bool) -> Result<String> {
        match self {
            Backend::Local(c) => Ok(c.restart(id, new_id).await?),
            Backend::Remote { .. } => {
                let path = format!(
                    "/instances/{}/restart?restartWithNewInstanceId={new_id}",
                    enc(id)
                );
                let (_, _, body) = self.send(self.http()?.post(self.url(&path))).await?;
                body["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("the server's answer has no id"))
            }
        }
    }

    pub async fn purge(&self, id: &str, recursive: bool) -> Result<u64> {
        match self {
            Backend::Local(c) => {
                match c.purge_instance_history_with_options(id, recursive).await? {
                    0 => bail!("instance `{id}` was not found"),
                    n => Ok(n),
                }
            }
            Backend::Remote { .. } => {
                if recursive {
                    bail!("--recursive purge is not part of the HTTP API; use --store");
                }
                let (_, _, body) = self
                    .send(
                        self.http()?
                            .delete(self.url(&format!("/instances/{}", enc(id)))),
                    )
                    .await?;
                Ok(body["instancesDeleted"].as_u64().unwrap_or(0))
            }
        }
    }

    pub async fn purge_before(&self, before: &str) -> Result<u64> {
        let to = chrono::DateTime::parse_from_rfc3339(before)
            .with_context(|| {
                format!(
                    "--before must be an ISO 8601 time like 2024-01-31T12:00:00Z, not `{before}`"
                )
            })?
            .with_timezone(&chrono::Utc);
        match self {
            Backend::Local(c) => Ok(c
                .purge_instances(&PurgeFilter {
                    created_from: Some(chrono::DateTime::UNIX_EPOCH),
                    created_to: Some(to),
                    statuses: Vec::new(),
                })
                .await?),
            Backend::Remote { .. } => {
                let path = format!(
                    "/instances?createdTimeFrom=1970-01-01T00:00:00Z&createdTimeTo={}",
                    enc(&to.to_rfc3339())
                );
                match self.send(self.http()?.delete(self.url(&path))).await {
                    Ok((_, _, body)) => Ok(body["instancesDeleted"].as_u64().unwrap_or(0)),
                    Err(e) if e.to_string().contains("404") => Ok(0),
                    Err(e) => Err(e),
                }
            }
        }
    }
}
