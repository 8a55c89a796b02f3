//! Asking a real ComfyUI whether a graph is valid, without running it.
//!
//! ComfyUI 0.3.75 has no validate-only route: `POST /prompt` runs `validate_prompt`
//! synchronously and either answers 400 with every node error, or queues the graph to run.
//! `partial_execution_targets` does not help: naming no real output makes validation stop
//! at "prompt has no outputs" before any node is checked. So the validator first queues a
//! blocker (a test node that runs until interrupted) and waits until it runs: ComfyUI
//! executes one prompt at a time, so every graph accepted after that waits in the queue,
//! and is deleted from it at once. The blocker is interrupted at the end. Validation
//! itself is unchanged: the same code path a real submission takes.

use std::time::Duration;

use comfy::prompt::{InputError, NodeError, PromptRequest};
use comfy::{ApiGraph, ClientId, ComfyError, ComfyUiClient, NodeId, PromptId};
use serde_json::{Value, json};

/// How long the blocker may run: far longer than the corpus takes, short enough that a
/// crashed test leaves no run behind for long.
const BLOCKER_SECONDS: u64 = 1800;

/// What ComfyUI said about one graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Valid,
    /// Every error was about a model or input file this server does not have.
    ValidExceptMissingFiles(usize),
    Invalid(String),
}

#[derive(Debug)]
pub struct Validator {
    client: ComfyUiClient,
    client_id: ClientId,
    blocker: PromptId,
}

impl Validator {
    /// Queues the blocker on the server at `base_url` and waits until it runs.
    pub async fn start(base_url: &str) -> Self {
        let client = ComfyUiClient::new(base_url).expect("comfyui url");
        let client_id = ClientId::random("ui-conversion");
        let blocker_graph = json!({
            "1": {"class_type": "DarkroomUntilInterrupted",
                  "inputs": {"max_seconds": BLOCKER_SECONDS, "heartbeat_ms": 1000}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
        });
        let request = PromptRequest::new(object(blocker_graph), client_id.clone());
        let blocker = client
            .queue_prompt(&request)
            .await
            .expect("blocker queued")
            .prompt_id;

        let validator = Self {
            client,
            client_id,
            blocker,
        };
        testkit::eventually(
            "the blocker to run",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || validator.blocker_running(),
        )
        .await;
        validator
    }

    async fn blocker_running(&self) -> Option<()> {
        let queue = self.client.queue().await.ok()?;
        queue
            .running
            .iter()
            .any(|item| item.prompt_id == self.blocker)
            .then_some(())
    }

    /// Validates `graph`, leaving nothing queued.
    pub async fn check(&self, graph: ApiGraph) -> Verdict {
        let request = PromptRequest::new(graph, self.client_id.clone());
        match self.client.queue_prompt(&request).await {
            Ok(accepted) => {
                assert!(
                    self.blocker_running().await.is_some(),
                    "the blocker stopped: an accepted graph could run"
                );
                self.client
                    .delete_from_queue(&[accepted.prompt_id])
                    .await
                    .expect("delete the accepted graph from the queue");
                // Accepted, but outputs that failed validation would be skipped.
                judge(&accepted.node_errors)
            }
            Err(ComfyError::Rejected(rejection)) if rejection.node_errors.is_empty() => {
                Verdict::Invalid(format!(
                    "{}: {}",
                    rejection.error.message, rejection.error.details
                ))
            }
            Err(ComfyError::Rejected(rejection)) => judge(&rejection.node_errors),
            Err(other) => Verdict::Invalid(format!("comfyui: {other}")),
        }
    }

    /// Stops the blocker.
    pub async fn finish(self) {
        self.client
            .interrupt(&self.blocker)
            .await
            .expect("interrupt the blocker");
    }
}

fn judge(node_errors: &std::collections::BTreeMap<NodeId, NodeError>) -> Verdict {
    let mut missing = 0;
    let mut problems = Vec::new();
    for (node_id, node) in node_errors {
        for error in &node.errors {
            if is_missing_file(error) {
                missing += 1;
            } else {
                problems.push(format!("node {node_id} ({}): {error}", node.class_type));
            }
        }
    }
    match (problems.is_empty(), missing) {
        (false, _) => Verdict::Invalid(problems.join("; ")),
        (true, 0) => Verdict::Valid,
        (true, missing) => Verdict::ValidExceptMissingFiles(missing),
    }
}

/// A model or input file the workflow names and this server does not have: a file name
/// not in the input's list of files, or a loader's own check that the file exists.
fn is_missing_file(error: &InputError) -> bool {
    match error.kind.as_str() {
        "value_not_in_list" => error
            .extra_info
            .received_value
            .as_str()
            .is_some_and(looks_like_file),
        "custom_validation_failed" => {
            let details = error.details.to_lowercase();
            details.contains("invalid") && details.contains("file")
        }
        _ => false,
    }
}

fn looks_like_file(value: &str) -> bool {
    let Some((stem, extension)) = value.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && (1..=12).contains(&extension.len())
        && extension
            .chars()
            .all(|character| character.is_ascii_alphanumeric())
}

fn object(value: Value) -> ApiGraph {
    value.as_object().cloned().expect("a json object")
}
