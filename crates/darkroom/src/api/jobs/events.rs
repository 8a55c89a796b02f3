//! `GET /api/v2/jobs/{id}/events`: the job's events as server-sent events, named as the
//! contract names them (`status`, `progress`, `preview`, `output`, `log`).
//!
//! On connect the stream replays the stored events (all of them, or those after the
//! `Last-Event-ID` the client sends back), then the latest live preview, then follows the
//! bus. Every stored event carries its sequence number as its SSE `id`, so a reconnecting
//! client resumes where it stopped; previews and queue-position updates are live only and
//! carry none. The stream ends after the terminal `status` event, which holds the job's
//! complete outputs.
//!
//! The bus is subscribed before the store is read, so nothing committed in between is
//! missed; events at or below the last sequence sent are dropped as duplicates, and a gap
//! in the sequence (or a lagging receiver) is filled from the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine;
use futures_util::Stream;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::view;
use crate::api::links::Origin;
use crate::api::{ApiError, AppState};
use crate::auth::{Caller, StreamPermit};
use crate::jobs::bus::Notice;
use crate::jobs::model::{EventKind, JobEvent, JobId, JobState, JobSummary};
use crate::store::StoreError;

/// Stored events read per query while catching up.
const PAGE: u32 = 500;
/// At most this many previews a second reach one client; the latest always does.
const PREVIEW_GAP: Duration = Duration::from_millis(250);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A stream slot frees when another stream ends, which takes a while.
const STREAMS_RETRY_SECONDS: u32 = 5;

/// Opens the event stream of a job.
///
/// # Errors
///
/// `404 not_found` for an unknown or malformed id.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    origin: Origin,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let notices = state.bus.subscribe();
    let job = super::load_status(&state, &caller, &id).await?.job;
    let permit = match state.auth.limits_of(&caller) {
        Some(limits) => Some(
            state
                .auth
                .gate
                .open_stream(caller.label(), limits)
                .ok_or_else(|| too_many_streams(limits.max_streams))?,
        ),
        None => None,
    };
    let resume_after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    tracing::debug!(job.id = %job.id, resume_after, "event stream opened");

    let follower = Follower::new(state, &job, notices, resume_after, origin, permit);
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The state of one client's stream.
struct Follower {
    state: AppState,
    job_id: JobId,
    job_expires_at: OffsetDateTime,
    origin: Origin,
    notices: broadcast::Receiver<Notice>,
    /// The highest sequence number sent (or skipped by `Last-Event-ID`).
    last_seq: u64,
    /// The job's state as of the last status sent.
    job_state: JobState,
    /// The queue position last sent while the job waits.
    queue_position: Option<u64>,
    pending: VecDeque<Event>,
    caught_up: bool,
    /// The terminal status is queued: end once `pending` is drained.
    finished: bool,
    preview_sent_at: Option<Instant>,
    /// When a held-back preview is to be sent.
    preview_due: Option<Instant>,
    /// Counts this stream against its caller's limit for as long as the stream lives.
    _permit: Option<StreamPermit>,
}

impl Follower {
    fn new(
        state: AppState,
        job: &JobSummary,
        notices: broadcast::Receiver<Notice>,
        resume_after: u64,
        origin: Origin,
        permit: Option<StreamPermit>,
    ) -> Self {
        Self {
            state,
            job_id: job.id,
            job_expires_at: job.expires_at,
            origin,
            notices,
            last_seq: resume_after,
            job_state: job.state,
            queue_position: None,
            pending: VecDeque::new(),
            caught_up: false,
            finished: false,
            preview_sent_at: None,
            preview_due: None,
            _permit: permit,
        }
    }

