//! The websocket registry: which socket holds which clientId, and delivery
//! of JSON and binary frames to one client or to all.
//!
//! Each socket has an unbounded channel drained by its own task, so a send
//! never blocks the executor and frames reach a socket in send order. A new
//! socket with a taken clientId replaces the old one in the registry; the old
//! socket stays open and simply receives nothing more, as in ComfyUI.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::knobs::Knobs;

/// One outgoing websocket frame.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    Text(String),
    Binary(Bytes),
}

/// A preview image and the metadata a type 4 frame carries about it.
#[derive(Debug, Clone)]
pub(crate) struct Preview {
    pub png: bool,
    pub bytes: Vec<u8>,
    pub metadata: Value,
}

/// Where in a progress update a preview is being sent: ComfyUI sends the
/// metadata frame (type 4) before `progress` and the legacy one (type 1) after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreviewStage {
    BeforeProgress,
    AfterProgress,
}

#[derive(Debug)]
struct Socket {
    conn: u64,
    tx: mpsc::UnboundedSender<Frame>,
    preview_metadata: bool,
}

/// What a new socket's task needs.
#[derive(Debug)]
pub(crate) struct Registration {
    pub conn: u64,
    pub frames: mpsc::UnboundedReceiver<Frame>,
    pub close: watch::Receiver<u64>,
}

#[derive(Debug)]
pub(crate) struct Hub {
    sockets: Mutex<HashMap<String, Socket>>,
    next_conn: AtomicU64,
    closer: watch::Sender<u64>,
    knobs: Arc<Mutex<Knobs>>,
}

impl Hub {
    pub fn new(knobs: Arc<Mutex<Knobs>>) -> Self {
        Self {
            sockets: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            closer: watch::Sender::new(0),
            knobs,
        }
    }

    fn sockets(&self) -> MutexGuard<'_, HashMap<String, Socket>> {
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn zombie(&self) -> bool {
        self.knobs.lock().map(|knobs| knobs.zombie).unwrap_or(false)
    }

    /// Registers a socket under `client_id`, replacing any holder, and
    /// queues `greeting` as its first frames.
    pub fn register(&self, client_id: &str, greeting: Vec<Frame>) -> Registration {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::unbounded_channel();
        if !self.zombie() {
            for frame in greeting {
                let _ = tx.send(frame);
            }
        }
        let replaced = self.sockets().insert(
            client_id.to_owned(),
            Socket {
                conn,
                tx,
                preview_metadata: false,
            },
        );
        if replaced.is_some() {
            tracing::debug!(
                client.id = client_id,
                "socket replaced an older one with the same client id"
            );
        }
        Registration {
            conn,
            frames,
            close: self.closer.subscribe(),
        }
    }

    /// Called when a socket's task ends.
    pub fn unregister(&self, client_id: &str, conn: u64) {
        let evict_any = self
            .knobs
            .lock()
            .map(|knobs| knobs.stale_close_evicts)
            .unwrap_or(false);
        let mut sockets = self.sockets();
        if evict_any
            || sockets
                .get(client_id)
                .is_some_and(|socket| socket.conn == conn)
        {
            sockets.remove(client_id);
        }
    }

    /// Answers the feature-flag handshake for this socket.
    pub fn negotiate(&self, client_id: &str, conn: u64, preview_metadata: bool) {
        let mut sockets = self.sockets();
        let Some(socket) = sockets
            .get_mut(client_id)
            .filter(|socket| socket.conn == conn)
        else {
            return;
        };
        socket.preview_metadata = preview_metadata;
        let flags = json!({"type": "feature_flags",
                           "data": {"supports_preview_metadata": true, "max_upload_size": 104_857_600}});
        if !self.zombie() {
            let _ = socket.tx.send(Frame::Text(flags.to_string()));
        }
    }

    /// `{"type": kind, "data": data}` to `target`, or to every socket.
    pub fn send_json(&self, target: Option<&str>, kind: &str, data: Value) {
        let text = json!({"type": kind, "data": data}).to_string();
        self.deliver(target, |_| Some(Frame::Text(text.clone())));
    }

    pub fn send_binary(&self, target: Option<&str>, bytes: Bytes) {
        self.deliver(target, |_| Some(Frame::Binary(bytes.clone())));
    }

    /// A preview in the layout each receiving socket negotiated. Broadcasts
    /// always use the legacy layout: ComfyUI checks the flags of the prompt's
    /// client, and a prompt without one has none.
    pub fn send_preview(&self, target: Option<&str>, stage: PreviewStage, preview: &Preview) {
        self.deliver(target, |socket| {
            let with_metadata = target.is_some() && socket.preview_metadata;
            match (stage, with_metadata) {
                (PreviewStage::BeforeProgress, true) => {
                    Some(Frame::Binary(metadata_frame(preview)))
                }
                (PreviewStage::AfterProgress, false) => Some(Frame::Binary(legacy_frame(preview))),
                _ => None,
            }
        });
    }

    fn deliver(&self, target: Option<&str>, frame_for: impl Fn(&Socket) -> Option<Frame>) {
        if self.zombie() {
            return;
        }
        let sockets = self.sockets();
        let mut send = |socket: &Socket| {
            if let Some(frame) = frame_for(socket) {
                let _ = socket.tx.send(frame);
            }
        };
        match target {
            Some(client_id) => sockets.get(client_id).into_iter().for_each(&mut send),
            None => sockets.values().for_each(send),
        }
    }

    /// Closes every open socket, including replaced ones.
    pub fn drop_all(&self) {
        self.sockets().clear();
        self.closer.send_modify(|generation| *generation += 1);
    }
}

/// `status` as broadcast on queue changes; the greeting adds `sid`.
pub(crate) fn status_data(queue_remaining: usize, sid: Option<&str>) -> Value {
    let mut data = json!({"status": {"exec_info": {"queue_remaining": queue_remaining}}});
    if let Some(sid) = sid {
        data["sid"] = json!(sid);
    }
    data
}

/// Type 1: `u32be 1, u32be format (1 JPEG, 2 PNG), image`.
fn legacy_frame(preview: &Preview) -> Bytes {
    let mut frame = Vec::with_capacity(8 + preview.bytes.len());
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&(if preview.png { 2u32 } else { 1u32 }).to_be_bytes());
    frame.extend_from_slice(&preview.bytes);
    Bytes::from(frame)
}

/// Type 4: `u32be 4, u32be metadata length, metadata JSON, image`.
fn metadata_frame(preview: &Preview) -> Bytes {
    let mut metadata = preview.metadata.clone();
    metadata["image_type"] = json!(if preview.png {
        "image/png"
    } else {
        "image/jpeg"
    });
    let metadata = metadata.to_string().into_bytes();
    let mut frame = Vec::with_capacity(8 + metadata.len() + preview.bytes.len());
    frame.extend_from_slice(&4u32.to_be_bytes());
    frame.extend_from_slice(
        &u32::try_from(metadata.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(&metadata);
    frame.extend_from_slice(&preview.bytes);
    Bytes::from(frame)
}

/// Type 3: `u32be 3, u32be len(node_id), node_id, text`.
pub(crate) fn text_frame(node_id: &str, text: &str) -> Bytes {
    let mut frame = Vec::with_capacity(8 + node_id.len() + text.len());
    frame.extend_from_slice(&3u32.to_be_bytes());
    frame.extend_from_slice(
        &u32::try_from(node_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(node_id.as_bytes());
    frame.extend_from_slice(text.as_bytes());
    Bytes::from(frame)
}
