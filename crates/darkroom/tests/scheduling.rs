//! Many backends, simulated: a job goes only to a backend with its node classes, a
//! draining backend takes no new job, one owner's flood does not hold back another
//! owner's single job, a backend that restarts mid-run has its jobs run again, and
//! `/metrics` parses as Prometheus text and counts the jobs run, and the template list
//! marks the templates no backend can run.
//!
//! Waits follow job events; the only polling is for a backend's state, which has no event
//! stream, bounded by `PATIENCE`.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want; \
              figures go to the test's output"
)]

mod support;

use std::collections::HashMap;

use comfy_sim::{SimHandle, Simulator};
use darkroom::auth::{KeyLimits, Role};
use darkroom::config::BackendConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestServer, save_image, steps_then_save};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn sim(without: &[&str]) -> SimHandle {
    Simulator::builder()
        .without_classes(without.iter().map(|name| (*name).to_owned()).collect())
        .start()
        .await
        .unwrap()
}

async fn server_with(backends: &[(&str, &SimHandle)], prompts_per_backend: u32) -> TestServer {
    TestServer::with(Options {
        prompts_per_backend,
        backends: backends
            .iter()
            .map(|(name, sim)| BackendConfig::at_url(*name, sim.base_url()))
            .collect(),
        ..Options::default()
    })
    .await
}

