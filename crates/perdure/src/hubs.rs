//! Task hubs: isolated sets of instances and work beside one another. A
//! hub's name rules ([`hub_name`]), where its store lives beside the default
//! hub's ([`hub_store_url`]), deleting one ([`delete_store`]), and
//! [`TaskHubs`], the hubs one server serves: opened on first use and shared
//! by every door (HTTP and gRPC), so a memory store's hub is one store.

use crate::Client;
use perdure_store::StoreError;
use std::collections::HashMap;
use tokio::sync::Mutex;

/// The name of the task hub a client names when it names none.
pub const DEFAULT_HUB: &str = "default";

/// A task hub's name as stores key it: lowercase, `-` read as `_`, 1 to 40
/// characters of a-z, 0-9 and `_`; empty is the default hub.
pub fn hub_name(name: &str) -> Result<String, StoreError> {
    let n = name.trim().to_lowercase().replace('-', "_");
    if n.is_empty() {
        return Ok(DEFAULT_HUB.to_string());
    }
    if n.len() > 40
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::BadUrl(
            name.to_string(),
            "a task hub name is 1 to 40 characters of a-z, 0-9, - and _".into(),
        ));
    }
    Ok(n)
}

/// The store URL of task hub `hub` beside the store `base` opens (which
/// holds the default hub): another SQLite file beside it
/// (`perdure.db` -> `perdure.HUB.db`), another PostgreSQL schema in the same
/// database (`?hub=HUB`, or `BASEHUB_HUB` when the base names a hub of its
/// own), or another memory store.
pub fn hub_store_url(base: &str, hub: &str) -> Result<String, StoreError> {
    let hub = hub_name(hub)?;
    if hub == DEFAULT_HUB {
        return Ok(base.to_string());
    }
    if base == "memory" || base == "memory://" {
        return Ok(base.to_string());
    }
    if let Some(path) = base.strip_prefix("sqlite://") {
        let file = match path.strip_suffix(".db") {
            Some(stem) => format!("{stem}.{hub}.db"),
            None => format!("{path}.{hub}"),
        };
        return Ok(format!("sqlite://{file}"));
    }
    if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        let (head, query) = base.split_once('?').unwrap_or((base, ""));
        let mut parts: Vec<String> = Vec::new();
        let mut named = None;
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("hub", v)) => named = Some(v.to_string()),
                _ => parts.push(kv.to_string()),
            }
        }
        let full = match named.filter(|n| n != DEFAULT_HUB) {
            Some(base_hub) => format!("{base_hub}_{hub}"),
            None => hub,
        };
        parts.push(format!("hub={full}"));
        return Ok(format!("{head}?{}", parts.join("&")));
    }
    Err(StoreError::BadUrl(
        perdure_store::redact_url(base),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}

/// Deletes everything the store at `url` holds (a task hub): its SQLite
/// file, its PostgreSQL schema; a memory store is gone once dropped. Stores
/// still open on it fail from then on, or (SQLite) go on with a file that
/// no longer has a name.
pub async fn delete_store(url: &str) -> Result<(), StoreError> {
    if url == "memory" || url == "memory://" {
        return Ok(());
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(format!("{path}{suffix}")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Backend(format!("deleting {path}{suffix}: {e}"))),
            }
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return perdure_postgres::PostgresStore::delete_hub(url).await;
    }
    Err(StoreError::BadUrl(
        perdure_store::redact_url(url),
        "expected sqlite://PATH, postgres://USER@HOST/DB or memory".into(),
    ))
}

/// Why a task hub could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("task hub `{name}`: {reason}")]
    BadName { name: String, reason: String },
    #[error("task hub `{0}`: this server serves only the default task hub")]
    SingleHub(String),
    #[error("the default task hub is the server's own store; delete it with the server stopped")]
    DefaultHub,
    #[error("task hub `{name}`: {source}")]
    Store { name: String, source: StoreError },
}

/// The task hubs a server serves: the default hub (the server's own store)
/// and, when the server knows its store's URL, any other hub opened beside
/// it on first use. Each hub's store is opened once and shared.
pub struct TaskHubs {
    base: Option<String>,
    default: Client,
    opened: Mutex<HashMap<String, Client>>,
}

impl TaskHubs {
    /// The hubs beside `base`, the URL of the store `default` works on;
    /// with `None`, only the default hub.
    pub fn new(default: Client, base: Option<String>) -> Self {
        TaskHubs {
            base,
            default,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// Only the default hub.
    pub fn single(default: Client) -> Self {
        Self::new(default, None)
    }

    /// The default hub's client.
    pub fn default_client(&self) -> &Client {
        &self.default
    }

    /// A hub's name as [`hub_name`] reads it, or why it is not one.
    pub fn name(raw: &str) -> Result<String, HubError> {
        hub_name(raw).map_err(|e| HubError::BadName {
            name: raw.to_string(),
            reason: match e {
                StoreError::BadUrl(_, why) => why,
                other => other.to_string(),
            },
        })
    }

    fn url(&self, name: &str) -> Result<String, HubError> {
        let base = self
            .base
            .as_deref()
            .ok_or_else(|| HubError::SingleHub(name.to_string()))?;
        hub_store_url(base, name).map_err(|source| HubError::Store {
            name: name.to_string(),
            source,
        })
    }

    /// The client of hub `raw` (its name as given; empty is the default
    /// hub), its store opened if this is its first use. Returns the hub's
    /// name too.
    pub async fn client(&self, raw: &str) -> Result<(String, Client), HubError> {
        let name = Self::name(raw)?;
        if name == DEFAULT_HUB {
            return Ok((name, self.default.clone()));
        }
        let mut opened = self.opened.lock().await;
        if let Some(c) = opened.get(&name) {
            return Ok((name, c.clone()));
        }
        let url = self.url(&name)?;
        let store = crate::open_store(&url)
            .await
            .map_err(|source| HubError::Store {
                name: name.clone(),
                source,
            })?;
        let client = Client::new(store);
        tracing::info!(hub = %name, "task hub opened");
        opened.insert(name.clone(), client.clone());
        Ok((name, client))
    }

    /// Deletes hub `raw`'s store and forgets it; the next use opens it
    /// empty.
    pub async fn delete(&self, raw: &str) -> Result<String, HubError> {
        let name = Self::name(raw)?;
        if name == DEFAULT_HUB {
            return Err(HubError::DefaultHub);
        }
        let url = self.url(&name)?;
        let mut opened = self.opened.lock().await;
        opened.remove(&name);
        delete_store(&url).await.map_err(|source| HubError::Store {
            name: name.clone(),
            source,
        })?;
        tracing::info!(hub = %name, "task hub deleted");
        Ok(name)
    }
}
