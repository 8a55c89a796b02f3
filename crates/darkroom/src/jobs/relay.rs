//! Carries the events other replicas commit onto this replica's bus, so a client following
//! a job here sees the progress of a job another replica runs.
//!
//! The store's feed only says which event was committed; the event itself is read back
//! from the store, so the bus carries exactly what any replica's stream would replay, in
//! the job's sequence. Events this replica published itself are skipped. When the feed
//! says notices may be missing, or an event cannot be read, every follower catches up
//! from the store instead: a stream may repeat nothing and miss nothing.

use std::sync::Arc;
use std::time::Duration;

use super::bus::JobBus;
use super::model::{EventKind, JobEvent, JobState};
use crate::store::{EventFeed, FeedNotice, Store};

/// Pause before asking a failing feed again.
const RETRY: Duration = Duration::from_secs(1);

/// Relays until the task is dropped. `on_new_job` runs for each job another replica
/// accepted, so this replica's drivers look at the queue at once.
pub async fn relay(
    store: Arc<dyn Store>,
    bus: Arc<JobBus>,
    mut feed: Box<dyn EventFeed>,
    on_new_job: impl Fn() + Send,
) {
    tracing::info!("relaying events committed by other replicas");
    loop {
        let notice = match feed.next().await {
            Ok(notice) => notice,
            Err(error) => {
                tracing::error!(%error, "event feed failed; retrying");
                tokio::time::sleep(RETRY).await;
                bus.resync();
                continue;
            }
        };
        match notice {
            FeedNotice::Gap => {
                tracing::warn!("event feed reconnected; streams catch up from the store");
                bus.resync();
            }
            FeedNotice::Committed { job_id, seq } => {
                if seq == 1 {
                    on_new_job();
                }
                if bus.published_up_to(job_id) >= seq {
                    continue;
                }
                match store.events_after(job_id, seq - 1, 1).await {
                    Ok(events) => events.into_iter().for_each(|event| publish(&bus, event)),
                    Err(error) => {
                        tracing::error!(job.id = %job_id, %error, "committed event not read");
                        bus.resync();
                    }
                }
            }
        }
    }
}

fn publish(bus: &JobBus, event: JobEvent) {
    let job_id = event.job_id;
    let ends_job = event.kind == EventKind::Status
        && event
            .payload
            .get("state")
            .and_then(serde_json::Value::as_str)
            .and_then(|state| state.parse::<JobState>().ok())
            .is_some_and(JobState::is_final);
    bus.publish(event);
    if ends_job {
        bus.forget(job_id);
    }
}
