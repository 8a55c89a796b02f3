//! Darkroom: a gateway in front of ComfyUI.
pub mod api;
pub mod artifacts;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
#[doc(hidden)]
pub mod fuzzing;
pub mod jobs;
pub mod metrics;
pub mod retention;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod templates;
pub mod thumbnails;
