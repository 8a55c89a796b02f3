//! Scenarios run against a ComfyUI (real or simulated) over raw HTTP and websocket, and
//! the transcripts they produce.
//!
//! The runner deliberately does not use the `comfy` crate: it records what the server
//! sent, byte for byte in the case of binary frames, so the recordings can judge both the
//! client's parsing and the simulator's imitation.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::graphs;

/// Every scenario, by name.
pub const ALL: &[&str] = &[
    "txt2img_with_previews",
    "previews_with_metadata",
    "validation_error",
    "execution_error",
    "interrupt",
    "cached_resubmission",
    "preview_image_temp",
    "several_output_nodes",
    "queue_delete",
];

/// What one scenario saw.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub scenario: String,
    pub client_id: String,
    /// Every HTTP exchange, in order: `{method, path, body, status, response}`.
    pub http: Vec<Value>,
    /// Every websocket message, in order: `{"text": message}` or `{"binary": frame}` where
    /// the frame is `{event_type, len, hex}`.
    pub ws: Vec<Value>,
    /// `GET /history/{id}` bodies of the scenario's prompts, once they were final.
    pub history: Vec<Value>,
}

impl Transcript {
    /// The transcript as one JSON document.
    pub fn to_json(&self, server: &str) -> Value {
        json!({
            "scenario": self.scenario,
            "recorded_from": server,
            "client_id": self.client_id,
            "http": self.http,
            "ws": self.ws,
            "history": self.history,
        })
    }
}

/// A session with one server: an open socket and an HTTP client.
struct Session {
    base: String,
    http: reqwest::Client,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    transcript: Transcript,
}

const WAIT: Duration = Duration::from_secs(120);

/// Runs the scenario `name` against the server at `base` (`http://127.0.0.1:PORT/`).
///
/// # Panics
///
/// When the server misbehaves in a way the scenario cannot go on from; the message says
/// what was expected.
pub async fn run(name: &str, base: &str) -> Transcript {
    let base = if base.ends_with('/') {
        base.to_owned()
    } else {
        format!("{base}/")
    };
    let base = base.as_str();
    let with_metadata = name == "previews_with_metadata";
    let mut session = Session::open(name, base, with_metadata).await;
    match name {
        "txt2img_with_previews" => {
            let seed = rand_seed();
            session.run_to_end(graphs::txt2img(seed, 64, 4)).await;
        }
        "previews_with_metadata" => {
            session
                .run_to_end(graphs::steps_with_previews(3, "JPEG"))
                .await;
        }
        "validation_error" => {
            let status = session.post_prompt(graphs::invalid()).await.0;
            assert_eq!(status, 400, "an invalid graph must be refused");
            // Nothing is queued and nothing is sent; a follow-up run shows the socket is
            // still quiet about the refused prompt.
            session
                .run_to_end(graphs::empty_image_saved(rand_color(), "e2e/after"))
                .await;
        }
        "execution_error" => {
            session
                .run_to_end(graphs::failing("boom requested by test"))
                .await;
        }
        "interrupt" => session.interrupt_scenario().await,
        "cached_resubmission" => {
            let graph = graphs::empty_image_saved(rand_color(), "e2e/cached");
            session.run_to_end(graph.clone()).await;
            session.run_to_end(graph).await;
        }
        "preview_image_temp" => {
            session
                .run_to_end(graphs::preview_image(rand_color()))
                .await;
        }
        "several_output_nodes" => {
            session
                .run_to_end(graphs::several_outputs(rand_color()))
                .await;
        }
        "queue_delete" => session.queue_delete_scenario().await,
        other => panic!("unknown scenario {other:?}"),
    }
    session.transcript
}

