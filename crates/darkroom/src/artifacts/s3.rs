//! The S3 blob store: blobs as objects `<prefix>/blobs/<aa>/<rest of hex>` in a bucket that
//! several Darkroom replicas share, through the `object_store` crate.
//!
//! A blob's name is its hash, known only once every byte went by, so a write streams into
//! a temporary object `<prefix>/tmp/<uuid>` (multipart past [`PART_SIZE`], so memory holds
//! a few parts, never the blob), then is copied server-side to its key and the temporary
//! object removed. A reader therefore never sees a partial blob under a blob key. A write
//! that fails or is canceled aborts its upload and removes its temporary object; one that a
//! crash interrupted is swept at the next start once it is a day old (younger ones may
//! belong to another replica's write in progress). This module must not list or read
//! anything outside its prefix.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::read::bytes_stream;
use super::{
    ArtifactError, Blob, BlobHash, BlobInfo, BlobLocks, BlobStore, ByteStream, RangeReader,
    S3Settings,
};

/// Bytes buffered before a write turns into a multipart upload, and the size of each part.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once per write: memory per write is about this many parts.
const PARTS_IN_FLIGHT: usize = 2;
/// Temporary objects older than this are left over from a crash, not a write in progress.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Blobs in an S3-compatible bucket, addressed by their blake3 hash.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    /// For logs: `s3://bucket/prefix`.
    url: String,
    locks: Arc<BlobLocks>,
}

impl S3BlobStore {
    /// Connects to `bucket` with `settings` and keeps blobs under `prefix` (may be empty).
    /// Nothing is sent until the first operation; [`S3BlobStore::check`] probes.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::InvalidLocation`] when the prefix or the settings are invalid.
    pub fn create(
        bucket: &str,
        prefix: &str,
        settings: &S3Settings,
    ) -> Result<Self, ArtifactError> {
        let url = format!("s3://{bucket}/{prefix}");
        let invalid = |reason: String| ArtifactError::InvalidLocation {
            url: url.clone(),
            reason,
        };
        let prefix = Path::parse(prefix).map_err(|error| invalid(error.to_string()))?;
        let objects = builder(bucket, settings)
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            objects: Arc::new(objects),
            prefix,
            url,
            locks: Arc::default(),
        })
    }

    /// Lists the prefix once, so a missing bucket, a wrong endpoint or refused credentials
    /// are named at start-up; then removes temporary objects a crash left behind.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::Object`] when the bucket cannot be listed.
    pub async fn check(&self) -> Result<(), ArtifactError> {
        let temp_dir = self.prefix.clone().join("tmp");
        self.objects
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(object_error("list", &self.prefix))?;

        let cutoff = abandoned_before();
        let abandoned: Vec<Path> = self
            .objects
            .list(Some(&temp_dir))
            .try_filter(|meta| std::future::ready(meta.last_modified.timestamp() < cutoff))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(object_error("list", &temp_dir))?;
        for location in &abandoned {
            self.objects
                .delete(location)
                .await
                .map_err(object_error("delete", location))?;
        }
        if !abandoned.is_empty() {
            tracing::info!(blobs.url = %self.url, removed = abandoned.len(), "removed unfinished blob writes");
        }
        Ok(())
    }

    /// The object key of a blob: `<prefix>/blobs/<aa>/<rest of hex>`.
    #[must_use]
    pub fn key_of(&self, hash: &BlobHash) -> Path {
        let hex = hash.hex();
        self.prefix
            .clone()
            .join("blobs")
            .join(&hex[..2])
            .join(&hex[2..])
    }

    async fn stat(&self, hash: &BlobHash) -> Result<Option<u64>, ArtifactError> {
        let key = self.key_of(hash);
        match self.objects.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(object_error("inspect", &key)(error)),
        }
    }
}

fn builder(bucket: &str, settings: &S3Settings) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_allow_http(settings.allow_http);
    if !settings.region.is_empty() {
        builder = builder.with_region(&settings.region);
    }
    if !settings.endpoint.is_empty() {
        builder = builder.with_endpoint(&settings.endpoint);
    }
    if !settings.access_key_id.is_empty() {
        builder = builder.with_access_key_id(&settings.access_key_id);
    }
    if !settings.secret_access_key.is_empty() {
        builder = builder.with_secret_access_key(&settings.secret_access_key);
    }
    builder
}

/// Seconds since the epoch before which a temporary object counts as abandoned.
fn abandoned_before() -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    now - i64::try_from(ABANDONED_AFTER.as_secs()).unwrap_or(i64::MAX)
}

