//! Secrets never reach the log: the real binary at its most talkative (`RUST_LOG=trace`)
//! serves a job submitted with an API key and a partner key in `extra_data`, and its log
//! holds neither. Against the simulator.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod harness;

use comfy_sim::Simulator;
use harness::DarkroomProcess;
use serde_json::json;

#[tokio::test]
async fn keys_and_partner_keys_never_reach_the_log() {
    let sim = Simulator::builder().start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let created = tokio::process::Command::new(env!("CARGO_BIN_EXE_darkroom"))
        .args(["keys", "create", "logged", "--data-dir"])
        .arg(data.path())
        .env_remove("DARKROOM_CONFIG")
        .env_remove("DARKROOM_DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert!(created.status.success());
    let key = String::from_utf8_lossy(&created.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();

    let server =
        DarkroomProcess::start_with(data.path(), &sim.base_url(), &[("RUST_LOG", "trace")]).await;
    let partner = "comfy-partner-secret-9f8e7d6c5b4a";
    let response = server
        .http
        .post(format!("{}/api/v2/jobs", server.base))
        .bearer_auth(&key)
        .json(&json!({
            "workflow": harness::steps_graph(2, 1, 255),
            "extra_data": {"api_key_comfy_org": partner},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let job: serde_json::Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    // Refused requests are logged too: a wrong key, and a key in a cookie.
    let refused = server
        .http
        .get(format!("{}/api/v2/jobs/{id}", server.base))
        .bearer_auth(format!("{key}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let mut events = server
        .http
        .get(format!("{}/api/v2/jobs/{id}/events", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    while events.chunk().await.unwrap().is_some() {}
    server.kill_hard().await;

    let mut logs = 0;
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            assert!(
                log.contains("job accepted"),
                "the log is the server's: {path:?}"
            );
            assert!(!log.contains(partner), "the partner key is in {path:?}");
            assert!(!log.contains(&key[4..]), "the API key is in {path:?}");
            logs += 1;
        }
    }
    assert_eq!(logs, 1);
}
