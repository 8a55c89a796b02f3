//! One backend's place in this replica: standing by until the backend's lease is ours, then
//! running its driver for as long as the lease holds, and standing by again if it is lost.
//!
//! On a shared store, a replica that already drives a backend lets a free one go by for one
//! heartbeat before taking it, so replicas started together spread the backends between
//! them (a lone replica takes them all, one heartbeat apart). With one process on the store
//! every backend is taken at once.
//!
//! A slot standing by keeps the managed process's latest news for the driver it starts, and
//! gives back to the queue any job the dispatcher claimed for the backend just before this
//! replica lost it.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::driver::{Driver, Ended};
use super::{BackendSpec, Command, Context};
use crate::jobs::model::{Job, JobState};

pub(super) async fn run(
    spec: BackendSpec,
    context: Arc<Context>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let span = tracing::info_span!("backend slot", backend.id = %spec.id);
    async move {
        let mut heartbeat = tokio::time::interval(context.settings.heartbeat());
        let mut seen_free = false;
        let mut process_news = None;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => return,
                    Some(Command::Run { job, .. }) => {
                        hand_back(&spec, &context, &job).await;
                        continue;
                    }
                    Some(Command::Process(news)) => {
                        process_news = Some(news);
                        continue;
                    }
                    // Cancels are for the replica driving the backend.
                    Some(Command::Cancel(_)) => continue,
                },
                _ = heartbeat.tick() => {}
            }
            if !take_now(&spec, &context, &mut seen_free).await {
                continue;
            }

            tracing::info!(replica.id = %context.settings.replica, "backend lease taken; driving");
            let driver = Driver::new(
                spec.clone(),
                Arc::clone(&context),
                commands,
                process_news.take(),
            );
            let ended = driver.run().await;
            context.set_driving(&spec.id, false);
            match ended {
                Ended::Shutdown => {
                    release(&spec, &context).await;
                    return;
                }
                Ended::LeaseLost {
                    commands: returned,
                    process_news: news,
                } => {
                    commands = returned;
                    process_news = news;
                    seen_free = false;
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Whether the backend's lease is ours after this look: taken when free or lapsed, unless
/// this replica drives another backend and the lease was not yet free a heartbeat ago.
/// A backend taken counts as driven before the next slot of this replica looks.
async fn take_now(spec: &BackendSpec, context: &Context, seen_free: &mut bool) -> bool {
    let _turn = context.taking.lock().await;
    let now = OffsetDateTime::now_utc();
    if context.store.is_shared() && context.driven_count() > 0 && !*seen_free {
        match context.store.backend_lease(&spec.id).await {
            Ok(lease) => {
                *seen_free = lease.is_none_or(|lease| lease.expires_at <= now);
            }
            Err(error) => tracing::error!(%error, "cannot read the backend lease"),
        }
        return false;
    }

    match context
        .store
        .acquire_backend_lease(&spec.id, &context.lease(), now)
        .await
    {
        Ok(taken) => {
            *seen_free = false;
            if taken {
                context.set_driving(&spec.id, true);
            }
            taken
        }
        Err(error) => {
            tracing::error!(%error, "cannot take the backend lease");
            false
        }
    }
}

/// A job claimed for the backend while this replica was losing it goes back to the queue;
/// if the backend's new holder adopted it first, that one gives it back instead.
async fn hand_back(spec: &BackendSpec, context: &Context, job: &Job) {
    context.board.update(&spec.id, |status| {
        status.runs.retain(|slot| slot.job_id != job.id);
    });
    tracing::info!(job.id = %job.id, "job handed back: the backend is not driven here");
    let requeued = context
        .transition(job.id, JobState::Dispatched, JobState::Queued, None)
        .await;
    if let Err(error) = requeued {
        tracing::error!(job.id = %job.id, %error, "job not handed back; its lease will lapse");
    }
}

/// Hands the backend and its jobs over at once on a clean shutdown.
async fn release(spec: &BackendSpec, context: &Context) {
    let released = context
        .store
        .release_backend_lease(&spec.id, &context.settings.replica)
        .await;
    match released {
        Ok(()) => tracing::info!("backend lease released"),
        Err(error) => tracing::error!(%error, "backend lease not released; it will lapse"),
    }
}
