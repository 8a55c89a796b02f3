//! The client against a real ComfyUI 0.3.75 (installed by `scripts/install-comfyui.sh`):
//! every route and every message kind the gateway relies on.
//!
//! All tests share one server; each follows only its own prompts, so they may run in
//! parallel. ComfyUI runs one prompt at a time, so waits are generous.

// A failed unwrap is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use comfy::events::ServerMessage;
use comfy::frames::{BinaryFrame, ImageFormat};
use comfy::{
    ComfyError, ComfyUiClient, FileType, Output, PromptId, PromptRequest, RunOutcome, SocketConfig,
    SocketEvent, Upload, spawn_socket,
};
use futures_util::TryStreamExt;
use serde_json::Value;
use testkit::{RealComfyUi, graphs};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(180);

struct Connected {
    client: ComfyUiClient,
    socket: comfy::SocketHandle,
    events: mpsc::Receiver<SocketEvent>,
}

async fn connect() -> Option<Connected> {
    let server = RealComfyUi::shared()?;
    let client = ComfyUiClient::new(&server.base_url()).unwrap();
    let (socket, events) = spawn_socket(&client, SocketConfig::default());
    tokio::time::timeout(WAIT, socket.wait_connected())
        .await
        .unwrap()
        .unwrap();
    Some(Connected {
        client,
        socket,
        events,
    })
}

impl Connected {
    async fn submit(&self, graph: Value) -> PromptId {
        let client_id = self.socket.client_id().unwrap();
        let graph = graph.as_object().unwrap().clone();
        let request = PromptRequest::new(graph, client_id);
        let wanted = request.prompt_id.clone().unwrap();
        let accepted = self.client.queue_prompt(&request).await.unwrap();
        assert_eq!(accepted.prompt_id, wanted, "0.3.75 honours our prompt id");
        assert!(accepted.node_errors.is_empty());
        wanted
    }

    /// Collects this prompt's messages and frames until `stop` matches one.
    async fn collect_until(
        &mut self,
        prompt_id: &PromptId,
        mut stop: impl FnMut(&ServerMessage) -> bool,
    ) -> (Vec<ServerMessage>, Vec<BinaryFrame>) {
        let (mut messages, mut frames) = (Vec::new(), Vec::new());
        loop {
            let event = tokio::time::timeout(WAIT, self.events.recv())
                .await
                .expect("no message in time")
                .expect("socket task ended");
            match event {
                SocketEvent::Message(message) if message.prompt_id() == Some(prompt_id) => {
                    let done = stop(&message);
                    messages.push(message);
                    if done {
                        return (messages, frames);
                    }
                }
                SocketEvent::Frame(frame) => frames.push(frame),
                SocketEvent::Disconnected { reason, .. } => panic!("socket dropped: {reason}"),
                _ => {}
            }
        }
    }

    async fn run_to_end(&mut self, prompt_id: &PromptId) -> (Vec<ServerMessage>, Vec<BinaryFrame>) {
        self.collect_until(prompt_id, ServerMessage::hints_run_ended_finally)
            .await
    }
}

trait FinalHint {
    fn hints_run_ended_finally(&self) -> bool;
}

impl FinalHint for ServerMessage {
    /// `executing {node: null}`: the last message ComfyUI sends for a prompt.
    fn hints_run_ended_finally(&self) -> bool {
        matches!(self, ServerMessage::Executing(executing) if executing.node.is_none())
    }
}

fn kinds(messages: &[ServerMessage]) -> Vec<&str> {
    messages.iter().map(ServerMessage::kind).collect()
}

#[tokio::test]
async fn capabilities_follow_the_server_version() {
    let Some(connected) = connect().await else {
        return;
    };
    let capabilities = connected.client.capabilities().await.unwrap();
    assert_eq!(capabilities.version, Some(comfy::Version(0, 3, 75)));
    assert!(capabilities.interrupt_by_id);
    assert!(capabilities.client_prompt_id);
    assert!(capabilities.preview_metadata);
    assert!(!capabilities.jobs_api, "/api/jobs came after 0.3.75");
    let error = connected.client.job(&PromptId::random()).await.unwrap_err();
    assert!(matches!(error, ComfyError::Unsupported { .. }), "{error}");

    let stats = connected.client.system_stats().await.unwrap();
    assert_eq!(stats.devices[0].device_type, "cpu");
    let features = connected.client.features().await.unwrap();
    assert_eq!(features["supports_preview_metadata"], true);
    let nodes = connected.client.object_info().await.unwrap();
    for class in [
        "KSampler",
        "SaveImage",
        "DarkroomSteps",
        "DarkroomMultiOutput",
    ] {
        assert!(nodes.contains_key(class), "object_info lacks {class}");
    }
    assert!(nodes["DarkroomText"].output_node);
    assert!(nodes["DarkroomSteps"].input.required.contains_key("steps"));
}

