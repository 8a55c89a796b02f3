//! Which node classes the backends know, from their `/object_info`, for checking a
//! submitted graph before it is accepted.
//!
//! The answer is cached for a minute: `/object_info` is large and changes only when a
//! backend installs nodes. A backend that does not answer is left out; when none answers,
//! the check is skipped (the caller gets `None`) and ComfyUI's own validation at dispatch
//! decides, rather than refusing work because a backend is briefly away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use comfy::server_info::ObjectInfo;
use futures_util::future::join_all;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::scheduler::BackendSpec;

/// How long a fetched catalogue is trusted.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long "no backend answered" is remembered, so submissions do not each wait on it.
const FAILURE_FRESH_FOR: Duration = Duration::from_secs(5);
/// How long one backend may take to answer before it is left out.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Node classes known to at least one backend, with how many outputs each has.
#[derive(Debug, Default)]
pub struct NodeCatalog {
    outputs: HashMap<String, usize>,
    /// The backends' `/object_info` merged, the first backend to describe a class winning:
    /// templates read input types, bounds and choices from it.
    info: ObjectInfo,
}

impl NodeCatalog {
    pub fn knows(&self, class_type: &str) -> bool {
        self.outputs.contains_key(class_type)
    }

    /// How many outputs the class has, when it is known.
    pub fn output_count(&self, class_type: &str) -> Option<usize> {
        self.outputs.get(class_type).copied()
    }

    pub fn object_info(&self) -> &ObjectInfo {
        &self.info
    }
}

/// Class names with their output counts.
impl FromIterator<(String, usize)> for NodeCatalog {
    fn from_iter<T: IntoIterator<Item = (String, usize)>>(classes: T) -> Self {
        Self {
            outputs: classes.into_iter().collect(),
            info: ObjectInfo::new(),
        }
    }
}

#[derive(Debug)]
struct Fetched {
    at: Instant,
    catalog: Option<Arc<NodeCatalog>>,
}

impl Fetched {
    fn is_fresh(&self) -> bool {
        let lifetime = if self.catalog.is_some() {
            FRESH_FOR
        } else {
            FAILURE_FRESH_FOR
        };
        self.at.elapsed() < lifetime
    }
}

/// The cached catalogue of the configured backends.
#[derive(Debug, Default)]
pub struct NodeClassCache {
    fetched: Mutex<Option<Fetched>>,
}

impl NodeClassCache {
    /// The catalogue, fetched when stale; `None` when no backend answers.
    pub async fn catalog(&self, backends: &[BackendSpec]) -> Option<Arc<NodeCatalog>> {
        // Held across the fetch: concurrent submissions wait for one fetch, not start many.
        let mut fetched = self.fetched.lock().await;
        if let Some(cached) = fetched.as_ref().filter(|cached| cached.is_fresh()) {
            return cached.catalog.clone();
        }
        let catalog = fetch(backends).await.map(Arc::new);
        *fetched = Some(Fetched {
            at: Instant::now(),
            catalog: catalog.clone(),
        });
        catalog
    }
}

async fn fetch(backends: &[BackendSpec]) -> Option<NodeCatalog> {
    let answers = join_all(backends.iter().map(|backend| async move {
        let answer = tokio::time::timeout(FETCH_TIMEOUT, backend.client.object_info()).await;
        match answer {
            Ok(Ok(info)) => Some(info),
            Ok(Err(error)) => {
                tracing::warn!(backend.id = %backend.id, %error, "object_info unavailable");
                None
            }
            Err(_) => {
                tracing::warn!(backend.id = %backend.id, "object_info timed out");
                None
            }
        }
    }))
    .await;

    let answered: Vec<_> = answers.into_iter().flatten().collect();
    if answered.is_empty() {
        return None;
    }
    let mut info = ObjectInfo::new();
    for (class_type, schema) in answered.into_iter().flatten() {
        info.entry(class_type).or_insert(schema);
    }
    let outputs = info
        .iter()
        .map(|(class_type, schema)| (class_type.clone(), schema.output.len()))
        .collect();
    Some(NodeCatalog { outputs, info })
}
