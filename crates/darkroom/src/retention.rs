//! The retention sweep: finished jobs past `expires_at` are expired, their outputs and
//! the blobs nothing else refers to deleted. The store decides what is expired (final
//! jobs only), so a job still in use is never touched.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::artifacts::BlobStore;
use crate::store::Store;

/// How often the sweep runs, and how many jobs one pass expires at most.
const EVERY: Duration = Duration::from_secs(60);
const BATCH: u32 = 200;

/// Sweeps now and then, forever; abort the task to stop it.
pub async fn sweep_forever(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let mut interval = tokio::time::interval(EVERY);
    loop {
        interval.tick().await;
        sweep_once(store.as_ref(), blobs.as_ref()).await;
    }
}

/// One pass: expires what is due and deletes orphaned blobs. Returns how many jobs expired.
pub async fn sweep_once(store: &dyn Store, blobs: &dyn BlobStore) -> usize {
    let sweep = match store.sweep_expired(OffsetDateTime::now_utc(), BATCH).await {
        Ok(sweep) => sweep,
        Err(error) => {
            tracing::error!(%error, "retention sweep failed");
            return 0;
        }
    };
    for hash in &sweep.orphaned_blobs {
        if let Err(error) = blobs.delete(hash).await {
            tracing::error!(blob = %hash.as_str(), %error, "expired blob not deleted");
        }
    }
    if !sweep.expired_jobs.is_empty() {
        tracing::info!(
            jobs = sweep.expired_jobs.len(),
            blobs = sweep.orphaned_blobs.len(),
            "expired jobs removed"
        );
    }
    sweep.expired_jobs.len()
}
