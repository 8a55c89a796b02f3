//! `GET /ws?clientId=`: one task per socket, relaying the hub's frames and
//! reading the client's messages (only the feature-flag handshake matters).
//!
//! On connect the socket gets `status` with its `sid`, and, when its client
//! owns the running prompt, `executing` with the current node and no
//! `prompt_id` (ComfyUI's reconnect replay).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::hub::{self, Frame};
use crate::shared::Shared;

pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client_id = query
        .get("clientId")
        .filter(|id| !id.is_empty())
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    upgrade.on_upgrade(move |socket| serve(shared, socket, client_id))
}

async fn serve(shared: Arc<Shared>, socket: WebSocket, client_id: String) {
    let mut registration = {
        // Registering under the state lock orders the greeting before any
        // status broadcast that a concurrent queue change sends.
        let state = shared.state();
        let mut greeting = vec![text(
            "status",
            hub::status_data(state.queue_remaining(), Some(&client_id)),
        )];
        if state.current_client.as_deref() == Some(client_id.as_str())
            && let Some(node) = &state.last_node
        {
            greeting.push(text("executing", json!({"node": node})));
        }
        shared.hub.register(&client_id, greeting)
    };
    tracing::debug!(client.id = %client_id, "socket connected");

    let (mut sender, mut receiver) = socket.split();
    let mut first_text = true;
    let mut frames_open = true;
    loop {
        tokio::select! {
            frame = registration.frames.recv(), if frames_open => match frame {
                Some(frame) => {
                    if sender.send(message(frame)).await.is_err() {
                        break;
                    }
                }
                // Replaced by a newer socket: stay open, receive nothing.
                None => frames_open = false,
            },
            incoming = receiver.next() => match incoming {
                Some(Ok(Message::Text(body))) => {
                    if std::mem::take(&mut first_text) {
                        handshake(&shared, &client_id, registration.conn, body.as_str());
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = registration.close.changed() => {
                let _ = sender.send(Message::Close(None)).await;
                break;
            }
        }
    }
    shared.hub.unregister(&client_id, registration.conn);
    tracing::debug!(client.id = %client_id, "socket closed");
}

/// Answers `{"type": "feature_flags", ...}` when it is the first message.
fn handshake(shared: &Shared, client_id: &str, conn: u64, body: &str) {
    let Ok(message) = serde_json::from_str::<Value>(body) else {
        return;
    };
    if message["type"] == "feature_flags" {
        let supports = message["data"]["supports_preview_metadata"]
            .as_bool()
            .unwrap_or(false);
        shared.hub.negotiate(client_id, conn, supports);
    }
}

fn text(kind: &str, data: Value) -> Frame {
    Frame::Text(json!({"type": kind, "data": data}).to_string())
}

fn message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes),
    }
}
