//! Test support shared by every crate: a real ComfyUI started per test binary (or per
//! test), from the install that `scripts/install-comfyui.sh` makes, cleaned up when the
//! test process ends however it ends.
//!
//! The real-ComfyUI tier never skips silently: without an install, starting one fails
//! the test with the command to run. Only `DARKROOM_SKIP_REAL_COMFYUI=1` skips it, and
//! the test script announces that loudly.

// Test support speaks to the person running the tests on stderr, as the test harness does.
#![allow(clippy::print_stderr)]

pub mod conformance;
pub mod graphs;
mod real_comfy;
pub mod scenarios;

pub use real_comfy::{RealComfyUi, StartOptions, comfyui_home, prepare_base_dir, repo_root};

/// Waits until `condition` returns `Some`, polling every `interval`, for at most
/// `timeout`; for the rare state with no event to wait on (a file on another process's
/// disk). Panics with `what` on timeout.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    interval: std::time::Duration,
    mut condition: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(interval).await;
    }
}
