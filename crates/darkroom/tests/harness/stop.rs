//! Stopping a `darkroom serve` as a person's Ctrl-C would, shared by the test harnesses.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Sends SIGTERM to `child` and waits, at most `patience`, for it to exit.
///
/// # Panics
///
/// When the signal cannot be sent or the process outlives `patience`: the failure message
/// we want.
pub async fn terminate(child: &mut Child, patience: Duration) -> ExitStatus {
    if let Some(pid) = child.id() {
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }
    tokio::time::timeout(patience, child.wait())
        .await
        .expect("darkroom stops after SIGTERM in time")
        .expect("wait for darkroom")
}
