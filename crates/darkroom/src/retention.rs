//! The retention sweep: finished jobs past `expires_at` are expired, their outputs and
//! the blobs nothing else refers to deleted. The store decides what is expired (final
//! jobs only), so a job still in use is never touched.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::artifacts::{BlobHash, BlobStore};
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
        delete_if_unused(store, blobs, hash).await;
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

/// Deletes the blob `hash` unless a record names it, checked again under the hash's lock
/// (see `artifacts::BlobLocks`): a record committed since it was found unused keeps it,
/// and a writer that found it stored before this delete finds it gone and stores it again.
/// Failures are logged: the bytes are then litter, never missing.
pub async fn delete_if_unused(store: &dyn Store, blobs: &dyn BlobStore, hash: &BlobHash) {
    let _deleting = blobs.locks().deleting(hash).await;
    match store.assets_with_hash(hash).await {
        Ok(users) if users.is_empty() => {
            if let Err(error) = blobs.delete(hash).await {
                tracing::error!(blob.hash = %hash, %error, "unused blob not deleted");
            }
        }
        Ok(_) => tracing::debug!(blob.hash = %hash, "blob named by a new record; kept"),
        Err(error) => {
            tracing::error!(blob.hash = %hash, %error, "blob kept: its records could not be read");
        }
    }
}
