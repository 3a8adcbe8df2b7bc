//! Durable HTTP (Durable Functions' `CallHttpAsync`): an orchestration calls
//! an HTTP endpoint directly. The call runs as the built-in activity
//! [`HTTP_ACTIVITY`], so its response (status, headers, body) is recorded in
//! history and replays never repeat it. A `202 Accepted` with a `Location`
//! header is polled on durable timers (honouring `Retry-After`) until a
//! final answer, unless the request turns polling off; failed calls and
//! chosen status codes can be retried by a [`RetryPolicy`].

use crate::context::OrchestrationContext;
use crate::error::{Failure, TaskError};
use crate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The built-in activity that makes the calls; every worker has it.
pub const HTTP_ACTIVITY: &str = "BuiltIn::HttpActivity";

/// Polling interval when a 202 carries no `Retry-After`.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// An HTTP request made durably.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DurableHttpRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Limit on one request (not on polling); none by default.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Poll `202 Accepted` + `Location` answers until a final one (default).
    #[serde(default = "yes")]
    pub async_polling: bool,
    #[serde(skip)]
    retry: Option<(RetryPolicy, Vec<u16>)>,
}

fn yes() -> bool {
    true
}

impl DurableHttpRequest {
    /// A request with `method` to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        DurableHttpRequest {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: None,
            async_polling: true,
            retry: None,
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str, body: impl Into<String>) -> Self {
        Self::new("POST", url).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(timeout.as_millis().min(u64::MAX as u128) as u64);
        self
    }

    /// Return a `202 Accepted` as it is instead of polling its `Location`.
    pub fn without_polling(mut self) -> Self {
        self.async_polling = false;
        self
    }

    /// Retries failed calls, and answers with one of `status_codes`, as
    /// `policy` says (waits are durable timers).
    pub fn with_retry(mut self, policy: RetryPolicy, status_codes: &[u16]) -> Self {
        self.retry = Some((policy, status_codes.to_vec()));
        self
    }
}

/// The answer to a durable HTTP request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DurableHttpResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl DurableHttpResponse {
    /// A header by name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_str(&self.body).map_err(|e| {
            Failure::new(
                "ResponseDeserialization",
                format!("the response body is not the JSON expected: {e}"),
            )
        })
    }
}

impl OrchestrationContext {
    /// Makes `request` durably (see the module documentation).
    pub async fn call_http(
        &self,
        request: DurableHttpRequest,
    ) -> Result<DurableHttpResponse, TaskError> {
        let retry = request.retry.clone();
        let started = self.current_utc_date_time();
        let mut call = request;
        let mut attempt: u32 = 1;
        loop {
            let result = self
                .call_activity::<DurableHttpResponse>(HTTP_ACTIVITY, &call)
                .await;
            let retry_status =
                matches!((&result, &retry), (Ok(r), Some((_, codes))) if codes.contains(&r.status));
            let retryable = match &result {
                Err(e) => e.failure().is_some(),
                Ok(_) => retry_status,
            };
            if retryable {
                if let Some((policy, _)) = &retry {
                    let allowed = match &result {
                        Err(e) => e.failure().is_some_and(|f| policy.should_retry(f)),
                        Ok(_) => true,
                    };
                    let elapsed = (self.current_utc_date_time() - started)
                        .to_std()
                        .unwrap_or_default();
                    if let Some(delay) = allowed
                        .then(|| policy.options().next_delay(attempt, elapsed))
                        .flatten()
                    {
                        self.create_timer_after(delay).await;
                        attempt += 1;
                        continue;
                    }
                }
            }
            let response = result?;
            let location = response.header("location").map(str::to_string);
            match location {
                Some(location) if response.status == 202 && call.async_polling => {
                    let wait = response
                        .header("retry-after")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                        .unwrap_or(DEFAULT_POLL);
                    self.create_timer_after(wait).await;
                    call = DurableHttpRequest {
                        method: "GET".into(),
                        url: location,
                        body: None,
                        ..call
                    };
                    attempt = 1;
                }
                _ => return Ok(response),
            }
        }
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// The built-in activity: one HTTP request, its response recorded as it
/// came (a relative `Location` made absolute).
pub(crate) async fn http_activity(
    request: DurableHttpRequest,
) -> Result<DurableHttpResponse, Failure> {
    let bad = |m: String| Failure::new("InvalidHttpRequest", m).non_retriable();
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| bad(format!("`{}` is not an HTTP method", request.method)))?;
    let url = reqwest::Url::parse(&request.url)
        .map_err(|e| bad(format!("`{}` is not a URL: {e}", request.url)))?;
    let mut builder = client().request(method, url.clone());
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    if let Some(ms) = request.timeout_ms {
        builder = builder.timeout(Duration::from_millis(ms));
    }
    let response = builder.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            "HttpTimeout"
        } else {
            "HttpRequestFailed"
        };
        Failure::new(kind, format!("{} {}: {e}", request.method, request.url))
    })?;
    let status = response.status().as_u16();
    let mut headers = BTreeMap::new();
    for (k, v) in response.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_ascii_lowercase(), v.to_string());
        }
    }
    if let Some(loc) = headers.get("location").cloned() {
        if let Ok(abs) = url.join(&loc) {
            headers.insert("location".into(), abs.to_string());
        }
    }
    let body = response.text().await.map_err(|e| {
        Failure::new(
            "HttpRequestFailed",
            format!(
                "reading the response of {} {}: {e}",
                request.method, request.url
            ),
        )
    })?;
    Ok(DurableHttpResponse {
        status,
        headers,
        body,
    })
}
