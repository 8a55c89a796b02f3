//! Records golden transcripts from a real ComfyUI into `fixtures/transcripts/`.
//!
//! Usage: `cargo run -p darkroom-testkit --bin record-transcripts [SCENARIO...]`
//! (all scenarios when none is named). Starts its own ComfyUI from the install that
//! `scripts/install-comfyui.sh` made, runs each scenario once, and writes one JSON file per
//! scenario, plus `fixtures/object_info.json` with the schemas of the nodes the scenarios
//! use. Machine paths in tracebacks are replaced by `<home>` so recordings are portable.

// A command-line tool: stdout and stderr are its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;

use serde_json::Value;
use testkit::{RealComfyUi, StartOptions, repo_root, scenarios};

#[tokio::main]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = if wanted.is_empty() {
        scenarios::ALL.to_vec()
    } else {
        wanted.iter().map(String::as_str).collect()
    };

    let server = RealComfyUi::start(StartOptions::default())
        .expect("the real ComfyUI tier is needed to record");
    let base = server.base_url();
    let version = server_version(&base).await;
    let out_dir = repo_root().join("fixtures/transcripts");
    std::fs::create_dir_all(&out_dir).expect("create fixtures/transcripts");

    for name in names {
        let transcript = scenarios::run(name, &base).await;
        let document = transcript.to_json(&format!("ComfyUI {version}"));
        write_json(&out_dir.join(format!("{name}.json")), &document);
        println!(
            "recorded {name}: {} websocket messages",
            transcript.ws.len()
        );
    }
    record_object_info(&base).await;
}

async fn server_version(base: &str) -> String {
    let stats: Value = reqwest::get(format!("{base}system_stats"))
        .await
        .expect("system_stats")
        .json()
        .await
        .expect("system_stats JSON");
    stats
        .pointer("/system/comfyui_version")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned()
}

/// The schemas of the node classes the scenarios and tests use.
async fn record_object_info(base: &str) {
    const CLASSES: &[&str] = &[
        "CheckpointLoaderSimple",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "SaveImage",
        "PreviewImage",
        "LoadImage",
        "ImageInvert",
        "EmptyImage",
        "DarkroomSteps",
        "DarkroomFail",
        "DarkroomUntilInterrupted",
        "DarkroomMultiOutput",
        "DarkroomText",
    ];
    let all: serde_json::Map<String, Value> = reqwest::get(format!("{base}object_info"))
        .await
        .expect("object_info")
        .json()
        .await
        .expect("object_info JSON");
    let chosen: serde_json::Map<String, Value> = all
        .into_iter()
        .filter(|(class, _)| CLASSES.contains(&class.as_str()))
        .collect();
    assert_eq!(
        chosen.len(),
        CLASSES.len(),
        "the server lacks some node classes"
    );
    write_json(
        &repo_root().join("fixtures/object_info.json"),
        &Value::Object(chosen),
    );
}

fn write_json(path: &Path, document: &Value) {
    let mut text = serde_json::to_string_pretty(document).expect("serialise");
    if let Some(home) = std::env::var_os("HOME").and_then(|home| home.into_string().ok()) {
        text = text.replace(&home, "<home>");
    }
    let temp_dir = std::env::temp_dir().display().to_string();
    text = text.replace(&temp_dir, "<tmp>");
    std::fs::write(path, text + "\n").expect("write fixture");
    eprintln!("wrote {}", path.display());
}
