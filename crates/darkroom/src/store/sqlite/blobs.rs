//! Small blobs kept in the SQLite database itself, in front of the local blob folder.
//!
//! A blob in a file costs a job four waits for the disk before its output can be recorded:
//! the file's `fsync`, and one for each folder its rename had to make durable (the hash's
//! two-level folder is new for most blobs while a store is young). They were the largest
//! part of what Darkroom added to a small job (docs/benchmarks.md). A blob up to
//! [`IN_DATABASE`] bytes goes into the database instead, in a crash-safe commit that
//! costs no wait: the write-ahead log is one file in commit order, so the power-safe
//! commit that follows it (a job's final state, an upload's asset) makes the blob durable
//! with it, and a power cut can never keep the record that names a blob and lose the
//! blob. Larger blobs, and every blob stored before, stay in the folder. A run's last output
//! goes further: its blob is staged ([`BlobStore::stage_stream`]) and written by the very
//! commit that records the output and ends the job.
//!
//! This tier knows blobs only by hash, like every blob store: the store's sweep decides
//! when one is no longer referenced. It serves only a store with local artifacts; blobs
//! in S3 are shared by replicas and stay there.
//!
//! The blobs stored last are also kept in memory ([`Recent`]), up to [`RECENT_BYTES`]: a
//! client asks for a job's output right after it hears the job ended, and that read then
//! needs no trip to a reader's thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::trips::transaction;
use super::{Touch, Writer};
use crate::artifacts::{
    ArtifactError, Blob, BlobHash, BlobInfo, BlobLocks, BlobStore, ByteStream, RangeReader, Staged,
};
use crate::store::{Durability, StoreError};

/// The largest blob kept in the database. Past it, a blob's pages cost the log and its
/// checkpoint more than a file's syncs cost the job (most generated images are below it
/// only at small sizes; previews and text outputs always are).
pub const IN_DATABASE: usize = 256 * 1024;

/// How many bytes of the blobs stored last are kept in memory.
pub const RECENT_BYTES: usize = 2 * 1024 * 1024;

/// Blobs up to [`IN_DATABASE`] bytes in the database, the rest in `files`.
#[derive(Debug)]
pub struct SmallBlobs {
    writer: Writer,
    readers: sqlx::SqlitePool,
    files: Arc<dyn BlobStore>,
    recent: Mutex<Recent>,
}

/// The blobs stored last, newest at the back, at most [`RECENT_BYTES`] of them; the oldest
/// go first. A dozen entries searched in order: a queue is all this needs, so no cache
/// crate is used.
#[derive(Debug, Default)]
struct Recent {
    blobs: VecDeque<(BlobHash, Bytes)>,
    bytes: usize,
}

impl Recent {
    fn get(&self, hash: &BlobHash) -> Option<Bytes> {
        self.blobs
            .iter()
            .find(|(kept, _)| kept == hash)
            .map(|(_, bytes)| bytes.clone())
    }

    fn keep(&mut self, hash: BlobHash, bytes: Bytes) {
        if bytes.len() > RECENT_BYTES || self.get(&hash).is_some() {
            return;
        }
        self.bytes += bytes.len();
        self.blobs.push_back((hash, bytes));
        while self.bytes > RECENT_BYTES {
            let Some((_, oldest)) = self.blobs.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
        }
    }

    fn forget(&mut self, hash: &BlobHash) {
        if let Some(index) = self.blobs.iter().position(|(kept, _)| kept == hash)
            && let Some((_, bytes)) = self.blobs.remove(index)
        {
            self.bytes -= bytes.len();
        }
    }
}

impl SmallBlobs {
    pub(super) fn new(
        writer: Writer,
        readers: sqlx::SqlitePool,
        files: Arc<dyn BlobStore>,
    ) -> Self {
        Self {
            writer,
            readers,
            files,
            recent: Mutex::default(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        // The queue is whole after any panic: each change to it is one step.
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts a blob unless it is there; true when it was not.
    async fn insert(&self, hash: &BlobHash, bytes: Vec<u8>) -> Result<bool, StoreError> {
        let sql = transaction(
            Durability::CrashSafe,
            &["INSERT INTO blobs (hash, bytes) VALUES ($1, $2) \
               ON CONFLICT (hash) DO NOTHING RETURNING 1"],
        );
        let query = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql))
            .bind(hash.as_str().to_owned())
            .bind(bytes);
        self.writer
            .one_trip(query, |rows| (!rows.is_empty(), Touch::Nothing))
            .await
    }

    async fn bytes(&self, hash: &BlobHash) -> Result<Option<Bytes>, StoreError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT bytes FROM blobs WHERE hash = $1")
            .bind(hash.as_str())
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|(bytes,)| Bytes::from(bytes)))
    }

    async fn holds(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM blobs WHERE hash = $1")
            .bind(hash.as_str())
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.is_some())
    }

    async fn remove(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        let sql = transaction(
            Durability::CrashSafe,
            &["DELETE FROM blobs WHERE hash = $1 RETURNING 1"],
        );
        let query =
            sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(hash.as_str().to_owned());
        self.writer
            .one_trip(query, |rows| (!rows.is_empty(), Touch::Nothing))
            .await
    }
}

/// A store fault, as the blob layer names it.
fn database(action: &'static str, hash: &BlobHash) -> impl FnOnce(StoreError) -> ArtifactError {
    let hash = hash.clone();
    move |source| ArtifactError::Database {
        action,
        hash,
        source: Box::new(source),
    }
}

