//! A typed client for ComfyUI's protocol: its HTTP routes, its websocket messages and
//! binary frames, and its history format.
//!
//! This crate speaks ComfyUI and nothing else: no jobs, no storage, no policy. It is the
//! layer where every quirk of the protocol is handled once (events routed by client id,
//! `execution_success` before the history exists, preview headers, version differences),
//! so code above it never sees them.

mod client;
mod error;
pub mod events;
pub mod frames;
pub mod history;
mod ids;
pub mod outputs;
pub mod prompt;
pub mod server_info;
pub mod socket;

pub use client::{ByteStream, ComfyUiClient, Download, Timeouts, Upload};
pub use error::ComfyError;
pub use events::ServerMessage;
pub use frames::BinaryFrame;
pub use history::{HistoryEntry, RunOutcome};
pub use ids::{ClientId, NodeId, PromptId};
pub use outputs::{FileRef, FileType, MediaKind, Output, OutputFile};
pub use prompt::{ApiGraph, PromptAccepted, PromptRejection, PromptRequest};
pub use server_info::{Capabilities, QueueSnapshot, Version};
pub use socket::{SocketConfig, SocketEvent, SocketHandle, spawn_socket};
