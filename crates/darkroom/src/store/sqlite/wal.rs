//! Flushing the database's write-ahead log to disk after a commit rather than inside it.
//!
//! A new job's commit must be on disk before its submitter hears `201`. Inside the commit
//! (`synchronous = FULL`), the flush also holds up everything after it: the writer lock,
//! and so the dispatcher's claim of that very job, waits for the disk (a third of a
//! millisecond a flush on the 2-core VMs of docs/benchmarks.md). Here the accepts commit
//! as a running job's steps do (`synchronous = NORMAL`: the commit survives a crash of
//! Darkroom, and is visible at once), then the log file is flushed on a blocking thread
//! while the dispatcher claims and posts the job; the submitter is answered once the
//! flush returns. A flush makes every transaction committed before it durable: SQLite
//! writes a commit's pages to the log with `pwrite` before the commit returns, and
//! `fdatasync` on any descriptor of the file writes out all of its pages.
//!
//! Should power fail between a commit and its flush, the job can be gone while its prompt
//! was already posted; its submitter was never told it was accepted, as before.
//!
//! The log stays the same file while this process has the database open: its writer's
//! own connection never closes, and SQLite deletes the log only when the last connection
//! does. The flush still checks that the file it holds is the one at the log's path, and
//! opens that one when it is not.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::StoreError;

/// The write-ahead log of one database file.
#[derive(Debug)]
pub(super) struct WalFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
    /// Set once a flush failed: the log is not flushed apart from commits again.
    failed: AtomicBool,
}

impl WalFile {
    /// The log of `database` (SQLite's `<database>-wal`), opened at its first flush.
    pub(super) fn of(database: &Path) -> Self {
        Self {
            path: super::beside(database, "-wal"),
            file: Mutex::new(None),
            failed: AtomicBool::new(false),
        }
    }

    /// Whether commits may leave their flush to [`flush`](Self::flush): until one failed.
    pub(super) fn usable(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// After a failed flush: commits flush inside themselves from now on.
    pub(super) fn give_up(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Writes the log out to disk: every transaction committed before this call survives
    /// a power cut once it returns.
    pub(super) async fn flush(self: &Arc<Self>) -> Result<(), StoreError> {
        let wal = Arc::clone(self);
        tokio::task::spawn_blocking(move || wal.flush_now())
            .await
            .map_err(|_| StoreError::WriterStopped)?
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        let failed = |source| StoreError::Flush {
            path: self.path.clone(),
            source,
        };
        let mut held = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let current = std::fs::metadata(&self.path).map_err(failed)?;
        let file = match held.take() {
            Some(file) if is_file(&file, &current).map_err(failed)? => file,
            _ => File::open(&self.path).map_err(failed)?,
        };
        held.insert(file).sync_data().map_err(failed)
    }
}

/// Whether `file` is the one whose metadata `current` is (not one since replaced).
fn is_file(file: &File, current: &std::fs::Metadata) -> std::io::Result<bool> {
    let ours = file.metadata()?;
    Ok(ours.ino() == current.ino() && ours.dev() == current.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_replaced_log_is_opened_again_and_a_missing_one_is_an_error_naming_it() {
        let folder = tempfile::tempdir().unwrap();
        let database = folder.path().join("darkroom.db");
        let wal = Arc::new(WalFile::of(&database));
        let log = folder.path().join("darkroom.db-wal");

        let missing = wal.flush().await.unwrap_err();
        assert!(matches!(&missing, StoreError::Flush { path, .. } if path == &log));

        std::fs::write(&log, b"first").unwrap();
        wal.flush().await.unwrap();
        let first = std::fs::metadata(&log).unwrap().ino();

        // Moved aside rather than deleted, so the new file cannot reuse its inode.
        std::fs::rename(&log, folder.path().join("moved")).unwrap();
        std::fs::write(&log, b"second").unwrap();
        wal.flush().await.unwrap();
        let held = wal
            .file
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .metadata()
            .unwrap()
            .ino();
        assert_eq!(held, std::fs::metadata(&log).unwrap().ino());
        assert_ne!(held, first);
    }
}