#[async_trait]
impl BlobStore for SmallBlobs {
    // One set of locks for both tiers: a hash is one blob, wherever it lives.
    fn locks(&self) -> &BlobLocks {
        self.files.locks()
    }

    // A staged blob written as a row in a commit of its own.
    async fn put_stream(&self, stream: ByteStream<'_>) -> Result<BlobInfo, ArtifactError> {
        let Staged { info, bytes } = self.stage_stream(stream).await?;
        let Some(bytes) = bytes else {
            return Ok(info);
        };
        let created_new = self
            .insert(&info.hash, bytes.to_vec())
            .await
            .map_err(database("store", &info.hash))?;
        if created_new {
            tracing::debug!(blob.hash = %info.hash, blob.size = info.size, "stored blob in the database");
        }
        Ok(BlobInfo {
            created_new,
            ..info
        })
    }

    // Gathers up to `IN_DATABASE` bytes; a stream that ends by then is staged for a row
    // (and kept in memory), a longer one is handed to the folder with what was gathered in
    // front of it. Chunks are copied and let go as they come, as the folder's own writes do.
    async fn stage_stream(&self, mut stream: ByteStream<'_>) -> Result<Staged, ArtifactError> {
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ArtifactError::Source)?;
            head.extend_from_slice(&chunk);
            drop(chunk);
            if head.len() > IN_DATABASE {
                let gathered = stream::once(async move { Ok(Bytes::from(head)) });
                let info = self
                    .files
                    .put_stream(gathered.chain(stream).boxed())
                    .await?;
                return Ok(Staged { info, bytes: None });
            }
        }

        let hash = BlobHash::from_digest(&blake3::hash(&head));
        let size = head.len() as u64;
        // Bytes stored before this tier existed stay where they are, stored once.
        if self.files.exists(&hash).await? {
            let info = BlobInfo {
                hash,
                size,
                created_new: false,
            };
            return Ok(Staged { info, bytes: None });
        }
        let head = Bytes::from(head);
        self.recent().keep(hash.clone(), head.clone());
        let info = BlobInfo {
            hash,
            size,
            created_new: true,
        };
        Ok(Staged {
            info,
            bytes: Some(head),
        })
    }

    async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError> {
        let kept = self.recent().get(hash);
        let bytes = match kept {
            Some(bytes) => Some(bytes),
            None => self.bytes(hash).await.map_err(database("read", hash))?,
        };
        match bytes {
            Some(bytes) => {
                let size = bytes.len() as u64;
                Ok(Blob::new(hash.clone(), size, Box::new(InMemory(bytes))))
            }
            None => self.files.open(hash).await,
        }
    }

    async fn exists(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        let here = self.holds(hash).await.map_err(database("read", hash))?;
        Ok(here || self.files.exists(hash).await?)
    }

    async fn delete(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        self.recent().forget(hash);
        let here = self.remove(hash).await.map_err(database("delete", hash))?;
        let there = self.files.delete(hash).await?;
        Ok(here || there)
    }
}

/// A blob read whole from its row: at most [`IN_DATABASE`] bytes, sliced without a copy.
#[derive(Debug)]
struct InMemory(Bytes);

#[async_trait]
impl RangeReader for InMemory {
    async fn read(
        self: Box<Self>,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream<'static>, ArtifactError> {
        // Both were checked against the size, which fits in memory.
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = usize::try_from(offset.saturating_add(length))
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let slice = self.0.slice(start..end);
        Ok(stream::once(async move { Ok(slice) }).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::{RECENT_BYTES, Recent};
    use crate::artifacts::BlobHash;
    use bytes::Bytes;

    fn blob(fill: u8, size: usize) -> (BlobHash, Bytes) {
        let bytes = vec![fill; size];
        (
            BlobHash::from_digest(&blake3::hash(&bytes)),
            Bytes::from(bytes),
        )
    }

    #[test]
    fn the_newest_blobs_are_kept_within_their_bound_and_a_deleted_one_is_forgotten() {
        let mut recent = Recent::default();
        let quarter = RECENT_BYTES / 4;
        let blobs: Vec<_> = (0..6).map(|fill| blob(fill, quarter)).collect();
        for (hash, bytes) in &blobs {
            recent.keep(hash.clone(), bytes.clone());
        }
        // Four quarters fit: the two oldest went.
        assert!(recent.get(&blobs[0].0).is_none() && recent.get(&blobs[1].0).is_none());
        for (hash, bytes) in &blobs[2..] {
            assert_eq!(recent.get(hash).as_ref(), Some(bytes));
        }
        assert_eq!(recent.bytes, RECENT_BYTES);

        recent.forget(&blobs[3].0);
        assert!(recent.get(&blobs[3].0).is_none());
        assert_eq!(recent.bytes, RECENT_BYTES - quarter);

        // Keeping a blob twice counts it once; one larger than the bound is not kept.
        recent.keep(blobs[4].0.clone(), blobs[4].1.clone());
        assert_eq!(recent.bytes, RECENT_BYTES - quarter);
        let (hash, bytes) = blob(9, RECENT_BYTES + 1);
        recent.keep(hash.clone(), bytes);
        assert!(recent.get(&hash).is_none());
        assert_eq!(recent.bytes, RECENT_BYTES - quarter);
    }
}
