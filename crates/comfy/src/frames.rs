//! Binary websocket frames: previews and progress text.
//!
//! Every frame opens with a big-endian `u32` event type. Type 1 is followed by a `u32`
//! image format (1 JPEG, 2 PNG) and the image; type 4 (sent instead of 1 once the client
//! negotiated `supports_preview_metadata`) by a `u32` length, that many bytes of JSON
//! metadata, and the image; type 3 by a `u32` length, the node id, and UTF-8 text.
//! Gateways have read these headers at the wrong offsets; the tests here pin them.

use bytes::Bytes;
use serde::Deserialize;

use crate::ids::{NodeId, PromptId};

/// One decoded binary frame.
#[derive(Debug, Clone, PartialEq)]
pub enum BinaryFrame {
    Preview(Preview),
    /// Streaming text a node sends to its UI (`send_progress_text`).
    Text {
        node_id: NodeId,
        text: String,
    },
    /// An event type we do not know, kept whole.
    Unknown {
        event_type: u32,
        payload: Bytes,
    },
}

/// A preview image, with the metadata type-4 frames carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub format: ImageFormat,
    pub metadata: Option<PreviewMetadata>,
    pub image: Bytes,
}

/// The image encoding of a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    /// Its MIME type.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/jpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// The JSON header of a type-4 frame: which prompt and node the preview belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PreviewMetadata {
    #[serde(default)]
    pub node_id: Option<NodeId>,
    #[serde(default)]
    pub prompt_id: Option<PromptId>,
    #[serde(default)]
    pub display_node_id: Option<NodeId>,
    #[serde(default)]
    pub real_node_id: Option<NodeId>,
    #[serde(default)]
    pub image_type: Option<String>,
}

/// A frame that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("binary frame of {len} bytes is shorter than its {needed}-byte header")]
    Truncated { len: usize, needed: usize },
    #[error("preview frame names unknown image format {0}")]
    UnknownImageFormat(u32),
    #[error("preview metadata names unknown image type {0:?}")]
    UnknownImageType(String),
    #[error("preview metadata is not valid JSON: {0}")]
    BadMetadata(String),
    #[error("text frame is not valid UTF-8")]
    BadText,
}

const PREVIEW_IMAGE: u32 = 1;
const TEXT: u32 = 3;
const PREVIEW_IMAGE_WITH_METADATA: u32 = 4;

/// Decodes one binary frame. The image bytes share the frame's buffer; nothing is copied.
///
/// # Errors
///
/// [`FrameError`] when the frame is shorter than its header says or its fields are invalid.
pub fn decode_frame(frame: Bytes) -> Result<BinaryFrame, FrameError> {
    let event_type = read_u32(&frame, 0)?;
    match event_type {
        PREVIEW_IMAGE => {
            let format = match read_u32(&frame, 4)? {
                1 => ImageFormat::Jpeg,
                2 => ImageFormat::Png,
                other => return Err(FrameError::UnknownImageFormat(other)),
            };
            Ok(BinaryFrame::Preview(Preview {
                format,
                metadata: None,
                image: frame.slice(8..),
            }))
        }
        PREVIEW_IMAGE_WITH_METADATA => {
            let (metadata_bytes, image) = length_prefixed(&frame)?;
            let metadata: PreviewMetadata = serde_json::from_slice(&metadata_bytes)
                .map_err(|error| FrameError::BadMetadata(error.to_string()))?;
            let image_type = metadata.image_type.clone().unwrap_or_default();
            let format = ImageFormat::from_mime(&image_type)
                .ok_or(FrameError::UnknownImageType(image_type))?;
            Ok(BinaryFrame::Preview(Preview {
                format,
                metadata: Some(metadata),
                image,
            }))
        }
        TEXT => {
            let (node_id, text) = length_prefixed(&frame)?;
            let node_id = String::from_utf8(node_id.to_vec()).map_err(|_| FrameError::BadText)?;
            let text = String::from_utf8(text.to_vec()).map_err(|_| FrameError::BadText)?;
            Ok(BinaryFrame::Text {
                node_id: NodeId::new(node_id),
                text,
            })
        }
        other => Ok(BinaryFrame::Unknown {
            event_type: other,
            payload: frame.slice(4..),
        }),
    }
}

/// Splits `[type u32][len u32][len bytes][rest]` into the counted part and the rest.
fn length_prefixed(frame: &Bytes) -> Result<(Bytes, Bytes), FrameError> {
    let len = usize::try_from(read_u32(frame, 4)?).unwrap_or(usize::MAX);
    let end = 8usize.saturating_add(len);
    if frame.len() < end {
        return Err(FrameError::Truncated {
            len: frame.len(),
            needed: end,
        });
    }
    Ok((frame.slice(8..end), frame.slice(end..)))
}

fn read_u32(frame: &[u8], offset: usize) -> Result<u32, FrameError> {
    let bytes = frame.get(offset..offset + 4).ok_or(FrameError::Truncated {
        len: frame.len(),
        needed: offset + 4,
    })?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_be_bytes(word))
}
