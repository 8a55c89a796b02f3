//! Per-hash locks between the writers that come to rely on a stored blob and the deleters
//! that remove a blob no record names.
//!
//! Blobs are shared by every record over the same bytes, so a writer often finds its
//! blob already stored and only adds a record. Without these locks a delete could slip
//! between the two: the last record over the bytes goes, its blob is found unused and
//! deleted, and then the new record commits naming bytes that are gone. Here a writer
//! holds its hash (shared) from after its `put` until its record commits, and checks the
//! blob is still there once it holds it; a deleter holds the hash (exclusive) while it
//! checks again that no record names the blob and deletes it. Either the deleter sees the
//! new record and keeps the blob, or the writer sees the blob gone and stores it again or
//! gives up, never leaving a record without its bytes.
//!
//! The locks are this process's: replicas that share blobs in S3 do not see each other's.
//! A task takes one hash's lock once: a second shared take queues behind a waiting
//! deleter, which waits for the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::BlobHash;

/// Hashes share this many locks: a writer and a deleter of different blobs rarely wait
/// for each other, and the locks cost nothing per blob.
const STRIPES: usize = 64;

/// Held by a writer until its record over the blob has committed.
pub type BlobHold = OwnedRwLockReadGuard<()>;

/// The locks of one blob store.
#[derive(Debug)]
pub struct BlobLocks {
    stripes: Vec<Arc<RwLock<()>>>,
    /// Deletes finished, counted before each releases its lock: a writer that finds it
    /// unchanged since before its `put` knows no blob went meanwhile and need not look.
    deletions: Arc<AtomicU64>,
}

/// Held by a deleter; counts its delete as finished when it is released.
#[derive(Debug)]
pub struct Deleting {
    deletions: Arc<AtomicU64>,
    _lock: OwnedRwLockWriteGuard<()>,
}

impl Drop for Deleting {
    fn drop(&mut self) {
        // Before the lock goes (fields drop after this body).
        self.deletions.fetch_add(1, Ordering::SeqCst);
    }
}

impl Default for BlobLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Arc::new(RwLock::new(()))).collect(),
            deletions: Arc::default(),
        }
    }
}

impl BlobLocks {
    /// Shared: the blob must not be deleted while this is held.
    pub async fn using(&self, hash: &BlobHash) -> BlobHold {
        Arc::clone(self.stripe(hash)).read_owned().await
    }

    /// Exclusive: no writer is between finding this blob and recording it.
    pub async fn deleting(&self, hash: &BlobHash) -> Deleting {
        Deleting {
            deletions: Arc::clone(&self.deletions),
            _lock: Arc::clone(self.stripe(hash)).write_owned().await,
        }
    }

    /// How many deletes have finished: read before a `put`, handed to
    /// [`hold`](crate::artifacts::BlobStore) after it.
    pub fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::SeqCst)
    }

    fn stripe(&self, hash: &BlobHash) -> &Arc<RwLock<()>> {
        // The hash is uniform: its first byte spreads blobs evenly.
        let first = u8::from_str_radix(&hash.hex()[..2], 16).unwrap_or_default();
        &self.stripes[usize::from(first) % self.stripes.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(digit: char) -> BlobHash {
        format!("blake3:{}", digit.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn a_delete_waits_for_holders_of_its_hash_and_counts_once_done() {
        let (locks, blob) = (BlobLocks::default(), hash('a'));
        let before = locks.deletions();
        let held = locks.using(&blob).await;

        let deleting = locks.deleting(&blob);
        tokio::pin!(deleting);
        assert!(
            futures_util::poll!(deleting.as_mut()).is_pending(),
            "a holder keeps the delete out"
        );
        drop(held);
        let deleting = deleting.await;
        assert_eq!(
            locks.deletions(),
            before,
            "counted when done, not when started"
        );
        drop(deleting);
        assert_eq!(locks.deletions(), before + 1);
    }
}
