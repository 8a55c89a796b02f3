//! The simulator conforms to the real ComfyUI: every scenario is run against both, and
//! both must send the same message types in the same order, with the same shapes, answer
//! the same HTTP exchanges with the same statuses and shapes, and record the same history
//! shapes. The golden transcripts must still match the live server too, so a fixture that
//! went stale is caught.
//!
//! One test, one real server of its own, scenarios in the recorder's order: ComfyUI's
//! cache and queue broadcasts make scenarios that run side by side see each other.

// A failed unwrap is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use testkit::conformance::{differences, from_json};
use testkit::{RealComfyUi, StartOptions, repo_root, scenarios};

#[tokio::test]
async fn simulator_and_fixtures_conform_to_real_comfyui_in_every_scenario() {
    let Some(real) = RealComfyUi::start(StartOptions::default()) else {
        return;
    };
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    // The real server runs with latent previews on (`--preview-method latent2rgb`).
    sim.set_knobs(|knobs| knobs.previews = true);

    let mut report = Vec::new();
    for name in scenarios::ALL {
        let live = scenarios::run(name, &real.base_url()).await;

        let path = repo_root().join(format!("fixtures/transcripts/{name}.json"));
        let recorded =
            from_json(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
        for difference in differences(&recorded, &live) {
            report.push(format!(
                "[{name}] golden transcript is stale (re-record it): {difference}"
            ));
        }

        // A scenario the simulator cannot complete is a difference, not the end of the test.
        let base = sim.base_url();
        let simulated = match tokio::spawn(async move { scenarios::run(name, &base).await }).await {
            Ok(transcript) => transcript,
            Err(panic) => {
                report.push(format!("[{name}] simulator run failed: {panic}"));
                continue;
            }
        };
        for difference in differences(&live, &simulated) {
            report.push(format!("[{name}] simulator differs: {difference}"));
        }
    }
    sim.shutdown().await;
    assert!(report.is_empty(), "{}", report.join("\n"));
}
