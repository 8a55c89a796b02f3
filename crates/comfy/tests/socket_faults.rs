//! The websocket layer under faults: dropped sockets, silent ones, huge frames, garbage.
//! Servers here are the simulator or a bare websocket server the test controls, since a
//! real ComfyUI cannot be made to misbehave on demand.

// A failed unwrap is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use comfy::frames::BinaryFrame;
use comfy::{ComfyUiClient, SocketConfig, SocketEvent, spawn_socket};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

fn quick_config() -> SocketConfig {
    SocketConfig {
        keepalive: Duration::from_millis(100),
        silence_limit: Duration::from_millis(600),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..SocketConfig::default()
    }
}

async fn next_event(events: &mut mpsc::Receiver<SocketEvent>) -> SocketEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("socket task alive")
}

async fn next_connection(events: &mut mpsc::Receiver<SocketEvent>) -> comfy::ClientId {
    loop {
        if let SocketEvent::Connected { client_id } = next_event(events).await {
            return client_id;
        }
    }
}

async fn next_disconnection(events: &mut mpsc::Receiver<SocketEvent>) -> String {
    loop {
        if let SocketEvent::Disconnected { reason, .. } = next_event(events).await {
            return reason;
        }
    }
}

#[tokio::test]
async fn dropped_socket_reconnects_under_a_new_client_id() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let client = ComfyUiClient::new(&sim.base_url()).unwrap();
    let (handle, mut events) = spawn_socket(&client, quick_config());

    let first = next_connection(&mut events).await;
    assert_eq!(handle.client_id(), Some(first.clone()));
    sim.drop_sockets_now();
    next_disconnection(&mut events).await;
    let second = next_connection(&mut events).await;
    assert_ne!(
        first, second,
        "an id an old socket may hold is never reused"
    );
    assert_eq!(handle.wait_connected().await, Some(second));

    handle.shutdown();
    sim.shutdown().await;
}

#[tokio::test]
async fn reconnect_on_request_opens_a_fresh_socket() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let client = ComfyUiClient::new(&sim.base_url()).unwrap();
    let (handle, mut events) = spawn_socket(&client, quick_config());
    let first = next_connection(&mut events).await;
    handle.reconnect();
    assert_eq!(next_disconnection(&mut events).await, "reconnect requested");
    assert_ne!(next_connection(&mut events).await, first);
    handle.shutdown();
    sim.shutdown().await;
}

/// A websocket server that greets each client like ComfyUI, then runs `behave`.
async fn bare_server<F, Fut>(behave: F) -> String
where
    F: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let behave = std::sync::Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let behave = std::sync::Arc::clone(&behave);
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let greeting = r#"{"type":"status","data":{"status":{"exec_info":{"queue_remaining":0}},"sid":"x"}}"#;
                let _ = socket.send(Message::text(greeting)).await;
                behave(socket).await;
            });
        }
    });
    format!("http://{address}/")
}

#[tokio::test]
async fn silent_socket_that_answers_nothing_is_dropped_and_reopened() {
    // Holds the connection open but never reads (so never answers a ping) or writes.
    let base = bare_server(|socket| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    })
    .await;
    let client = ComfyUiClient::new(&base).unwrap();
    let (handle, mut events) = spawn_socket(&client, quick_config());
    let first = next_connection(&mut events).await;
    let reason = next_disconnection(&mut events).await;
    assert!(reason.contains("silent"), "{reason}");
    assert_ne!(next_connection(&mut events).await, first);
    handle.shutdown();
}

#[tokio::test]
async fn frames_of_tens_of_megabytes_are_accepted() {
    const IMAGE_LEN: usize = 40 << 20;
    let base = bare_server(|mut socket| async move {
        let mut frame = Vec::with_capacity(IMAGE_LEN + 8);
        frame.extend_from_slice(&1u32.to_be_bytes());
        frame.extend_from_slice(&2u32.to_be_bytes());
        frame.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        frame.resize(IMAGE_LEN + 8, 7);
        let _ = socket.send(Message::binary(frame)).await;
        while socket.next().await.is_some() {}
    })
    .await;
    let client = ComfyUiClient::new(&base).unwrap();
    let (handle, mut events) = spawn_socket(&client, quick_config());
    next_connection(&mut events).await;
    loop {
        match next_event(&mut events).await {
            SocketEvent::Frame(BinaryFrame::Preview(preview)) => {
                assert_eq!(preview.image.len(), IMAGE_LEN);
                assert!(preview.image.starts_with(b"\x89PNG"));
                break;
            }
            SocketEvent::Disconnected { reason, .. } => panic!("dropped: {reason}"),
            _ => {}
        }
    }
    handle.shutdown();
}

#[tokio::test]
async fn garbage_from_the_server_is_skipped_and_the_socket_lives_on() {
    let base = bare_server(|mut socket| async move {
        let _ = socket.send(Message::text("this is not json")).await;
        let _ = socket.send(Message::binary(vec![0u8, 0, 0])).await;
        let _ = socket
            .send(Message::text(r#"{"type":"execution_start","data":{}}"#))
            .await;
        let _ = socket
            .send(Message::text(
                r#"{"type":"my.custom.event","data":{"x":1}}"#,
            ))
            .await;
        let _ = socket
            .send(Message::text(
                r#"{"type":"execution_start","data":{"prompt_id":"p1","timestamp":1}}"#,
            ))
            .await;
        while socket.next().await.is_some() {}
    })
    .await;
    let client = ComfyUiClient::new(&base).unwrap();
    let (handle, mut events) = spawn_socket(&client, quick_config());
    next_connection(&mut events).await;
    let mut kinds = Vec::new();
    while kinds.last().map(String::as_str) != Some("execution_start") {
        match next_event(&mut events).await {
            SocketEvent::Message(message) => kinds.push(message.kind().to_owned()),
            SocketEvent::Disconnected { reason, .. } => panic!("dropped: {reason}"),
            _ => {}
        }
    }
    assert_eq!(kinds, ["status", "my.custom.event", "execution_start"]);
    handle.shutdown();
}
