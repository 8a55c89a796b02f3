//! Helpers shared by the simulator's black-box tests: an HTTP client, a
//! websocket reader that waits on messages (never on the clock), and graphs.

// Each test binary uses a different subset; a panic here is the test failure
// message we want, as clippy.toml allows inside tests themselves.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use comfy_sim::{SimHandle, Simulator};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn start() -> SimHandle {
    Simulator::builder()
        .start()
        .await
        .expect("simulator starts")
}

/// One websocket frame, decoded enough to assert on.
#[derive(Debug, Clone)]
pub enum Frame {
    Json(Value),
    Binary(Vec<u8>),
}

impl Frame {
    pub fn kind(&self) -> String {
        match self {
            Frame::Json(value) => value["type"].as_str().unwrap_or_default().to_owned(),
            Frame::Binary(bytes) => format!(
                "binary{}",
                u32::from_be_bytes(bytes[..4].try_into().unwrap())
            ),
        }
    }

    pub fn data(&self) -> &Value {
        match self {
            Frame::Json(value) => &value["data"],
            Frame::Binary(_) => &Value::Null,
        }
    }
}

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// Connects and consumes the greeting `status`, checking its `sid`.
    pub async fn connect(sim: &SimHandle, client_id: &str) -> Self {
        let mut socket = Self::connect_raw(sim, client_id).await;
        let greeting = socket.next().await;
        assert_eq!(greeting.kind(), "status");
        assert_eq!(greeting.data()["sid"], client_id);
        socket
    }

    pub async fn connect_raw(sim: &SimHandle, client_id: &str) -> Self {
        let (stream, _) = tokio_tungstenite::connect_async(sim.ws_url(client_id))
            .await
            .expect("websocket connects");
        Self { stream }
    }

    /// Sends the feature-flag handshake and waits for the answer.
    pub async fn negotiate_previews(&mut self) {
        let hello = json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
        self.stream
            .send(Message::Text(hello.to_string().into()))
            .await
            .unwrap();
        let answer = self.next().await;
        assert_eq!(answer.kind(), "feature_flags");
        assert_eq!(answer.data()["supports_preview_metadata"], true);
    }

    pub async fn next(&mut self) -> Frame {
        self.try_next(PATIENCE)
            .await
            .expect("a websocket frame before the timeout")
    }

    /// The next frame, or `None` when the socket closes or `wait` passes.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let message = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match message {
                Message::Text(text) => {
                    return Some(Frame::Json(serde_json::from_str(text.as_str()).unwrap()));
                }
                Message::Binary(bytes) => return Some(Frame::Binary(bytes.to_vec())),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Every frame up to and including the first one `done` accepts.
    pub async fn until(&mut self, done: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let finished = done(&frame);
            frames.push(frame);
            if finished {
                return frames;
            }
        }
    }

    /// Frames up to ComfyUI's "done" signal for `prompt_id`.
    pub async fn until_done(&mut self, prompt_id: &str) -> Vec<Frame> {
        self.until(|frame| is_done(frame, prompt_id)).await
    }
}

pub fn is_done(frame: &Frame, prompt_id: &str) -> bool {
    frame.kind() == "executing"
        && frame.data()["node"].is_null()
        && frame.data()["prompt_id"] == prompt_id
}

/// Kinds of the frames, leaving out `progress_state` unless asked.
pub fn kinds(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(Frame::kind)
        .filter(|kind| kind != "progress_state")
        .collect()
}

pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(sim: &SimHandle) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: sim.base_url(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Queues `prompt` for `client_id` and returns the prompt id.
    pub async fn queue(&self, prompt: &Value, client_id: Option<&str>) -> String {
        let mut body = json!({"prompt": prompt});
        if let Some(client_id) = client_id {
            body["client_id"] = json!(client_id);
        }
        let (status, answer) = self.post("/prompt", &body).await;
        assert_eq!(status, 200, "prompt refused: {answer}");
        answer["prompt_id"].as_str().unwrap().to_owned()
    }

    pub async fn history(&self, prompt_id: &str) -> Value {
        self.get(&format!("/history/{prompt_id}")).await.1
    }
}

/// EmptyImage -> SaveImage, as in the recorded transcripts.
pub fn empty_save(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16711680}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

/// DarkroomSteps -> PreviewImage.
pub fn steps_preview(steps: u64, step_ms: u64, preview: bool, format: &str, text: bool) -> Value {
    json!({
        "1": {"class_type": "DarkroomSteps", "inputs": {
            "steps": steps, "step_ms": step_ms, "preview": preview, "preview_format": format,
            "progress_text": text, "size": 16, "color": 3368652, "always_run": true}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}

/// DarkroomUntilInterrupted -> PreviewImage.
pub fn until_interrupted() -> Value {
    json!({
        "1": {"class_type": "DarkroomUntilInterrupted", "inputs": {"max_seconds": 60, "heartbeat_ms": 20}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    })
}
