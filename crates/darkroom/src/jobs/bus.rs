//! Live news about jobs for the API's event streams: every committed event, and the
//! latest preview image of each running job.
//!
//! The bus carries only what the store already holds (events are published after their
//! transaction commits), plus previews, which are kept in memory only: they are many,
//! large and worthless once the job ends. A subscriber that lags re-reads the store.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::jobs::model::{JobEvent, JobId};

/// The latest preview of one job.
#[derive(Debug, Clone)]
pub struct LivePreview {
    pub node_id: Option<String>,
    pub content_type: &'static str,
    pub image: Bytes,
}

/// One piece of news.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A committed event, in the job's sequence.
    Event(JobEvent),
    /// A new preview for the job; read it with [`JobBus::latest_preview`].
    Preview(JobId),
    /// Events may have been committed (by another replica) without a notice: read the
    /// store for what was missed.
    Resync,
}

/// The broadcast of notices, the preview of each job, and how far each unfinished job's
/// events were published.
#[derive(Debug)]
pub struct JobBus {
    sender: broadcast::Sender<Notice>,
    previews: Mutex<HashMap<JobId, LivePreview>>,
    published: Mutex<HashMap<JobId, u64>>,
}

impl Default for JobBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
            previews: Mutex::default(),
            published: Mutex::default(),
        }
    }
}

impl JobBus {
    /// Announces a committed event.
    pub fn publish(&self, event: JobEvent) {
        if let Ok(mut published) = self.published.lock() {
            let seq = published.entry(event.job_id).or_default();
            *seq = (*seq).max(event.seq);
        }
        // No subscriber is fine: the event is in the store.
        let _ = self.sender.send(Notice::Event(event));
    }

    /// The highest sequence number published for the job, until it is forgotten.
    pub fn published_up_to(&self, job_id: JobId) -> u64 {
        self.published
            .lock()
            .ok()
            .and_then(|published| published.get(&job_id).copied())
            .unwrap_or(0)
    }

    /// Tells every follower to catch up from the store.
    pub fn resync(&self) {
        let _ = self.sender.send(Notice::Resync);
    }

    /// Keeps `preview` as the job's latest and announces it.
    pub fn preview(&self, job_id: JobId, preview: LivePreview) {
        if let Ok(mut previews) = self.previews.lock() {
            previews.insert(job_id, preview);
        }
        let _ = self.sender.send(Notice::Preview(job_id));
    }

    /// The job's latest preview, if it has had one and is not finished.
    pub fn latest_preview(&self, job_id: JobId) -> Option<LivePreview> {
        self.previews.lock().ok()?.get(&job_id).cloned()
    }

    /// Forgets the job's preview and published sequence once it is final.
    pub fn forget(&self, job_id: JobId) {
        if let Ok(mut previews) = self.previews.lock() {
            previews.remove(&job_id);
        }
        if let Ok(mut published) = self.published.lock() {
            published.remove(&job_id);
        }
    }

    /// A receiver of every notice from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.sender.subscribe()
    }
}
