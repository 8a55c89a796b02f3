//! One long-lived websocket to one ComfyUI server, kept alive and reconnected.
//!
//! ComfyUI sends a prompt's progress only to the socket whose client id posted it, so the
//! socket is opened before any prompt is posted and callers post with
//! [`SocketHandle::client_id`]. Each connection uses a fresh client id: reconnecting
//! with an id an old, half-dead socket may still hold lets the old handler's cleanup
//! unregister the new one (ComfyUI issue #16010). Events of prompts posted under an
//! earlier id are lost with it, which is why callers reconcile from `/history` after every
//! [`SocketEvent::Disconnected`].
//!
//! ComfyUI never pings. We ping, and a socket on which nothing at all (not even a pong)
//! arrives for the silence limit is dropped and reopened. A socket that answers pings but
//! delivers no events (a "zombie") can only be seen from above: callers that notice
//! finished runs without their messages call [`SocketHandle::reconnect`].

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::ComfyUiClient;
use crate::events::{ServerMessage, parse_message};
use crate::frames::{BinaryFrame, decode_frame};
use crate::ids::ClientId;

/// How the socket behaves.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Readable start of every client id, such as `darkroom-gpu0`.
    pub client_id_prefix: String,
    /// How often we ping.
    pub keepalive: Duration,
    /// How long the socket may stay silent, pongs included, before it is reopened.
    pub silence_limit: Duration,
    /// First and longest wait between connection attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Largest message accepted; full-size PNGs from `SaveImageWebsocket` are tens of MB.
    pub max_message_size: usize,
    /// Negotiate type-4 preview frames, which name their prompt and node (0.3.45+).
    pub preview_metadata: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            client_id_prefix: "darkroom".to_owned(),
            keepalive: Duration::from_secs(10),
            silence_limit: Duration::from_secs(30),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_message_size: 256 << 20,
            preview_metadata: true,
        }
    }
}

/// What the socket reports, in the order it happened.
#[derive(Debug, Clone)]
pub enum SocketEvent {
    /// A connection is open; prompts posted with this client id are followed.
    Connected {
        client_id: ClientId,
    },
    Message(ServerMessage),
    Frame(BinaryFrame),
    /// The connection closed; its events since the drop are gone.
    Disconnected {
        client_id: ClientId,
        reason: String,
    },
}

enum Command {
    Reconnect,
    Shutdown,
}

