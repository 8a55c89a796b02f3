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
//! blob. Larger blobs, and every blob stored before, stay in the folder.
//!
//! This tier knows blobs only by hash, like every blob store: the store's sweep decides
//! when one is no longer referenced. It serves only a store with local artifacts; blobs
//! in S3 are shared by replicas and stay there.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::trips::transaction;
use super::{Touch, Writer};
use crate::artifacts::{
    ArtifactError, Blob, BlobHash, BlobInfo, BlobLocks, BlobStore, ByteStream, RangeReader,
};
use crate::store::{Durability, StoreError};

/// The largest blob kept in the database. Past it, a blob's pages cost the log and its
/// checkpoint more than a file's syncs cost the job (most generated images are below it
/// only at small sizes; previews and text outputs always are).
pub const IN_DATABASE: usize = 256 * 1024;

/// Blobs up to [`IN_DATABASE`] bytes in the database, the rest in `files`.
#[derive(Debug)]
pub struct SmallBlobs {
    writer: Writer,
    readers: sqlx::SqlitePool,
    files: Arc<dyn BlobStore>,
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
        }
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

    // Gathers up to `IN_DATABASE` bytes; a stream that ends by then is a row, a longer one
    // is handed to the folder with what was gathered in front of it. Chunks are copied
    // and let go as they come, as the folder's own writes do.
    async fn put_stream(&self, mut stream: ByteStream<'_>) -> Result<BlobInfo, ArtifactError> {
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ArtifactError::Source)?;
            head.extend_from_slice(&chunk);
            drop(chunk);
            if head.len() > IN_DATABASE {
                let gathered = stream::once(async move { Ok(Bytes::from(head)) });
                return self.files.put_stream(gathered.chain(stream).boxed()).await;
            }
        }

        let hash = BlobHash::from_digest(&blake3::hash(&head));
        let size = head.len() as u64;
        // Bytes stored before this tier existed stay where they are, stored once.
        if self.files.exists(&hash).await? {
            return Ok(BlobInfo {
                hash,
                size,
                created_new: false,
            });
        }
        let created_new = self
            .insert(&hash, head)
            .await
            .map_err(database("store", &hash))?;
        if created_new {
            tracing::debug!(blob.hash = %hash, blob.size = size, "stored blob in the database");
        }
        Ok(BlobInfo {
            hash,
            size,
            created_new,
        })
    }

    async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError> {
        match self.bytes(hash).await.map_err(database("read", hash))? {
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