fn object_error(
    action: &'static str,
    key: &Path,
) -> impl FnOnce(object_store::Error) -> ArtifactError {
    let key = key.to_string();
    move |source| ArtifactError::Object {
        action,
        key,
        source,
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn locks(&self) -> &BlobLocks {
        &self.locks
    }

    async fn put_stream(&self, mut stream: ByteStream<'_>) -> Result<BlobInfo, ArtifactError> {
        let temp_key = self
            .prefix
            .clone()
            .join("tmp")
            .join(uuid::Uuid::new_v4().to_string());
        let mut upload = PendingUpload::new(Arc::clone(&self.objects), temp_key.clone());
        let mut hasher = blake3::Hasher::new();
        let mut size = 0_u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    upload.abort().await;
                    return Err(ArtifactError::Source(error));
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Err(error) = upload.write(chunk).await {
                upload.abort().await;
                return Err(error);
            }
        }
        upload.finish().await?;

        let hash = BlobHash::from_digest(&hasher.finalize());
        let created_new = match self.stat(&hash).await {
            Ok(Some(_)) => false,
            Ok(None) => {
                let key = self.key_of(&hash);
                let copied = self.objects.copy(&temp_key, &key).await;
                if let Err(error) = copied {
                    upload.remove_temp().await;
                    return Err(object_error("copy", &key)(error));
                }
                true
            }
            Err(error) => {
                upload.remove_temp().await;
                return Err(error);
            }
        };
        upload.remove_temp().await;
        tracing::debug!(blob.hash = %hash, blob.size = size, created_new, "stored blob");
        Ok(BlobInfo {
            hash,
            size,
            created_new,
        })
    }

    async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError> {
        let size = self
            .stat(hash)
            .await?
            .ok_or_else(|| ArtifactError::NotFound { hash: hash.clone() })?;
        let reader = ObjectReader {
            objects: Arc::clone(&self.objects),
            key: self.key_of(hash),
        };
        Ok(Blob::new(hash.clone(), size, Box::new(reader)))
    }

    async fn exists(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        Ok(self.stat(hash).await?.is_some())
    }

    // S3 deletes answer the same whether or not the key existed, hence the look first.
    async fn delete(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        if !self.exists(hash).await? {
            return Ok(false);
        }
        let key = self.key_of(hash);
        self.objects
            .delete(&key)
            .await
            .map_err(object_error("delete", &key))?;
        Ok(true)
    }
}

/// A write to a temporary object that cleans up after itself: dropped before
/// [`PendingUpload::remove_temp`] (an error or a canceled future), it aborts the multipart
/// upload and removes the temporary object on a spawned task.
#[derive(Debug)]
struct PendingUpload {
    objects: Arc<dyn ObjectStore>,
    key: Path,
    writer: Option<BufWriter>,
    /// Whether anything may exist under `key` that nobody removed yet.
    armed: bool,
}

impl PendingUpload {
    fn new(objects: Arc<dyn ObjectStore>, key: Path) -> Self {
        let writer = BufWriter::with_capacity(Arc::clone(&objects), key.clone(), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        Self {
            objects,
            key,
            writer: Some(writer),
            armed: true,
        }
    }

    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), ArtifactError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        writer
            .put(chunk)
            .await
            .map_err(object_error("upload", &self.key))
    }

    /// Completes the upload: the temporary object now exists whole.
    async fn finish(&mut self) -> Result<(), ArtifactError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let finished = writer.shutdown().await;
        finished.map_err(|source| ArtifactError::Object {
            action: "upload",
            key: self.key.to_string(),
            source: object_store::Error::Generic {
                store: "S3",
                source: Box::new(source),
            },
        })
    }

    /// Abandons the upload; failures are logged, since the caller already has an error.
    async fn abort(&mut self) {
        if let Some(mut writer) = self.writer.take()
            && let Err(error) = writer.abort().await
        {
            tracing::warn!(blob.key = %self.key, error = %error, "cannot abort blob upload");
        }
        self.remove_temp().await;
    }

    async fn remove_temp(&mut self) {
        self.armed = false;
        match self.objects.delete(&self.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(blob.key = %self.key, error = %error, "cannot remove temporary blob object");
            }
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut orphan = Self {
            objects: Arc::clone(&self.objects),
            key: self.key.clone(),
            writer: self.writer.take(),
            armed: false,
        };
        runtime.spawn(async move { orphan.abort().await });
    }
}

/// One blob object; each read is a ranged GET.
#[derive(Debug)]
struct ObjectReader {
    objects: Arc<dyn ObjectStore>,
    key: Path,
}

#[async_trait]
impl RangeReader for ObjectReader {
    async fn read(
        self: Box<Self>,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream<'static>, ArtifactError> {
        let options =
            GetOptions::default().with_range(Some(GetRange::Bounded(offset..offset + length)));
        let result = self
            .objects
            .get_opts(&self.key, options)
            .await
            .map_err(object_error("read", &self.key))?;
        Ok(bytes_stream(result.into_stream()))
    }
}
