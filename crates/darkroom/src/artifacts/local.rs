//! The local-disk blob store: atomic writes under `<root>/<aa>/<bb>/<hex>`.
//!
//! One process owns a root; replicas that share outputs use the S3 engine instead.

use std::io;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::fs::{self, File};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{
    ArtifactError, Blob, BlobHash, BlobInfo, BlobLocks, BlobStore, ByteStream, RangeReader,
};

/// Where unfinished writes live; inside the root so the final rename never
/// crosses a filesystem.
const TEMP_DIR: &str = "tmp";
/// Blobs up to this size are gathered in memory and written in one go.
const SMALL_BLOB: usize = 4 * 1024 * 1024;

/// Blobs on local disk, addressed by their blake3 hash.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    locks: Arc<BlobLocks>,
}

impl LocalBlobStore {
    /// Opens (creating if needed) a blob store rooted at `root` and removes
    /// temp files that a crashed write left behind. One process owns a root.
    ///
    /// # Errors
    ///
    /// Fails when the root or its temp folder cannot be created or listed.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let store = Self {
            root: root.into(),
            locks: Arc::default(),
        };
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

    fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP_DIR)
    }

    /// Stores a blob that is all in memory, in one blocking task.
    async fn put_small(&self, bytes: Vec<u8>, hash: BlobHash) -> Result<BlobInfo, ArtifactError> {
        let size = bytes.len() as u64;
        let (root, temp_dir, target) = (self.root.clone(), self.temp_dir(), self.path_of(&hash));
        let created_new = blocking(&self.root, move || {
            if target.exists() {
                // Same hash, same bytes.
                return Ok(false);
            }
            let temp_path = temp_dir.join(format!("{}.part", uuid::Uuid::new_v4()));
            let file = std::fs::File::create_new(&temp_path)
                .map_err(ArtifactError::io("create", &temp_path))?;
            if let Err(error) = io::Write::write_all(&mut &file, &bytes) {
                let _ = std::fs::remove_file(&temp_path);
                return Err(ArtifactError::io("write", &temp_path)(error));
            }
            sync_and_install(&root, &temp_path, &file, &target).map(|()| true)
        })
        .await?;
        Ok(stored(hash, size, created_new))
    }
}

/// What a finished write reports (and logs, when the blob is new).
fn stored(hash: BlobHash, size: u64, created_new: bool) -> BlobInfo {
    if created_new {
        tracing::debug!(blob.hash = %hash, blob.size = size, "stored blob");
    }
    BlobInfo {
        hash,
        size,
        created_new,
    }
}

/// Runs the end of a write on the blocking pool: one trip for all its file calls.
async fn blocking<T: Send + 'static>(
    root: &Path,
    work: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ArtifactError::io("write", root)(io::Error::other(error)))?
}

/// Makes the temp file's bytes durable, then installs it; the temp file goes on failure.
fn sync_and_install(
    root: &Path,
    temp_path: &Path,
    file: &std::fs::File,
    target: &Path,
) -> Result<(), ArtifactError> {
    if let Err(error) = file.sync_all() {
        let _ = std::fs::remove_file(temp_path);
        return Err(ArtifactError::io("sync", temp_path)(error));
    }
    install_blocking(root, temp_path, target)
}

