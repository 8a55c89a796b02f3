//! Darkroom: a gateway in front of ComfyUI.
pub mod api;
pub mod cli;
pub mod config;
pub mod server;
