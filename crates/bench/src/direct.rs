//! The least a client can do to run a job on ComfyUI itself: keep a websocket open, post
//! the prompt, wait for ComfyUI's "done" message, read the history entry and download
//! the outputs. What Darkroom adds is measured against this.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::v2::{JOB_PATIENCE, download};

/// A minimal ComfyUI client with its websocket open.
#[derive(Debug)]
pub struct DirectClient {
    http: reqwest::Client,
    base: String,
    client_id: String,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl DirectClient {
    /// Opens the websocket of the ComfyUI at `base` (`http://127.0.0.1:PORT`).
    ///
    /// # Errors
    ///
    /// When the websocket cannot be opened.
    pub async fn connect(http: reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let client_id = uuid::Uuid::new_v4().to_string();
        let ws_url = format!(
            "{}/ws?clientId={client_id}",
            base.replacen("http://", "ws://", 1)
        );
        let (socket, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .with_context(|| format!("cannot open {ws_url}"))?;
        Ok(Self {
            http,
            base,
            client_id,
            socket,
        })
    }

    /// Runs `workflow` to its end and downloads its outputs; returns the bytes read. Its
    /// prompt id is the second value.
    ///
    /// # Errors
    ///
    /// When ComfyUI refuses the prompt, it fails, or it takes too long.
    pub async fn run(&mut self, workflow: &Value) -> anyhow::Result<(u64, String)> {
        let answer: Value = self
            .http
            .post(format!("{}/prompt", self.base))
            .json(&json!({"prompt": workflow, "client_id": self.client_id}))
            .send()
            .await?
            .json()
            .await?;
        let prompt_id = answer["prompt_id"]
            .as_str()
            .with_context(|| format!("prompt refused: {answer}"))?
            .to_owned();
        tokio::time::timeout(JOB_PATIENCE, self.until_done(&prompt_id))
            .await
            .with_context(|| format!("prompt {prompt_id} did not end in time"))??;

        let entry = self.history(&prompt_id).await?;
        let mut total = 0;
        for file in output_files(&entry) {
            let url = format!(
                "{}/view?filename={}&subfolder={}&type=output",
                self.base,
                encode(&file.0),
                encode(&file.1)
            );
            total += download(&self.http, &url).await?;
        }
        Ok((total, prompt_id))
    }

    /// Reads the socket until ComfyUI's `executing {node: null}` for `prompt_id`.
    async fn until_done(&mut self, prompt_id: &str) -> anyhow::Result<()> {
        while let Some(message) = self.socket.next().await {
            let Message::Text(text) = message? else {
                continue;
            };
            let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            let data = &message["data"];
            if data["prompt_id"] != prompt_id {
                continue;
            }
            match message["type"].as_str() {
                Some("executing") if data["node"].is_null() => return Ok(()),
                Some("execution_error") => bail!("prompt {prompt_id} failed: {data}"),
                _ => {}
            }
        }
        bail!("the websocket closed before prompt {prompt_id} ended")
    }

    /// The history entry; ComfyUI writes it before it says "done", so a short retry only
    /// covers servers that do not.
    async fn history(&self, prompt_id: &str) -> anyhow::Result<Value> {
        for _ in 0..50 {
            let history: Value = self
                .http
                .get(format!("{}/history/{prompt_id}", self.base))
                .send()
                .await?
                .json()
                .await?;
            if let Some(entry) = history.get(prompt_id) {
                return Ok(entry.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("prompt {prompt_id} has no history entry")
    }
}

/// `(filename, subfolder)` of every `output` file in a history entry.
fn output_files(entry: &Value) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for node in entry["outputs"]
        .as_object()
        .into_iter()
        .flat_map(|nodes| nodes.values())
    {
        for items in node.as_object().into_iter().flat_map(|keys| keys.values()) {
            for item in items.as_array().into_iter().flatten() {
                if item["type"] == "output"
                    && let Some(filename) = item["filename"].as_str()
                {
                    let subfolder = item["subfolder"].as_str().unwrap_or_default();
                    files.push((filename.to_owned(), subfolder.to_owned()));
                }
            }
        }
    }
    files
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_output_files_are_downloaded() {
        let entry = json!({"outputs": {
            "9": {"images": [{"filename": "a b.png", "subfolder": "x", "type": "output"}]},
            "2": {"images": [{"filename": "t.png", "subfolder": "", "type": "temp"}],
                  "text": ["hello"]}
        }});
        assert_eq!(
            output_files(&entry),
            [("a b.png".to_owned(), "x".to_owned())]
        );
        assert_eq!(encode("a b/c.png"), "a%20b%2Fc.png");
    }
}
