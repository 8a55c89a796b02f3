//! One backend's place in this replica: standing by until the backend's lease is ours, then
//! running its driver for as long as the lease holds, and standing by again if it is lost.
//!
//! On a shared store, a replica that already drives a backend lets a free one go by for one
//! heartbeat before taking it, so replicas started together spread the backends between
//! them (a lone replica takes them all, one heartbeat apart). With one process on the store
//! every backend is taken at once.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::driver::{Driver, Ended};
use super::{BackendSpec, Command, Context};

pub(super) async fn run(
    spec: BackendSpec,
    context: Arc<Context>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let span = tracing::info_span!("backend slot", backend.id = %spec.id);
    async move {
        let mut heartbeat = tokio::time::interval(context.settings.heartbeat());
        let mut seen_free = false;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => return,
                    // Work and cancels are for the replica driving the backend.
                    Some(Command::Wake | Command::Cancel(_)) => continue,
                },
                _ = heartbeat.tick() => {}
            }
            if !take_now(&spec, &context, &mut seen_free).await {
                continue;
            }

            tracing::info!(replica.id = %context.settings.replica, "backend lease taken; driving");
            let ended = Driver::new(spec.clone(), Arc::clone(&context), commands)
                .run()
                .await;
            context.set_driving(&spec.id, false);
            match ended {
                Ended::Shutdown => {
                    release(&spec, &context).await;
                    return;
                }
                Ended::LeaseLost(returned) => {
                    commands = returned;
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