fn time_of(job: &Value, field: &str) -> OffsetDateTime {
    OffsetDateTime::parse(job[field].as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn a_job_needing_a_node_only_one_backend_has_goes_to_that_one() {
    let plain = sim(&["DarkroomSteps"]).await;
    let full = sim(&[]).await;
    let server = server_with(&[("plain", &plain), ("full", &full)], 2).await;
    server.wait_backend_in("plain", "up").await;
    server.wait_backend_in("full", "up").await;

    let mut steps = Vec::new();
    let mut saves = Vec::new();
    for index in 0..4 {
        steps.push(server.submit(&steps_then_save(3, 10)).await);
        saves.push(server.submit(&save_image(&format!("save-{index}"))).await);
    }
    for job in &steps {
        let done = server.wait_final(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["backend"], "full", "{done}");
    }
    for job in &saves {
        let done = server.wait_final(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    assert!(
        plain.posted_prompts().len() + full.posted_prompts().len() == 8,
        "each job posted once"
    );

    // A node no backend has: refused at once, naming what each backend lacks.
    let nowhere = json!({"1": {"class_type": "NoSuchNode", "inputs": {}}});
    let (status, refused) = server.try_submit(&nowhere).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchNode"),
        "{refused}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_job_needing_what_no_single_backend_has_is_refused_naming_each_lack() {
    let no_steps = sim(&["DarkroomSteps"]).await;
    let no_save = sim(&["SaveImage"]).await;
    let server = server_with(&[("no-steps", &no_steps), ("no-save", &no_save)], 2).await;
    server.wait_backend_in("no-steps", "up").await;
    server.wait_backend_in("no-save", "up").await;

    let (status, refused) = server.try_submit(&steps_then_save(2, 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_workflow");
    let lacks = &refused["error"]["details"]["backends"];
    assert_eq!(
        lacks["no-steps"], "node class \"DarkroomSteps\"",
        "{refused}"
    );
    assert_eq!(lacks["no-save"], "node class \"SaveImage\"", "{refused}");
    server.stop().await;
}

/// The template list says which templates no backend can run, and why, before anyone
/// fills in a form: a node class none has, or a model file none has outside the
/// parameters (one a parameter names, the client may choose among the backend's files).
/// A job of such a template is refused with the same reason.
#[tokio::test]
async fn templates_no_backend_can_run_are_marked_with_what_each_backend_lacks() {
    let plain = sim(&["DarkroomSteps"]).await;
    let templates = tempfile::tempdir().unwrap();
    let write = |name: &str, graph: &Value| {
        std::fs::write(templates.path().join(name), graph.to_string()).unwrap();
    };
    write("card.json", &save_image("card"));
    write("slow.json", &steps_then_save(2, 1));
    let mut with_checkpoint = save_image("checkpoint");
    with_checkpoint["9"] = json!({"class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}});
    write("chosen.json", &with_checkpoint);
    write("fixed.json", &with_checkpoint);
    let manifest = |name: &str, text: &str| {
        std::fs::write(templates.path().join(name), text).unwrap();
    };
    manifest(
        "chosen.toml",
        "discover = false\n[parameters.checkpoint]\nbind = \"9.ckpt_name\"\n",
    );
    manifest("fixed.toml", "discover = false\n");
    let server = TestServer::with(Options {
        templates_dir: Some(templates.path().to_path_buf()),
        backends: vec![BackendConfig::at_url("plain", plain.base_url())],
        ..Options::default()
    })
    .await;
    server.wait_backend_in("plain", "up").await;

    let (status, listed) = server.get("/api/templates").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let entry = |name: &str| {
        listed["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|template| template["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
    };
    let (card, slow) = (entry("card"), entry("slow"));
    assert_eq!(card["runnable"], true, "{card}");
    assert_eq!(card["unrunnable"], Value::Null, "{card}");
    assert_eq!(slow["runnable"], false, "{slow}");
    let why =
        "no backend can run this workflow: backend \"plain\" lacks node class \"DarkroomSteps\"";
    assert_eq!(slow["unrunnable"], why, "{slow}");

    let chosen = entry("chosen");
    assert_eq!(chosen["runnable"], true, "{chosen}");
    let fixed = entry("fixed");
    assert_eq!(fixed["runnable"], false, "{fixed}");
    assert_eq!(
        fixed["unrunnable"],
        "no backend can run this workflow: backend \"plain\" lacks model \
         \"v1-5-pruned-emaonly.safetensors\" (CheckpointLoaderSimple.ckpt_name)",
        "{fixed}"
    );

    let (_, described) = server.get("/api/templates/slow").await;
    assert_eq!(described["runnable"], false, "{described}");
    assert_eq!(described["unrunnable"], why, "{described}");

    let (status, refused) = server
        .post("/api/templates/slow/jobs", &json!({"params": {}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DarkroomSteps"),
        "{refused}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_draining_backend_takes_no_new_job_and_finishes_its_own() {
    let first = sim(&[]).await;
    let second = sim(&[]).await;
    let server = server_with(&[("a", &first), ("b", &second)], 1).await;
    server.wait_backend_in("a", "up").await;
    server.wait_backend_in("b", "up").await;

    // One long job on each backend, then drain the one "long" runs on.
    let long = server.submit(&steps_then_save(40, 20)).await;
    let long_id = long["id"].as_str().unwrap();
    server.wait_for_status(long_id, "running").await;
    let drained = server.job(long_id).await["backend"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, view) = server
        .post(&format!("/api/backends/{drained}/drain"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "draining");
    assert_eq!(view["current_job"]["id"], long_id);

    let mut quick = Vec::new();
    for index in 0..5 {
        quick.push(server.submit(&save_image(&format!("quick-{index}"))).await);
    }
    for job in &quick {
        let done = server.wait_final(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_ne!(done["backend"], drained.as_str(), "{done}");
    }
    let long_done = server.wait_final(long_id).await;
    assert_eq!(long_done["status"], "succeeded", "the running job finishes");
    assert_eq!(long_done["backend"], drained.as_str());

    let (status, view) = server
        .post(&format!("/api/backends/{drained}/undrain"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "up", "{view}");
    let (status, _) = server.post("/api/backends/nobody/drain", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn one_owners_flood_does_not_delay_another_owners_single_job() {
    let only = sim(&[]).await;
    let mut server = server_with(&[("only", &only)], 2).await;
    server.wait_backend_in("only", "up").await;

    // The flood comes from one key; the single job from another (the admin key the
    // server's helpers now send), so they are two owners.
    let unlimited = KeyLimits {
        requests_per_minute: Some(100_000),
        burst: Some(1_000),
        max_queued: Some(1_000),
        max_streams: None,
    };
    let flooder = server.create_key("flood", Role::User, unlimited).await;
    let admin = server.create_key("admin", Role::Admin, unlimited).await;
    let flooder = server.client_with_key(&flooder);
    server.http = server.client_with_key(&admin);
    let mut flood = Vec::new();
    for _ in 0..50 {
        let response = flooder
            .post(server.url("/api/v2/jobs"))
            .json(&json!({"workflow": steps_then_save(4, 25)}))
            .send()
            .await
            .unwrap();
        let (status, job) = support::read_json(response).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        flood.push(job["id"].as_str().unwrap().to_owned());
    }
    server.wait_for_status(&flood[0], "running").await;

    let single = server.submit(&steps_then_save(4, 25)).await;
    let single_id = single["id"].as_str().unwrap();
    let single_done = server.wait_final(single_id).await;
    assert_eq!(single_done["status"], "succeeded");
    let submitted = time_of(&single_done, "created_at");
    let started = time_of(&single_done, "started_at");

    // Of the flood, at most the job that ran when the single job arrived may start
    // before it: one job's length, not fifty.
    let mut started_between = 0;
    let mut flood_left = 0;
    for id in &flood {
        let job = server.job(id).await;
        match job["started_at"].as_str() {
            Some(_) => {
                let at = time_of(&job, "started_at");
                if at > submitted && at < started {
                    started_between += 1;
                }
            }
            None => flood_left += 1,
        }
    }
    eprintln!(
        "single job behind a flood of 50: waited {} ms, {started_between} flood job(s) started meanwhile",
        single_done["metrics"]["queue_ms"]
    );
    assert!(
        started_between <= 1,
        "{started_between} flood jobs started after the single job arrived and before it"
    );
    assert!(
        flood_left > 0,
        "the flood was still queued: the test proves something"
    );
    for id in &flood {
        server.cancel(id).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_higher_priority_job_runs_before_older_ones() {
    let only = sim(&[]).await;
    let server = server_with(&[("only", &only)], 1).await;
    server.wait_backend_in("only", "up").await;

    let long = server.submit(&steps_then_save(20, 20)).await;
    server
        .wait_for_status(long["id"].as_str().unwrap(), "running")
        .await;
    let mut low = Vec::new();
    for _ in 0..2 {
        low.push(server.submit(&steps_then_save(2, 5)).await);
    }
    let (status, high) = server
        .post(
            "/api/v2/jobs",
            &json!({"workflow": steps_then_save(2, 5), "priority": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{high}");
    assert_eq!(high["priority"], 5);
    assert_eq!(high["queue_position"], 0, "it waits ahead of older jobs");

    let high = server.wait_final(high["id"].as_str().unwrap()).await;
    for job in &low {
        let job = server.wait_final(job["id"].as_str().unwrap()).await;
        assert!(time_of(&high, "started_at") < time_of(&job, "started_at"));
    }

    for (priority, expected) in [(json!(101), "101"), (json!("high"), "a string")] {
        let (status, refused) = server
            .post(
                "/api/v2/jobs",
                &json!({"workflow": save_image("p"), "priority": priority}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("\"priority\" must be an integer between -100 and 100")
                && message.contains(expected),
            "{message}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_backend_restarted_mid_run_has_its_jobs_run_again() {
    let first = sim(&[]).await;
    let second = sim(&[]).await;
    let server = server_with(&[("a", &first), ("b", &second)], 2).await;
    server.wait_backend_in("a", "up").await;
    server.wait_backend_in("b", "up").await;

    let mut jobs = Vec::new();
    for _ in 0..8 {
        jobs.push(server.submit(&steps_then_save(10, 30)).await);
    }
    // Restart "a" while one of its jobs runs.
    let mut victim = None;
    for job in &jobs {
        let id = job["id"].as_str().unwrap();
        server.wait_for_status(id, "running").await;
        if server.job(id).await["backend"] == "a" {
            victim = Some(id.to_owned());
            break;
        }
    }
    let victim = victim.expect("a job ran on backend a");
    first.restart();

    let mut retried = 0;
    for job in &jobs {
        let id = job["id"].as_str().unwrap();
        let done = server.wait_final(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["outputs"].as_array().unwrap().len(), 1, "{done}");
        if done["attempt"] == 2 {
            retried += 1;
            let events = server.events_to_end(id).await;
            let lost = events.iter().any(|event| {
                event.name == "log"
                    && event.data["outcome"] == "lost"
                    && event.data["backend"] == "a"
            });
            assert!(lost, "the lost attempt is recorded: {events:?}");
        } else {
            assert_eq!(done["attempt"], 1, "{done}");
        }
    }
    let victim_done = server.job(&victim).await;
    assert_eq!(victim_done["attempt"], 2, "{victim_done}");
    assert!(retried >= 1);

    let metrics = scrape(&server).await;
    assert_eq!(
        sample(&metrics, "darkroom_runs_lost_total", &[("backend", "a")]),
        f64::from(retried)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_backend_that_stops_answering_is_down_and_takes_no_work() {
    let doomed = sim(&[]).await;
    let alive = sim(&[]).await;
    let server = server_with(&[("doomed", &doomed), ("alive", &alive)], 2).await;
    server.wait_backend_in("doomed", "up").await;
    server.wait_backend_in("alive", "up").await;

    doomed.shutdown().await;
    let down = server.wait_backend_in("doomed", "down").await;
    assert_eq!(down["up"], false);
    assert!(
        !down["recent_errors"].as_array().unwrap().is_empty(),
        "{down}"
    );
    for index in 0..3 {
        let job = server.submit(&save_image(&format!("after-{index}"))).await;
        let done = server.wait_final(job["id"].as_str().unwrap()).await;
        assert_eq!(done["backend"], "alive", "{done}");
    }
    let metrics = scrape(&server).await;
    assert_eq!(
        sample(&metrics, "darkroom_backend_up", &[("backend", "doomed")]),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "darkroom_backend_state",
            &[("backend", "doomed"), ("state", "down")]
        ),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_parse_and_count_the_jobs_run() {
    let server = TestServer::with(Options {
        prompts_per_backend: 2,
        ..Options::default()
    })
    .await;
    // The first job fails on the backend, the next five succeed.
    server.sim.set_knobs(|knobs| {
        knobs.fail_next_execution = Some(comfy_sim::InjectedFailure::default());
    });
    let failing = server.submit(&save_image("fails")).await;
    let failing_id = failing["id"].as_str().unwrap();
    assert_eq!(server.wait_final(failing_id).await["status"], "failed");
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            server.submit(&save_image(&format!("m-{index}"))).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        assert_eq!(server.wait_final(id).await["status"], "succeeded");
    }

    let metrics = scrape(&server).await;
    let sim = [("backend", "sim")];
    assert_eq!(sample(&metrics, "darkroom_jobs_submitted_total", &[]), 6.0);
    assert_eq!(
        sample(
            &metrics,
            "darkroom_jobs_finished_total",
            &[("state", "succeeded")]
        ),
        5.0
    );
    assert_eq!(
        sample(
            &metrics,
            "darkroom_jobs_finished_total",
            &[("state", "failed")]
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, "darkroom_jobs", &[("state", "succeeded")]),
        5.0
    );
    assert_eq!(
        sample(&metrics, "darkroom_jobs", &[("state", "queued")]),
        0.0
    );
    assert_eq!(sample(&metrics, "darkroom_queue_depth", &[]), 0.0);
    assert_eq!(
        histogram_count(&metrics, "darkroom_queue_wait_seconds", &[]),
        6.0
    );
    assert_eq!(
        histogram_count(&metrics, "darkroom_dispatch_seconds", &sim),
        6.0
    );
    assert_eq!(
        histogram_count(
            &metrics,
            "darkroom_job_run_seconds",
            &[("template", "inline"), ("backend", "sim")]
        ),
        6.0
    );
    assert_eq!(sample(&metrics, "darkroom_backend_up", &sim), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "darkroom_backend_state",
            &[("backend", "sim"), ("state", "up")]
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, "darkroom_backend_restarts_total", &sim),
        0.0
    );
    assert!(sample(&metrics, "darkroom_output_bytes_stored_total", &[]) > 0.0);
    server.stop().await;
}

async fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn labels_match(sample: &prometheus_parse::Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(name, value)| sample.labels.get(name) == Some(*value))
}

/// The value of the one sample named `name` with these labels.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name && labels_match(sample, labels))
        .collect();
    assert_eq!(found.len(), 1, "one sample {name} {labels:?}: {found:?}");
    match &found[0].value {
        prometheus_parse::Value::Counter(value)
        | prometheus_parse::Value::Gauge(value)
        | prometheus_parse::Value::Untyped(value) => *value,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// How many observations a histogram holds.
fn histogram_count(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let counts: HashMap<_, _> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name && labels_match(sample, labels))
        .filter_map(|sample| match &sample.value {
            prometheus_parse::Value::Histogram(buckets) => {
                Some((name, buckets.last().map_or(0.0, |bucket| bucket.count)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(counts.len(), 1, "one histogram {name} {labels:?}");
    counts[name]
}
