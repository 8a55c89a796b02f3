//! What a server is: `/system_stats`, `/features`, `/object_info`, `/queue`, and the
//! capabilities derived from its version.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ids::PromptId;

/// `GET /system_stats`, the parts a gateway uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SystemStats {
    pub system: SystemInfo,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SystemInfo {
    #[serde(default)]
    pub comfyui_version: Option<String>,
    #[serde(default)]
    pub python_version: Option<String>,
    #[serde(default)]
    pub pytorch_version: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub ram_total: Option<u64>,
    #[serde(default)]
    pub ram_free: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub name: String,
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default)]
    pub vram_total: Option<u64>,
    #[serde(default)]
    pub vram_free: Option<u64>,
}

/// `GET /features`: server feature flags, such as `supports_preview_metadata`.
pub type Features = Map<String, Value>;

/// `GET /object_info`: node class name to its schema.
pub type ObjectInfo = BTreeMap<String, NodeSchema>;

/// One node class as `/object_info` describes it. Input specs stay JSON (`[type, options]`
/// tuples) in their declared order; the templates layer reads them.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeSchema {
    #[serde(default, deserialize_with = "null_as_default")]
    pub input: NodeInputs,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_is_list: Vec<Option<bool>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_name: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub display_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub category: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_node: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeInputs {
    #[serde(default, deserialize_with = "null_as_default")]
    pub required: Map<String, Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub optional: Map<String, Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub hidden: Map<String, Value>,
}

/// `GET /queue`: what runs now and what waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSnapshot {
    pub running: Vec<QueueItem>,
    /// In ComfyUI's priority order (the server sends a heap copy; we sort it by number).
    pub pending: Vec<QueueItem>,
}

impl QueueSnapshot {
    /// True when the prompt is running or waiting.
    pub fn contains(&self, prompt_id: &PromptId) -> bool {
        self.running
            .iter()
            .chain(&self.pending)
            .any(|item| &item.prompt_id == prompt_id)
    }

    /// How many prompts run or wait ahead of this one, when it is pending.
    pub fn position(&self, prompt_id: &PromptId) -> Option<usize> {
        let index = self
            .pending
            .iter()
            .position(|item| &item.prompt_id == prompt_id)?;
        Some(index + self.running.len())
    }
}

/// One queue entry: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub number: f64,
    pub prompt_id: PromptId,
    pub client_id: Option<String>,
}

impl QueueSnapshot {
    pub(crate) fn parse(body: &Value) -> Result<Self, String> {
        let list = |key: &str| -> Result<Vec<QueueItem>, String> {
            let items = body
                .get(key)
                .and_then(Value::as_array)
                .ok_or(format!("no {key} list"))?;
            items.iter().map(QueueItem::parse).collect()
        };
        let mut pending = list("queue_pending")?;
        pending.sort_by(|left, right| left.number.total_cmp(&right.number));
        Ok(Self {
            running: list("queue_running")?,
            pending,
        })
    }
}

impl QueueItem {
    fn parse(item: &Value) -> Result<Self, String> {
        let number = item
            .get(0)
            .and_then(Value::as_f64)
            .ok_or("queue item without number")?;
        let prompt_id = item
            .get(1)
            .and_then(Value::as_str)
            .ok_or("queue item without id")?;
        let client_id = item
            .pointer("/3/client_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Self {
            number,
            prompt_id: PromptId::new(prompt_id),
            client_id,
        })
    }
}

/// A ComfyUI release number, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Reads `0.3.75` (ignoring a `v` prefix and any suffix after the third number).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().trim_start_matches('v').split(['.', '-', '+']);
        let mut number = || parts.next()?.parse::<u32>().ok();
        Some(Self(number()?, number()?, number().unwrap_or(0)))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a server can do, decided once from its version and routes.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// `None` when `/system_stats` did not say (very old servers).
    pub version: Option<Version>,
    /// `POST /interrupt {"prompt_id"}` stops only that prompt (0.3.57+); before, any
    /// interrupt is global.
    pub interrupt_by_id: bool,
    /// `POST /prompt` honours a client-chosen `prompt_id` (0.3.45+).
    pub client_prompt_id: bool,
    /// The websocket feature-flag handshake and type-4 preview frames (0.3.45+).
    pub preview_metadata: bool,
    /// `GET /api/jobs` exists (found by asking, not by version).
    pub jobs_api: bool,
}

impl Capabilities {
    /// Capabilities implied by a version, with `jobs_api` as probed.
    pub fn for_version(version: Option<Version>, jobs_api: bool) -> Self {
        let at_least = |wanted: Version| version.is_some_and(|have| have >= wanted);
        Self {
            version,
            interrupt_by_id: at_least(Version(0, 3, 57)),
            client_prompt_id: at_least(Version(0, 3, 45)),
            preview_metadata: at_least(Version(0, 3, 45)),
            jobs_api,
        }
    }

    /// The version as text, for messages.
    pub fn version_text(&self) -> String {
        self.version.map_or_else(
            || "of unknown version".to_owned(),
            |version| version.to_string(),
        )
    }
}

/// Custom nodes publish `null` where core nodes publish a string or a list; both mean
/// "nothing here".
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