/// Control of a running socket task.
#[derive(Debug, Clone)]
pub struct SocketHandle {
    connected: watch::Receiver<Option<ClientId>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl SocketHandle {
    /// The client id of the open connection, or `None` while reconnecting.
    pub fn client_id(&self) -> Option<ClientId> {
        self.connected.borrow().clone()
    }

    /// Waits until a connection is open and returns its client id; `None` once the socket
    /// task has stopped.
    pub async fn wait_connected(&self) -> Option<ClientId> {
        let mut connected = self.connected.clone();
        let result = connected.wait_for(Option::is_some).await;
        result.ok().and_then(|client_id| client_id.clone())
    }

    /// Drops the connection and opens a new one (with a new client id).
    pub fn reconnect(&self) {
        let _ = self.commands.send(Command::Reconnect);
    }

    /// Closes the socket for good.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

/// Starts the socket task for `client`'s server. Events arrive on the returned receiver;
/// dropping it stops the task.
pub fn spawn_socket(
    client: &ComfyUiClient,
    config: SocketConfig,
) -> (SocketHandle, mpsc::Receiver<SocketEvent>) {
    let (events_tx, events_rx) = mpsc::channel(1024);
    let (connected_tx, connected_rx) = watch::channel(None);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let task = SocketTask {
        client: client.clone(),
        config,
        events: events_tx,
        connected: connected_tx,
        commands: commands_rx,
    };
    tokio::spawn(task.run());
    let handle = SocketHandle {
        connected: connected_rx,
        commands: commands_tx,
    };
    (handle, events_rx)
}

struct SocketTask {
    client: ComfyUiClient,
    config: SocketConfig,
    events: mpsc::Sender<SocketEvent>,
    connected: watch::Sender<Option<ClientId>>,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Why one connection ended.
enum Ended {
    Dropped(String),
    Shutdown,
}

impl SocketTask {
    async fn run(mut self) {
        let mut backoff = self.config.backoff_min;
        loop {
            let client_id = ClientId::random(&self.config.client_id_prefix);
            let url = self.client.websocket_url(&client_id);
            let ws_config = WebSocketConfig::default()
                .max_message_size(Some(self.config.max_message_size))
                .max_frame_size(Some(self.config.max_message_size));
            // A server that accepts the connection but never answers the handshake would
            // otherwise hold this task forever.
            let handshake =
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), false);
            let attempt = tokio::time::timeout(self.client.timeouts().connect, handshake).await;
            match attempt {
                Err(_) => {
                    tracing::debug!(comfy.url = %self.client.base_url(), timeout = ?self.client.timeouts().connect, "websocket handshake timed out");
                }
                Ok(Ok((stream, _))) => {
                    backoff = self.config.backoff_min;
                    tracing::info!(comfy.url = %self.client.base_url(), client.id = %client_id, "websocket connected");
                    match self.serve(stream, &client_id).await {
                        Ended::Shutdown => break,
                        Ended::Dropped(reason) => {
                            tracing::warn!(comfy.url = %self.client.base_url(), client.id = %client_id, %reason, "websocket lost");
                            self.connected.send_replace(None);
                            let lost = SocketEvent::Disconnected { client_id, reason };
                            if self.events.send(lost).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(comfy.url = %self.client.base_url(), %error, "websocket connect failed");
                }
            }

            if self.pause(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
        self.connected.send_replace(None);
    }

    /// Waits before the next attempt, with jitter so many gateways do not reconnect in
    /// step. Returns true when told to stop meanwhile.
    async fn pause(&mut self, backoff: Duration) -> bool {
        let jitter = rand::random_range(0.5..1.0);
        let wait = backoff.mul_f64(jitter);
        tokio::select! {
            () = tokio::time::sleep(wait) => self.events.is_closed(),
            command = self.commands.recv() => matches!(command, None | Some(Command::Shutdown)),
        }
    }

    async fn serve(
        &mut self,
        stream: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        client_id: &ClientId,
    ) -> Ended {
        let (mut sink, mut source) = stream.split();
        if self.config.preview_metadata {
            let flags = r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#;
            if let Err(error) = sink.send(Message::text(flags)).await {
                return Ended::Dropped(format!("feature flags not sent: {error}"));
            }
        }
        self.connected.send_replace(Some(client_id.clone()));
        if self
            .events
            .send(SocketEvent::Connected {
                client_id: client_id.clone(),
            })
            .await
            .is_err()
        {
            return Ended::Shutdown;
        }

        let mut keepalive = tokio::time::interval(self.config.keepalive);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            let silence_deadline = last_heard + self.config.silence_limit;
            tokio::select! {
                frame = source.next() => {
                    let Some(frame) = frame else {
                        return Ended::Dropped("closed by server".to_owned());
                    };
                    last_heard = Instant::now();
                    match frame {
                        Ok(message) => {
                            if let Some(event) = to_event(message)
                                && self.events.send(event).await.is_err()
                            {
                                return Ended::Shutdown;
                            }
                        }
                        Err(error) => return Ended::Dropped(error.to_string()),
                    }
                }
                _ = keepalive.tick() => {
                    if let Err(error) = sink.send(Message::Ping(Bytes::new())).await {
                        return Ended::Dropped(format!("ping failed: {error}"));
                    }
                }
                () = tokio::time::sleep_until(silence_deadline) => {
                    return Ended::Dropped(format!(
                        "silent for {:?}, not even a pong", self.config.silence_limit
                    ));
                }
                command = self.commands.recv() => {
                    let _ = sink.close().await;
                    return match command {
                        Some(Command::Reconnect) => Ended::Dropped("reconnect requested".to_owned()),
                        None | Some(Command::Shutdown) => Ended::Shutdown,
                    };
                }
            }
        }
    }
}

/// Turns one websocket message into an event; what cannot be read is logged and skipped.
fn to_event(message: Message) -> Option<SocketEvent> {
    match message {
        Message::Text(text) => match parse_message(text.as_str()) {
            Ok(ServerMessage::Unknown { kind, data }) => {
                tracing::debug!(message.kind = %kind, "unknown websocket message type");
                Some(SocketEvent::Message(ServerMessage::Unknown { kind, data }))
            }
            Ok(message) => Some(SocketEvent::Message(message)),
            Err(error) => {
                tracing::warn!(%error, "unreadable websocket message skipped");
                None
            }
        },
        Message::Binary(bytes) => match decode_frame(bytes) {
            Ok(frame) => Some(SocketEvent::Frame(frame)),
            Err(error) => {
                tracing::warn!(%error, "unreadable binary frame skipped");
                None
            }
        },
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => None,
    }
}