    /// The next frame, or `None` once the stream is over.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            let step = if self.caught_up {
                self.follow().await
            } else {
                self.start().await
            };
            if let Err(error) = step {
                // The client reconnects with its last id and resumes from the store.
                tracing::error!(job.id = %self.job_id, %error, "event stream cut short");
                self.finished = true;
            }
        }
    }

    /// Replays what is stored, then makes sure a final job's stream ends with its status.
    async fn start(&mut self) -> Result<(), StoreError> {
        self.caught_up = true;
        if !self.resume_point_exists().await? {
            // An id this job never had would hide every later event: start over instead.
            self.last_seq = 0;
        }
        self.catch_up().await?;
        if self.finished {
            return Ok(());
        }
        let job = self.state.store.job_snapshot(self.job_id).await?;
        match job.map(|snapshot| snapshot.job) {
            // Everything was sent before (the client resumed past the end): say how it ended.
            Some(job) if job.state.is_final() => {
                let payload = json!({"status": job.state.public_status(), "state": job.state, "error": job.error});
                self.push_status(None, payload).await
            }
            Some(_) => {
                self.push_preview();
                Ok(())
            }
            None => {
                self.finished = true;
                Ok(())
            }
        }
    }

    /// Whether the `Last-Event-ID` the client resumes after is an event of this job.
    async fn resume_point_exists(&self) -> Result<bool, StoreError> {
        if self.last_seq == 0 {
            return Ok(true);
        }
        let store = &self.state.store;
        let events = store
            .events_after(self.job_id, self.last_seq - 1, 1)
            .await?;
        Ok(events
            .first()
            .is_some_and(|event| event.seq == self.last_seq))
    }

    /// Sends every stored event after `last_seq`.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        loop {
            let events = self
                .state
                .store
                .events_after(self.job_id, self.last_seq, PAGE)
                .await?;
            let full_page = events.len() == PAGE as usize;
            for event in events {
                self.push_stored(event).await?;
                if self.finished {
                    return Ok(());
                }
            }
            if !full_page {
                return Ok(());
            }
        }
    }

    /// Waits for the next notice (or a preview falling due) and acts on it.
    async fn follow(&mut self) -> Result<(), StoreError> {
        let notice = tokio::select! {
            notice = self.notices.recv() => notice,
            () = until(self.preview_due) => {
                self.push_preview();
                return Ok(());
            }
            // The client reconnects with its last id to whichever server comes up next.
            () = self.state.stopping.cancelled() => {
                self.finished = true;
                return Ok(());
            }
        };
        match notice {
            Ok(Notice::Event(event)) if event.job_id == self.job_id => self.on_event(event).await,
            Ok(Notice::Event(event)) if event.kind == EventKind::Status => {
                self.on_queue_move().await
            }
            Ok(Notice::Event(_)) => Ok(()),
            Ok(Notice::Preview(job_id)) if job_id == self.job_id => {
                self.on_preview();
                Ok(())
            }
            Ok(Notice::Preview(_)) => Ok(()),
            Ok(Notice::Resync) => self.catch_up().await,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(job.id = %self.job_id, missed, "event stream lagged; reading the store");
                self.catch_up().await
            }
            Err(RecvError::Closed) => {
                self.finished = true;
                Ok(())
            }
        }
    }

    async fn on_event(&mut self, event: JobEvent) -> Result<(), StoreError> {
        if event.seq <= self.last_seq {
            return Ok(());
        }
        if event.seq == self.last_seq + 1 {
            return self.push_stored(event).await;
        }
        // Two publishers raced (an API cancel and the driver): take the order from the store.
        self.catch_up().await
    }

    /// Another job changed state; while this one waits, its place in the queue may have.
    async fn on_queue_move(&mut self) -> Result<(), StoreError> {
        if self.job_state != JobState::Queued {
            return Ok(());
        }
        let position = self.state.store.queue_position(self.job_id).await?;
        if position.is_some() && position != self.queue_position {
            self.queue_position = position;
            let status = self.job_state.public_status();
            let payload =
                json!({"status": status, "state": self.job_state, "queue_position": position});
            self.pending.push_back(frame("status", None, &payload));
        }
        Ok(())
    }

    /// Sends the new preview now, or once the gap since the last one has passed; previews
    /// arriving meanwhile replace it, so the client always ends up with the latest.
    fn on_preview(&mut self) {
        match self.preview_sent_at {
            Some(at) if at.elapsed() < PREVIEW_GAP => self.preview_due = Some(at + PREVIEW_GAP),
            _ => self.push_preview(),
        }
    }

    fn push_preview(&mut self) {
        self.preview_due = None;
        let Some(preview) = self.state.bus.latest_preview(self.job_id) else {
            return;
        };
        let data = base64::engine::general_purpose::STANDARD.encode(&preview.image);
        let payload = json!({
            "node_id": preview.node_id.unwrap_or_default(),
            "content_type": preview.content_type,
            "data_base64": data,
        });
        self.preview_sent_at = Some(Instant::now());
        self.pending.push_back(frame("preview", None, &payload));
    }

    /// A stored event as a frame with its sequence number as id.
    async fn push_stored(&mut self, event: JobEvent) -> Result<(), StoreError> {
        self.last_seq = event.seq;
        match event.kind {
            EventKind::Status => self.push_status(Some(event.seq), event.payload).await,
            EventKind::Output => {
                let payload =
                    view::output_payload(event.payload, self.job_expires_at, &self.origin);
                self.pending
                    .push_back(frame("output", Some(event.seq), &payload));
                Ok(())
            }
            kind => {
                self.pending
                    .push_back(frame(kind.as_str(), Some(event.seq), &event.payload));
                Ok(())
            }
        }
    }

    /// A status frame: the stored payload plus the queue position while queued, and on the
    /// terminal status the complete outputs, after which the stream ends.
    async fn push_status(
        &mut self,
        seq: Option<u64>,
        mut payload: Value,
    ) -> Result<(), StoreError> {
        let state = payload
            .get("state")
            .and_then(Value::as_str)
            .and_then(|state| state.parse().ok());
        if let Some(state) = state {
            self.job_state = state;
        }
        // Only a queued or dispatched job has a position, and only a final one needs its
        // outputs and expiry: the states between need no read.
        let needs_job = matches!(self.job_state, JobState::Queued | JobState::Dispatched)
            || self.job_state.is_final();
        let snapshot = if needs_job {
            self.state.store.job_snapshot(self.job_id).await?
        } else {
            None
        };
        let position = match &snapshot {
            // Only the current state has a current position; an older status shows none.
            Some(snapshot) if snapshot.job.state == self.job_state => {
                view::shown_position(self.job_state, snapshot.queue_position)
            }
            _ => None,
        };
        self.queue_position = position;
        payload["queue_position"] = json!(position);

        if self.job_state.is_final() {
            let (expires_at, outputs) = snapshot
                .map_or((self.job_expires_at, Vec::new()), |snapshot| {
                    (snapshot.job.expires_at, snapshot.outputs)
                });
            let outputs: Vec<view::OutputView> = outputs
                .iter()
                .map(|output| view::OutputView::new(output, expires_at, &self.origin))
                .collect();
            payload["outputs"] = json!(outputs);
            self.finished = true;
        }
        self.pending.push_back(frame("status", seq, &payload));
        Ok(())
    }
}

/// `429 too_many_streams`: the caller holds its limit of open streams.
fn too_many_streams(limit: u32) -> ApiError {
    ApiError {
        retry_after: Some(STREAMS_RETRY_SECONDS),
        ..ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "this key already has {limit} event streams open, its limit; close one, or \
                 poll GET /api/v2/jobs/{{id}} instead"
            ),
        )
    }
}

/// Resolves at `due`, or never.
async fn until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn frame(name: &str, seq: Option<u64>, payload: &Value) -> Event {
    let event = Event::default().event(name).data(payload.to_string());
    match seq {
        Some(seq) => event.id(seq.to_string()),
        None => event,
    }
}
