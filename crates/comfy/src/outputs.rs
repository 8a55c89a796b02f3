//! The outputs a node reports in its UI dict, read completely and without guessing.
//!
//! Rules, from ComfyUI's core nodes and the common custom ones:
//! - a list item that is an object with a `filename` is a file, whatever the key
//!   (`images`, `gifs`, `audio`, `3d`, `latents`, custom keys alike);
//! - `text` holds strings;
//! - `animated` is a per-node flag list saying the node's `images` are animations
//!   (SaveAnimatedWEBP, SaveVideo), not an output of its own;
//! - anything else is kept as raw JSON, with a debug line, never dropped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::NodeId;

/// Where ComfyUI keeps a file; `/view` takes it as `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Output,
    Temp,
    Input,
}

impl FileType {
    /// The spelling of `type` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Temp => "temp",
            Self::Input => "input",
        }
    }

    fn parse(value: Option<&str>) -> Option<Self> {
        // `/view` treats a missing type as `output`; so do we.
        match value {
            None | Some("output") => Some(Self::Output),
            Some("temp") => Some(Self::Temp),
            Some("input") => Some(Self::Input),
            Some(_) => None,
        }
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A file on a ComfyUI server, as `/view` addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileRef {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(rename = "type")]
    pub file_type: FileType,
}

/// What kind of media an output file is, from its key, flags and extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Model3d,
    Latent,
    Other,
}

/// One output of one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    File(OutputFile),
    Text {
        node_id: NodeId,
        key: String,
        text: String,
    },
    /// A UI value we do not interpret, kept whole so nothing is lost.
    Unrecognized {
        node_id: NodeId,
        key: String,
        value: Value,
    },
}

/// A file output, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    pub node_id: NodeId,
    /// The UI key it was listed under (`images`, `gifs`, `audio`, ...).
    pub key: String,
    pub file: FileRef,
    pub media: MediaKind,
    /// Whether the node flagged it as an animation (`animated: [true]`).
    pub animated: bool,
    /// Any other fields of the item (`format`, `frame_rate`, `fullpath`, ...).
    pub extra: serde_json::Map<String, Value>,
}

impl OutputFile {
    /// The MIME type implied by the file name's extension.
    pub fn mime_type(&self) -> &'static str {
        mime_type_for(&self.file.filename)
    }
}

/// Reads one node's UI dict into outputs.
pub fn parse_node_outputs(node_id: &NodeId, ui: &Value) -> Vec<Output> {
    let Value::Object(keys) = ui else {
        tracing::debug!(node.id = %node_id, "node output is not an object; kept raw");
        return vec![unrecognized(node_id, "", ui)];
    };
    let animated = keys
        .get("animated")
        .and_then(Value::as_array)
        .is_some_and(|flags| flags.iter().any(|flag| flag.as_bool() == Some(true)));

    let mut outputs = Vec::new();
    for (key, value) in keys {
        if key == "animated"
            && value
                .as_array()
                .is_some_and(|flags| flags.iter().all(Value::is_boolean))
        {
            continue;
        }
        let Value::Array(items) = value else {
            tracing::debug!(node.id = %node_id, output.key = %key, "output is not a list; kept raw");
            outputs.push(unrecognized(node_id, key, value));
            continue;
        };
        for item in items {
            outputs.push(parse_item(node_id, key, item, animated));
        }
    }
    outputs
}

fn parse_item(node_id: &NodeId, key: &str, item: &Value, animated: bool) -> Output {
    if let Some(text) = item.as_str().filter(|_| key == "text") {
        return Output::Text {
            node_id: node_id.clone(),
            key: key.to_owned(),
            text: text.to_owned(),
        };
    }
    let Some(fields) = item.as_object() else {
        tracing::debug!(node.id = %node_id, output.key = %key, "output item is not a file; kept raw");
        return unrecognized(node_id, key, item);
    };
    let Some(filename) = fields.get("filename").and_then(Value::as_str) else {
        tracing::debug!(node.id = %node_id, output.key = %key, "output item has no filename; kept raw");
        return unrecognized(node_id, key, item);
    };
    let type_field = fields.get("type").and_then(Value::as_str);
    let Some(file_type) = FileType::parse(type_field) else {
        tracing::debug!(node.id = %node_id, output.key = %key, file.type = ?type_field, "unknown file type; kept raw");
        return unrecognized(node_id, key, item);
    };

    let subfolder = fields
        .get("subfolder")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut extra = fields.clone();
    for known in ["filename", "subfolder", "type"] {
        extra.remove(known);
    }
    Output::File(OutputFile {
        node_id: node_id.clone(),
        key: key.to_owned(),
        media: media_kind(key, filename, animated),
        file: FileRef {
            filename: filename.to_owned(),
            subfolder: subfolder.to_owned(),
            file_type,
        },
        animated,
        extra,
    })
}

fn unrecognized(node_id: &NodeId, key: &str, value: &Value) -> Output {
    Output::Unrecognized {
        node_id: node_id.clone(),
        key: key.to_owned(),
        value: value.clone(),
    }
}

fn media_kind(key: &str, filename: &str, animated: bool) -> MediaKind {
    let mime = mime_type_for(filename);
    match key {
        "audio" => MediaKind::Audio,
        "3d" => MediaKind::Model3d,
        "latents" => MediaKind::Latent,
        "gifs" | "video" | "videos" => MediaKind::Video,
        _ if mime.starts_with("video/") => MediaKind::Video,
        _ if mime.starts_with("audio/") => MediaKind::Audio,
        _ if mime.starts_with("model/") => MediaKind::Model3d,
        "images" if animated => MediaKind::Video,
        _ if mime.starts_with("image/") => MediaKind::Image,
        "images" => MediaKind::Image,
        _ => MediaKind::Other,
    }
}

/// The MIME type for a file name, by extension; `application/octet-stream` when unknown.
pub fn mime_type_for(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("mkv") => "video/x-matroska",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("ogg") => "audio/ogg",
        Some("opus") => "audio/opus",
        Some("glb") => "model/gltf-binary",
        Some("gltf") => "model/gltf+json",
        Some("obj") => "model/obj",
        Some("txt") => "text/plain",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