/// Renames the finished temp file into place and makes the new directory entries
/// durable: a rename is only crash-safe once its folder is synced, and a folder made now
/// only once its parent is. Folders that already existed are not synced again (each sync
/// is a journal commit).
fn install_blocking(root: &Path, temp_path: &Path, target: &Path) -> Result<(), ArtifactError> {
    let fan_out = target.parent().unwrap_or(root);
    let mut made = Vec::new();
    let mut missing = Some(fan_out);
    while let Some(dir) = missing.filter(|dir| *dir != root && !dir.exists()) {
        made.push(dir);
        missing = dir.parent();
    }
    std::fs::create_dir_all(fan_out).map_err(ArtifactError::io("create", fan_out))?;
    if let Err(error) = std::fs::rename(temp_path, target) {
        let _ = std::fs::remove_file(temp_path);
        return Err(ArtifactError::io("rename", temp_path)(error));
    }
    let sync = |dir: &Path| {
        std::fs::File::open(dir)
            .and_then(|folder| folder.sync_all())
            .map_err(ArtifactError::io("sync", dir))
    };
    sync(fan_out)?;
    for dir in made {
        sync(dir.parent().unwrap_or(root))?;
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn locks(&self) -> &BlobLocks {
        &self.locks
    }

    // Hashes while writing to a temp file; the blob appears by rename once complete and
    // durable. If the future is dropped midway, the temp file is removed.
    async fn put_stream(&self, mut stream: ByteStream<'_>) -> Result<BlobInfo, ArtifactError> {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0_u64;
        // A small blob (most images) is gathered in memory and written, synced and
        // installed by one blocking task; each `tokio::fs` call would be a trip of its own.
        let mut head = Vec::new();
        let mut rest = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ArtifactError::Source)?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            head.extend_from_slice(&chunk);
            if head.len() > SMALL_BLOB {
                rest = Some(stream);
                break;
            }
        }
        let Some(mut stream) = rest else {
            let hash = BlobHash::from_digest(&hasher.finalize());
            return self.put_small(head, hash).await;
        };

        let mut temp = TempFile::create(&self.temp_dir()).await?;
        temp.write(&head).await?;
        drop(head);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ArtifactError::Source)?;
            hasher.update(&chunk);
            temp.write(&chunk).await?;
            size += chunk.len() as u64;
        }

        let hash = BlobHash::from_digest(&hasher.finalize());
        temp.flush().await?;
        let temp_path = temp.disarm();
        let (root, target) = (self.root.clone(), self.path_of(&hash));
        let created_new = blocking(&self.root, move || {
            if target.exists() {
                // Same hash, same bytes: the temp copy goes.
                let _ = std::fs::remove_file(&temp_path);
                return Ok(false);
            }
            // A sync through another handle of the file makes the same bytes durable.
            let file = std::fs::File::open(&temp_path).map_err(|error| {
                let _ = std::fs::remove_file(&temp_path);
                ArtifactError::io("open", &temp_path)(error)
            })?;
            sync_and_install(&root, &temp_path, &file, &target).map(|()| true)
        })
        .await?;
        Ok(stored(hash, size, created_new))
    }

    async fn open(&self, hash: &BlobHash) -> Result<Blob, ArtifactError> {
        let path = self.path_of(hash);
        match File::open(&path).await {
            Ok(file) => {
                let metadata = file.metadata().await;
                let size = metadata.map_err(ArtifactError::io("inspect", &path))?.len();
                let reader = Box::new(LocalReader { file, path });
                Ok(Blob::new(hash.clone(), size, reader))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(ArtifactError::NotFound { hash: hash.clone() })
            }
            Err(error) => Err(ArtifactError::io("open", &path)(error)),
        }
    }

    async fn exists(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        let path = self.path_of(hash);
        fs::try_exists(&path)
            .await
            .map_err(ArtifactError::io("check", &path))
    }

    async fn delete(&self, hash: &BlobHash) -> Result<bool, ArtifactError> {
        let path = self.path_of(hash);
        match fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(ArtifactError::io("remove", &path)(error)),
        }
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

    /// Hands every buffered write to the operating system.
    async fn flush(&mut self) -> Result<(), ArtifactError> {
        let result = self.file.flush().await;
        result.map_err(|source| self.error("write", source))
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

/// An open blob file; reads seek, so a range costs only its own bytes.
#[derive(Debug)]
struct LocalReader {
    file: File,
    path: PathBuf,
}

#[async_trait]
impl RangeReader for LocalReader {
    async fn read(
        mut self: Box<Self>,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream<'static>, ArtifactError> {
        self.file
            .seek(SeekFrom::Start(offset))
            .await
            .map_err(ArtifactError::io("seek", &self.path))?;
        Ok(ReaderStream::new(self.file.take(length)).boxed())
    }
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