#[tokio::test]
async fn txt2img_runs_with_progress_previews_and_a_downloadable_image() {
    let Some(mut connected) = connect().await else {
        return;
    };
    let prompt_id = connected
        .submit(graphs::txt2img(u64::from(rand_u32()), 64, 4))
        .await;
    let (messages, frames) = connected.run_to_end(&prompt_id).await;

    let kinds = kinds(&messages);
    for expected in [
        "execution_start",
        "execution_cached",
        "executing",
        "progress",
        "progress_state",
        "executed",
        "execution_success",
    ] {
        assert!(kinds.contains(&expected), "no {expected} in {kinds:?}");
    }
    let success = kinds
        .iter()
        .position(|kind| *kind == "execution_success")
        .unwrap();
    assert_eq!(
        success + 1,
        kinds.len() - 1,
        "executing null comes right after success"
    );
    let steps: Vec<(u64, u64)> = messages
        .iter()
        .filter_map(|message| match message {
            ServerMessage::Progress(progress) => Some((progress.value, progress.max)),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    let previews: Vec<_> = frames
        .iter()
        .filter_map(|frame| match frame {
            BinaryFrame::Preview(preview) => Some(preview),
            _ => None,
        })
        .collect();
    assert_eq!(previews.len(), 4, "a latent preview per step");
    for preview in previews {
        assert_eq!(preview.format, ImageFormat::Jpeg);
        let metadata = preview
            .metadata
            .as_ref()
            .expect("we negotiated type-4 frames");
        assert_eq!(metadata.prompt_id.as_ref(), Some(&prompt_id));
        assert!(preview.image.starts_with(&[0xff, 0xd8]));
    }

    let entry = connected
        .client
        .history(&prompt_id)
        .await
        .unwrap()
        .expect("history after the end");
    assert_eq!(entry.outcome, RunOutcome::Success);
    let [Output::File(file)] = entry.outputs.as_slice() else {
        panic!("{:?}", entry.outputs)
    };
    assert_eq!(file.file.file_type, FileType::Output);
    let download = connected.client.view(&file.file).await.unwrap();
    assert_eq!(download.content_type.as_deref(), Some("image/png"));
    let expected_len = download.content_length.unwrap();
    let bytes: Vec<u8> = download
        .body
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, expected_len);
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[tokio::test]
async fn refused_prompt_keeps_node_input_and_error_type() {
    let Some(connected) = connect().await else {
        return;
    };
    let request = PromptRequest::new(
        graphs::invalid().as_object().unwrap().clone(),
        connected.socket.client_id().unwrap(),
    );
    let error = connected.client.queue_prompt(&request).await.unwrap_err();
    let ComfyError::Rejected(rejection) = error else {
        panic!("{error}")
    };
    let node = &rejection.node_errors[&comfy::NodeId::new("1")];
    assert_eq!(node.class_type, "EmptyImage");
    assert_eq!(node.errors[0].kind, "value_bigger_than_max");
    assert_eq!(node.errors[0].input_name(), Some("width"));
    assert!(rejection.to_string().contains("node 1 (EmptyImage)"));
}

#[tokio::test]
async fn execution_error_names_node_class_and_exception() {
    let Some(mut connected) = connect().await else {
        return;
    };
    let prompt_id = connected
        .submit(graphs::failing("the cat sat on the keyboard"))
        .await;
    let (messages, _) = connected.run_to_end(&prompt_id).await;
    let error = messages
        .iter()
        .find_map(|message| match message {
            ServerMessage::ExecutionError(error) => Some(error),
            _ => None,
        })
        .expect("execution_error message");
    assert_eq!(error.node_type, "DarkroomFail");
    assert!(
        error
            .exception_message
            .contains("the cat sat on the keyboard")
    );
    assert!(!kinds(&messages).contains(&"execution_success"));

    let entry = connected.client.history(&prompt_id).await.unwrap().unwrap();
    let RunOutcome::Failed(recorded) = entry.outcome else {
        panic!("{:?}", entry.outcome)
    };
    assert_eq!(recorded.node_id.as_str(), "1");
    assert_eq!(recorded.exception_type, "RuntimeError");
}

#[tokio::test]
async fn interrupt_by_id_stops_only_that_prompt() {
    let Some(mut connected) = connect().await else {
        return;
    };
    let prompt_id = connected.submit(graphs::until_interrupted()).await;
    connected
        .collect_until(&prompt_id, |message| {
            matches!(message, ServerMessage::Progress(_))
        })
        .await;

    // Interrupting another id is a no-op (0.3.57+), the run goes on.
    connected
        .client
        .interrupt(&PromptId::random())
        .await
        .unwrap();
    connected.client.interrupt(&prompt_id).await.unwrap();
    let (messages, _) = connected.run_to_end(&prompt_id).await;
    assert!(
        kinds(&messages).contains(&"execution_interrupted"),
        "{:?}",
        kinds(&messages)
    );

    let entry = connected.client.history(&prompt_id).await.unwrap().unwrap();
    assert!(
        matches!(entry.outcome, RunOutcome::Interrupted(_)),
        "{:?}",
        entry.outcome
    );
}

#[tokio::test]
async fn a_pending_prompt_is_deleted_from_the_queue() {
    let Some(mut connected) = connect().await else {
        return;
    };
    let running = connected.submit(graphs::until_interrupted()).await;
    connected
        .collect_until(&running, |message| {
            matches!(message, ServerMessage::ExecutionStart(_))
        })
        .await;
    let pending = connected.submit(graphs::slow_steps(2, 10)).await;

    let queue = connected.client.queue().await.unwrap();
    assert!(queue.running.iter().any(|item| item.prompt_id == running));
    assert!(queue.position(&pending).is_some(), "{queue:?}");
    connected
        .client
        .delete_from_queue(std::slice::from_ref(&pending))
        .await
        .unwrap();
    let queue = connected.client.queue().await.unwrap();
    assert!(!queue.contains(&pending));
    assert!(
        queue.contains(&running),
        "deleting never touches the running prompt"
    );

    connected.client.interrupt(&running).await.unwrap();
    connected.run_to_end(&running).await;
    assert!(connected.client.history(&pending).await.unwrap().is_none());
}

#[tokio::test]
async fn uploaded_image_feeds_a_graph_and_clashing_names_are_renamed() {
    let Some(mut connected) = connect().await else {
        return;
    };
    let name = format!("upload-{}.png", rand_u32());
    let red = tiny_png(&connected, 0xff0000).await;
    let blue = tiny_png(&connected, 0x0000ff).await;

    let first = connected
        .client
        .upload_image(upload(&name, red.clone()))
        .await
        .unwrap();
    assert_eq!(first.filename, name);
    assert_eq!(first.file_type, FileType::Input);
    let same = connected
        .client
        .upload_image(upload(&name, red))
        .await
        .unwrap();
    assert_eq!(same.filename, name, "identical bytes reuse the name");
    let clash = connected
        .client
        .upload_image(upload(&name, blue))
        .await
        .unwrap();
    assert_ne!(
        clash.filename, name,
        "other bytes under the same name are renamed"
    );

    let graph = serde_json::json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": clash.filename}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e/inverted"}}
    });
    let prompt_id = connected.submit(graph).await;
    connected.run_to_end(&prompt_id).await;
    let entry = connected.client.history(&prompt_id).await.unwrap().unwrap();
    assert_eq!(entry.outcome, RunOutcome::Success);
    assert_eq!(entry.outputs.len(), 1);
}

