//! Two real ComfyUI processes managed by Darkroom: a burst of jobs is spread over both;
//! one process is killed (SIGKILL, by the pid Darkroom reports for the process it
//! started) while it runs a job; its jobs finish on the other or after its restart; no
//! job is lost or run twice; Darkroom starts the killed process again.
//!
//! Real-ComfyUI tier: it needs `scripts/install-comfyui.sh`, and with
//! `DARKROOM_SKIP_REAL_COMFYUI=1` it is SKIPPED and says so.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "a panic is the failure message; the skip notice goes to the test's output"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use darkroom::config::{BackendConfig, ManagedConfig};
use serde_json::{Value, json};
use support::{Options, TestServer};

/// ComfyUI starts in tens of seconds on a small CPU machine; two start at once.
const START_PATIENCE: Duration = Duration::from_secs(180);
const JOBS: usize = 6;
const STEPS: u64 = 12;

fn managed(name: &str, home: &Path, base: &Path) -> BackendConfig {
    let mut backend = BackendConfig::at_url(name, "");
    backend.managed = Some(ManagedConfig {
        python: home.join("venv/bin/python"),
        comfyui_dir: home.join("comfyui"),
        args: [
            "--cpu",
            "--disable-api-nodes",
            "--dont-print-server",
            "--database-url",
            "sqlite:///:memory:",
            "--front-end-root",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([
            home.join("webroot-empty").display().to_string(),
            "--base-directory".to_owned(),
            base.display().to_string(),
        ])
        .collect(),
        env: BTreeMap::new(),
        port: 0,
        ready_timeout: START_PATIENCE,
    });
    backend
}

fn steps_job(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": STEPS, "step_ms": 150, "preview": false, "preview_format": "JPEG",
            "progress_text": false, "size": 16, "color": 3368652, "always_run": true}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

/// Output files whose name starts with `prefix`, in both backends' output folders.
fn files_named(data_dir: &Path, prefix: &str) -> usize {
    ["one", "two"]
        .iter()
        .filter_map(|name| {
            std::fs::read_dir(data_dir.join("backends").join(name).join("output")).ok()
        })
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_managed_comfyui_loses_no_job_and_is_started_again() {
    if std::env::var("DARKROOM_SKIP_REAL_COMFYUI").as_deref() == Ok("1") {
        eprintln!("SKIPPED: managed real ComfyUI tier (DARKROOM_SKIP_REAL_COMFYUI=1)");
        return;
    }
    let home = testkit::comfyui_home();
    assert!(
        home.join(".installed").exists(),
        "no ComfyUI installed in {}: run scripts/install-comfyui.sh first \
         (or set DARKROOM_SKIP_REAL_COMFYUI=1 to skip this tier knowingly)",
        home.display()
    );
    let base = testkit::prepare_base_dir(&home);
    let server = TestServer::with(Options {
        prompts_per_backend: 2,
        backends: vec![
            managed("one", &home, base.path()),
            managed("two", &home, base.path()),
        ],
        ..Options::default()
    })
    .await;
    let up = |backend: &Value| backend["state"] == "up";
    let started = std::time::Instant::now();
    let first = server.wait_backend("one", "up", START_PATIENCE, up).await;
    server.wait_backend("two", "up", START_PATIENCE, up).await;
    eprintln!(
        "two managed ComfyUI processes up after {:?}",
        started.elapsed()
    );
    let first_pid = first["managed"]["pid"].as_u64().unwrap();

    let mut jobs = Vec::new();
    for index in 0..JOBS {
        let job = server.submit(&steps_job(&format!("burst{index}-"))).await;
        jobs.push(job["id"].as_str().unwrap().to_owned());
    }

    // Kill "one" while it runs a job, early in its steps.
    let running = server
        .wait_backend("one", "running a job", START_PATIENCE, |backend| {
            backend["current_job"]["state"] == "running"
                && backend["current_job"]["progress"]["step"]
                    .as_u64()
                    .is_some_and(|step| step < STEPS - 4)
        })
        .await;
    let victim = running["current_job"]["id"].as_str().unwrap().to_owned();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill the process Darkroom started");
    let killed_at = std::time::Instant::now();

    let mut posted_to = BTreeSet::new();
    for (index, id) in jobs.iter().enumerate() {
        let done = server.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["outputs"].as_array().unwrap().len(), 1, "{done}");
        for event in server.events_to_end(id).await {
            if event.name == "log" && event.data["outcome"] == "posted" {
                posted_to.insert(event.data["backend"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(
            files_named(server.data_dir(), &format!("burst{index}-")),
            1,
            "job {index} ran to its end exactly once"
        );
    }
    assert_eq!(
        posted_to.len(),
        2,
        "the burst was spread over both backends"
    );
    let victim_done = server.job(&victim).await;
    assert_eq!(victim_done["attempt"], 2, "{victim_done}");
    let events = server.events_to_end(&victim).await;
    assert!(
        events.iter().any(|event| event.name == "log"
            && event.data["outcome"] == "lost"
            && event.data["backend"] == "one"),
        "the lost attempt is recorded: {events:?}"
    );

    let restarted = server
        .wait_backend("one", "restarted", START_PATIENCE, |backend| {
            up(backend) && backend["managed"]["restarts"] == 1
        })
        .await;
    assert_ne!(restarted["managed"]["pid"].as_u64(), Some(first_pid));
    eprintln!(
        "killed ComfyUI up again after {:?}; every job done and restart seen",
        killed_at.elapsed()
    );
    let log = std::fs::read_to_string(server.data_dir().join("backends/one/comfyui.log")).unwrap();
    assert_eq!(
        log.matches("--- darkroom started comfyui").count(),
        2,
        "{log}"
    );

    // The restarted process takes work again.
    let after = server.submit(&steps_job("after-")).await;
    let after = server.wait_final(after["id"].as_str().unwrap()).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    server.stop().await;
}
