//! The local-disk blob store: atomic writes under `<root>/<aa>/<bb>/<hex>`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::fs::{self, File};
use tokio::io::AsyncWriteExt;

use super::{ArtifactError, Blob, BlobHash, BlobSlice};

/// Where unfinished writes live; inside the root so the final rename never
/// crosses a filesystem.
const TEMP_DIR: &str = "tmp";

/// What `put` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: BlobHash,
    pub size: u64,
    /// False when identical bytes were already stored (a dedup hit).
    pub created_new: bool,
}

/// Blobs on local disk, addressed by their blake3 hash.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating if needed) a blob store rooted at `root` and removes
    /// temp files that a crashed write left behind. One process owns a root.
    ///
    /// # Errors
    ///
    /// Fails when the root or its temp folder cannot be created or listed.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let store = Self { root: root.into() };
        let temp_dir = store.temp_dir();
        fs::create_dir_all(&temp_dir)
            .await
            .map_err(ArtifactError::io("create", &temp_dir))?;

        let removed = remove_leftovers(&temp_dir).await?;
        if removed > 0 {
            tracing::info!(blobs.root = %store.root.display(), removed, "removed unfinished blob writes");
        }
        Ok(store)
    }

    /// The folder this store owns.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this hash lives (whether or not it exists yet).
    #[must_use]
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        self.root.join(hash.relative_path())
    }

    /// Stores a stream of bytes, hashing while writing so the blob is never
    /// held in memory. The blob becomes visible only once it is complete and
    /// durable. If the future is dropped midway, the temp file is removed.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::Source`] when the stream yields an error; `Io` when
    /// the disk refuses. Either way no blob is left behind.
    pub async fn put<S>(&self, stream: S) -> Result<BlobInfo, ArtifactError>
    where
        S: Stream<Item = io::Result<Bytes>>,
    {
        let mut temp = TempFile::create(&self.temp_dir()).await?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0_u64;
        let mut stream = pin!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ArtifactError::Source)?;
            hasher.update(&chunk);
            temp.write(&chunk).await?;
            size += chunk.len() as u64;
        }

        let hash = BlobHash::from_digest(&hasher.finalize());
        let path = self.path_of(&hash);
        if self.exists(&hash).await? {
            // Same hash, same bytes: the temp copy is dropped (and removed).
            return Ok(BlobInfo {
                hash,
                size,
                created_new: false,
            });
        }

        temp.sync().await?;
        self.install(temp, &path).await?;
        tracing::debug!(blob.hash = %hash, blob.size = size, "stored blob");
        Ok(BlobInfo {
            hash,
            size,
            created_new: true,
        })
    }

    /// Opens a blob for reading; see [`Blob`] for ranges and streaming.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::NotFound`] when no such blob is stored.
    pub async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError> {
        let path = self.path_of(hash);
        match File::open(&path).await {
            Ok(file) => Blob::new(hash.clone(), file).await,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(ArtifactError::NotFound { hash: hash.clone() })
            }
            Err(error) => Err(ArtifactError::io("open", &path)(error)),
        }
    }

    /// `length` bytes of a blob from `offset` (to the end when `None`).
    ///
    /// # Errors
    ///
    /// `NotFound`, `RangeNotSatisfiable`, or `Io`.
    pub async fn open_range(
        &self,
        hash: &BlobHash,
        offset: u64,
        length: Option<u64>,
    ) -> Result<BlobSlice, ArtifactError> {
        self.open(hash).await?.range(offset, length).await
    }

    /// Whether a blob with this hash is stored.
    ///
    /// # Errors
    ///
    /// `Io` when the file system cannot answer.
    pub async fn exists(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        let path = self.path_of(hash);
        fs::try_exists(&path)
            .await
            .map_err(ArtifactError::io("check", &path))
    }

    /// Removes a blob; returns false when it was not there. The caller (the
    /// store's sweep) has already made sure no asset refers to it.
    ///
    /// # Errors
    ///
    /// `Io` when the file exists but cannot be removed.
    pub async fn delete(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        let path = self.path_of(hash);
        match fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(ArtifactError::io("remove", &path)(error)),
        }
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP_DIR)
    }

    /// Renames the finished temp file into place and makes the new directory
    /// entries durable: a rename is only crash-safe once its folder is synced.
    async fn install(&self, temp: TempFile, path: &Path) -> Result<(), ArtifactError> {
        let fan_out = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(fan_out)
            .await
            .map_err(ArtifactError::io("create", fan_out))?;
        let temp_path = temp.disarm();
        fs::rename(&temp_path, path)
            .await
            .map_err(ArtifactError::io("rename", &temp_path))?;

        let mut folder = Some(fan_out);
        while let Some(dir) = folder {
            sync_dir(dir).await?;
            folder = dir.parent().filter(|_| dir != self.root);
        }
        Ok(())
    }
}

/// A temp file that removes itself unless it was installed.
#[derive(Debug)]
struct TempFile {
    path: Option<PathBuf>,
    file: File,
}

impl TempFile {
    async fn create(dir: &Path) -> Result<Self, ArtifactError> {
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = File::create_new(&path)
            .await
            .map_err(ArtifactError::io("create", &path))?;
        Ok(Self {
            path: Some(path),
            file,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        let result = self.file.write_all(chunk).await;
        result.map_err(|source| self.error("write", source))
    }

    async fn sync(&mut self) -> Result<(), ArtifactError> {
        let result = async { self.file.flush().await.and(self.file.sync_all().await) }.await;
        result.map_err(|source| self.error("sync", source))
    }

    fn error(&self, action: &'static str, source: io::Error) -> ArtifactError {
        let path = self.path.clone().unwrap_or_default();
        ArtifactError::Io {
            action,
            path,
            source,
        }
    }

    /// Hands the path over to the caller, who now owns the file's fate.
    fn disarm(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Runs on errors and on cancellation; a blocking unlink is brief.
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn sync_dir(dir: &Path) -> Result<(), ArtifactError> {
    let owned = dir.to_path_buf();
    let result = tokio::task::spawn_blocking(move || std::fs::File::open(&owned)?.sync_all())
        .await
        .map_err(io::Error::other)
        .and_then(|result| result);
    result.map_err(ArtifactError::io("sync", dir))
}

async fn remove_leftovers(temp_dir: &Path) -> Result<usize, ArtifactError> {
    let mut entries = fs::read_dir(temp_dir)
        .await
        .map_err(ArtifactError::io("list", temp_dir))?;
    let mut removed = 0;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(ArtifactError::io("list", temp_dir))?
    {
        let path = entry.path();
        fs::remove_file(&path)
            .await
            .map_err(ArtifactError::io("remove", &path))?;
        removed += 1;
    }
    Ok(removed)
}
