//! Reading a job's server-sent events, and following a job to its end across dropped
//! connections and server restarts.
//!
//! After any break the job is read again (`GET /api/v2/jobs/{id}`) and the stream resumed
//! after the last event seen (`Last-Event-ID`), so nothing is missed and nothing repeats.
//! The server counts as gone only after it stayed unreachable for `GIVE_UP_AFTER`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::{Client, ClientError};

/// How long the server may stay unreachable while a job is followed.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
const RETRY_DELAYS: &[Duration] = &[
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// Whether a contract status is one a job does not leave.
pub fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled" | "expired")
}

/// Follows job `id` until it ends, handing `on_update` every event and every fresh read of
/// the job; returns the job as `GET /api/v2/jobs/{id}` shows it once it ended.
///
/// # Errors
///
/// `Unreachable` after the server stayed away for a minute; `InvalidInput` for an unknown
/// job.
pub async fn follow(
    client: &Client,
    id: &str,
    mut on_update: impl FnMut(Update<'_>),
) -> Result<Value, ClientError> {
    let mut last_seq = 0;
    let mut failing_since: Option<Instant> = None;
    let mut attempt = 0;
    loop {
        let outcome = follow_once(client, id, &mut last_seq, &mut on_update).await;
        match outcome {
            Ok(Some(job)) => return Ok(job),
            // The stream ended before the job did (a server stopping): read it again,
            // after a breath so a server that keeps closing streams is not hammered.
            Ok(None) => {
                failing_since = None;
                attempt = 0;
                tokio::time::sleep(RETRY_DELAYS[0]).await;
            }
            Err(ClientError::Unreachable { .. }) | Err(ClientError::Server(_))
                if failing_since.is_none_or(|since| since.elapsed() < GIVE_UP_AFTER) =>
            {
                failing_since.get_or_insert_with(Instant::now);
                // Waiting for a server to come back has no event to wait on.
                tokio::time::sleep(RETRY_DELAYS[attempt.min(RETRY_DELAYS.len() - 1)]).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// What `follow` reports as it goes.
#[derive(Debug)]
pub enum Update<'a> {
    /// The job as `GET` shows it, after (re)connecting.
    Job(&'a Value),
    Event(&'a Event),
}

/// Reads the job, then its stream until it ends. `Some(job)` once the job has ended.
async fn follow_once(
    client: &Client,
    id: &str,
    last_seq: &mut u64,
    on_update: &mut impl FnMut(Update<'_>),
) -> Result<Option<Value>, ClientError> {
    let path = format!("/api/v2/jobs/{id}");
    let job = client.get(&path).await?;
    on_update(Update::Job(&job));
    if job["status"].as_str().is_some_and(is_final) {
        return Ok(Some(job));
    }

    let response = client.events(id, *last_seq).await?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut ended = false;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(event) = parse_frame(&frame) else {
                continue;
            };
            if let Some(seq) = event.id {
                *last_seq = (*last_seq).max(seq);
            }
            let status = event.data["status"].as_str().unwrap_or_default();
            ended |= event.name == "status" && is_final(status);
            on_update(Update::Event(&event));
        }
    }
    if ended {
        return Ok(Some(client.get(&path).await?));
    }
    Ok(None)
}

/// One `text/event-stream` frame; comments and frames without data are `None`.
pub fn parse_frame(frame: &str) -> Option<Event> {
    let mut name = String::from("message");
    let mut id = None;
    let mut data = Vec::new();
    for line in frame.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "id" => id = value.parse().ok(),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    let text = data.join("\n");
    let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(Event { name, id, data })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_are_read_as_the_server_writes_them() {
        let event = parse_frame("event: progress\nid: 7\ndata: {\"step\": 3}\n\n").unwrap();
        assert_eq!(event.name, "progress");
        assert_eq!(event.id, Some(7));
        assert_eq!(event.data, json!({"step": 3}));
        assert!(parse_frame(": keep-alive\n\n").is_none());
        let preview = parse_frame("event:preview\ndata:{}").unwrap();
        assert_eq!((preview.name.as_str(), preview.id), ("preview", None));
    }
}