impl Session {
    async fn open(name: &str, base: &str, with_metadata: bool) -> Self {
        let client_id = uuid::Uuid::new_v4().simple().to_string();
        let ws_url = format!("{}ws?clientId={client_id}", base.replacen("http", "ws", 1));
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap_or_else(|error| panic!("cannot open {ws_url}: {error}"));
        if with_metadata {
            let flags =
                json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
            socket
                .send(Message::text(flags.to_string()))
                .await
                .expect("send feature flags");
        }
        let mut session = Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            socket,
            transcript: Transcript {
                scenario: name.to_owned(),
                client_id,
                http: Vec::new(),
                ws: Vec::new(),
                history: Vec::new(),
            },
        };
        // The greeting: `status` with our sid (and `feature_flags` when we asked).
        session
            .read_until(|message| message_type(message) == Some("status"))
            .await;
        if with_metadata {
            session
                .read_until(|message| message_type(message) == Some("feature_flags"))
                .await;
        }
        session
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let response_body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        self.transcript.http.push(json!({
            "method": method, "path": path, "body": body,
            "status": status, "response": response_body,
        }));
        (status, response_body)
    }

    async fn post_prompt(&mut self, graph: Value) -> (u16, String) {
        let body = json!({"prompt": graph, "client_id": self.transcript.client_id});
        let (status, response) = self.request("POST", "prompt", Some(body)).await;
        let prompt_id = response
            .get("prompt_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (status, prompt_id.to_owned())
    }

    /// Posts `graph`, waits for its `executing {node: null}`, then records its history.
    async fn run_to_end(&mut self, graph: Value) -> String {
        let (status, prompt_id) = self.post_prompt(graph).await;
        assert_eq!(
            status,
            200,
            "prompt refused: {:?}",
            self.transcript.http.last()
        );
        self.wait_done(&prompt_id).await;
        self.record_history(&prompt_id).await;
        prompt_id
    }

    async fn wait_done(&mut self, prompt_id: &str) {
        self.read_until(|message| is_done(message, prompt_id)).await;
    }

    async fn record_history(&mut self, prompt_id: &str) {
        let (_, body) = self
            .request("GET", &format!("history/{prompt_id}"), None)
            .await;
        self.transcript.history.push(body);
    }

    /// Reads and records messages until one matches.
    async fn read_until(&mut self, mut wanted: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no awaited message within {WAIT:?}: {:?}",
                        self.transcript.ws.last()
                    )
                })
                .expect("socket closed")
                .expect("socket error");
            match next {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(text.as_str()).expect("JSON message");
                    self.transcript.ws.push(json!({ "text": message }));
                    if wanted(&message) {
                        return message;
                    }
                }
                Message::Binary(bytes) => {
                    let event_type = bytes.get(..4).map_or(0, |head| {
                        u32::from_be_bytes([head[0], head[1], head[2], head[3]])
                    });
                    self.transcript.ws.push(json!({
                        "binary": {"event_type": event_type, "len": bytes.len(), "hex": hex(&bytes)}
                    }));
                }
                _ => {}
            }
        }
    }

    async fn interrupt_scenario(&mut self) {
        let (status, prompt_id) = self.post_prompt(graphs::until_interrupted()).await;
        assert_eq!(status, 200);
        self.read_until(|message| message_type(message) == Some("progress"))
            .await;
        self.request("POST", "interrupt", Some(json!({"prompt_id": prompt_id})))
            .await;
        self.wait_done(&prompt_id).await;
        self.record_history(&prompt_id).await;
    }

    async fn queue_delete_scenario(&mut self) {
        let (_, running) = self.post_prompt(graphs::until_interrupted()).await;
        self.read_until(|message| message_type(message) == Some("progress"))
            .await;
        let (_, pending) = self
            .post_prompt(graphs::empty_image_saved(rand_color(), "e2e/deleted"))
            .await;
        self.request("GET", "queue", None).await;
        self.request("POST", "queue", Some(json!({"delete": [pending]})))
            .await;
        self.request("GET", "queue", None).await;
        self.request("POST", "interrupt", Some(json!({"prompt_id": running})))
            .await;
        self.wait_done(&running).await;
        self.record_history(&running).await;
        self.record_history(&pending).await;
    }
}

fn message_type(message: &Value) -> Option<&str> {
    message.get("type").and_then(Value::as_str)
}

fn is_done(message: &Value, prompt_id: &str) -> bool {
    message_type(message) == Some("executing")
        && message.pointer("/data/node").is_some_and(Value::is_null)
        && message.pointer("/data/prompt_id").and_then(Value::as_str) == Some(prompt_id)
}

fn rand_seed() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_fields().0)
}

fn rand_color() -> u64 {
    rand_seed() & 0xFF_FFFF
}

/// Lower-case hex of the bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// Bytes from lower-case hex; `None` when the text is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}