#[tokio::test]
async fn missing_file_is_a_typed_not_found() {
    let Some(connected) = connect().await else {
        return;
    };
    let missing = comfy::FileRef {
        filename: "never_written.png".to_owned(),
        subfolder: String::new(),
        file_type: FileType::Output,
    };
    let error = connected.client.view(&missing).await.unwrap_err();
    assert!(matches!(error, ComfyError::FileNotFound { .. }), "{error}");
}

fn upload(name: &str, bytes: Vec<u8>) -> Upload {
    Upload {
        filename: name.to_owned(),
        body: bytes.into(),
        file_type: FileType::Input,
        subfolder: String::new(),
        overwrite: false,
    }
}

/// A PNG made by the server itself, so the bytes are real.
async fn tiny_png(connected: &Connected, color: u64) -> Vec<u8> {
    let client_id = connected.socket.client_id().unwrap();
    let graph = graphs::empty_image_saved(color, "e2e/upload-source");
    let request = PromptRequest::new(graph.as_object().unwrap().clone(), client_id);
    let prompt_id = connected
        .client
        .queue_prompt(&request)
        .await
        .unwrap()
        .prompt_id;
    let entry = testkit::eventually("the source image", WAIT, Duration::from_millis(50), || {
        let client = connected.client.clone();
        let prompt_id = prompt_id.clone();
        async move { client.history(&prompt_id).await.unwrap() }
    })
    .await;
    let Some(Output::File(file)) = entry.outputs.first() else {
        panic!("no file")
    };
    let download = connected.client.view(&file.file).await.unwrap();
    download
        .body
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap()
}

fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_fields().0
}
