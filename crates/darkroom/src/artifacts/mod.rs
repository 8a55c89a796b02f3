//! Artifacts: the bytes of outputs and uploads, content-addressed by blake3 hash, on local
//! disk or in S3-compatible object storage that several replicas share.
//!
//! This module owns the blobs: writing one atomically (it becomes visible only complete),
//! finding it again by its hash, reading byte ranges and deleting. Callers see one
//! [`BlobStore`] trait; the engines are [`LocalBlobStore`] and [`S3BlobStore`]. It must not
//! know about jobs or assets (the store decides when a blob is no longer referenced) and
//! must never build a path or key from anything but a validated [`BlobHash`], so no name a
//! client or ComfyUI sends can reach outside the root.

mod error;
mod hash;
mod local;
mod location;
mod locks;
mod read;
mod s3;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use error::ArtifactError;
pub use hash::BlobHash;
pub use local::LocalBlobStore;
pub use location::{ArtifactsLocation, S3Settings};
pub use locks::{BlobHold, BlobLocks, Deleting};
pub use read::{Blob, BlobSlice, RangeReader};
pub use s3::S3BlobStore;

/// Chunks of bytes, as blobs are written and read.
pub type ByteStream<'a> = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'a>>;

/// What `put` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: BlobHash,
    pub size: u64,
    /// False when identical bytes were already stored (a dedup hit).
    pub created_new: bool,
}

/// A blob stored, or staged: its bytes handed back, unwritten, for the database commit
/// that records them (see [`BlobStore::stage_stream`]).
#[derive(Debug, Clone)]
pub struct Staged {
    pub info: BlobInfo,
    /// The bytes the commit that records the blob must write, when it was not stored.
    pub bytes: Option<Bytes>,
}

/// Content-addressed blob storage. Every engine hashes while it writes, never holds a whole
/// blob in memory, and makes a blob visible only once it is complete, so a reader never
/// sees half of one and a failed or canceled write leaves nothing behind.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores a stream of bytes under their hash; callers use [`put`](Self::put).
    ///
    /// # Errors
    ///
    /// [`ArtifactError::Source`] when the stream yields an error; an engine error when the
    /// storage refuses. Either way no blob is left behind.
    async fn put_stream(&self, stream: ByteStream<'_>) -> Result<BlobInfo, ArtifactError>;

    /// Stores a stream of bytes as [`put_stream`](Self::put_stream) does, except that a
    /// store that keeps small blobs in the database may leave a small one unwritten and
    /// hand its bytes back, for the caller to write in the commit that records it (one
    /// commit fewer). The caller must write them, or the record names a blob that is not
    /// there. [`Staged::info`]'s `created_new` is then a guess (true); nothing is deleted
    /// on its word.
    ///
    /// # Errors
    ///
    /// As [`put_stream`](Self::put_stream).
    async fn stage_stream(&self, stream: ByteStream<'_>) -> Result<Staged, ArtifactError> {
        Ok(Staged {
            info: self.put_stream(stream).await?,
            bytes: None,
        })
    }

    /// Opens a blob for reading whole or by range; see [`Blob`].
    ///
    /// # Errors
    ///
    /// [`ArtifactError::NotFound`] when no such blob is stored.
    async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError>;

    /// Whether a blob with this hash is stored.
    ///
    /// # Errors
    ///
    /// An engine error when the storage cannot answer.
    async fn exists(&self, hash: &BlobHash) -> Result<bool, ArtifactError>;

    /// Removes a blob; returns false when it was not there. The caller (the store's sweep)
    /// has already made sure no asset refers to it.
    ///
    /// # Errors
    ///
    /// An engine error when the blob exists but cannot be removed.
    async fn delete(&self, hash: &BlobHash) -> Result<bool, ArtifactError>;

    /// The locks that keep a blob from being deleted under a record being written (see
    /// [`BlobLocks`]); every handle on one store shares them.
    fn locks(&self) -> &BlobLocks;

    /// `length` bytes of a blob from `offset` (to the end when `None`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `RangeNotSatisfiable`, or an engine error.
    async fn open_range(
        &self,
        hash: &BlobHash,
        offset: u64,
        length: Option<u64>,
    ) -> Result<BlobSlice, ArtifactError> {
        self.open(hash).await?.range(offset, length).await
    }
}

impl dyn BlobStore + '_ {
    /// Stores any stream of bytes; see [`BlobStore::put_stream`].
    ///
    /// # Errors
    ///
    /// As [`BlobStore::put_stream`].
    pub async fn put<'a, S>(&self, stream: S) -> Result<BlobInfo, ArtifactError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'a,
    {
        self.put_stream(stream.boxed()).await
    }

    /// Keeps the blob `hash` from being deleted until the hold drops: take it after
    /// storing the blob (or finding it stored) and drop it once the record that names the
    /// blob has committed. `deletions_before` is [`BlobLocks::deletions`] read before the
    /// blob was stored: when no delete has finished since, the blob is surely there and is
    /// not looked up again.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::NotFound`] when the blob was deleted meanwhile: store it again;
    /// an engine error when the storage cannot say.
    pub async fn hold(
        &self,
        hash: &BlobHash,
        deletions_before: u64,
    ) -> Result<BlobHold, ArtifactError> {
        let hold = self.locks().using(hash).await;
        let deleted_since = self.locks().deletions() != deletions_before;
        if deleted_since && !self.exists(hash).await? {
            return Err(ArtifactError::NotFound { hash: hash.clone() });
        }
        Ok(hold)
    }
}

/// Opens the blob store `location` names: a local folder, or an S3 bucket and prefix.
///
/// # Errors
///
/// When the folder cannot be created, or the S3 settings are incomplete or invalid.
pub async fn open(location: &ArtifactsLocation) -> Result<Arc<dyn BlobStore>, ArtifactError> {
    Ok(match location {
        ArtifactsLocation::Local(root) => Arc::new(LocalBlobStore::create(root.clone()).await?),
        ArtifactsLocation::S3 {
            bucket,
            prefix,
            settings,
        } => {
            let store = S3BlobStore::create(bucket, prefix, settings)?;
            store.check().await?;
            Arc::new(store)
        }
    })
}
