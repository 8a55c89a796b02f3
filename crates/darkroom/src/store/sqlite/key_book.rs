//! The live API keys, kept in memory and read again only when they may have changed.
//!
//! Every request asks about keys: a keyed one looks its key up, one without a key asks
//! whether any key exists (an open server turns closed when the first key is created).
//! That was a query per request, a trip to a connection's thread each. Keys change
//! rarely, and only through `Store::create_api_key` and `Store::revoke_api_key`, which
//! `darkroom keys` calls from its own process. So this engine keeps every live key in
//! memory, and each of those writes, once committed, writes a new random mark into a file
//! beside the database (`<database>.keys`). A request reads the mark and reads the keys
//! again when it changed: a request that starts after `darkroom keys` returned sees what
//! it did. The book keeps the mark file open (creating it when missing) and reads it in
//! place, one `pread` from the page cache per request: opening it by name each time cost
//! a path walk and two more system calls on every request, a tenth of a status read's
//! time on the server.
//!
//! Should a `darkroom keys` process die between its commit and its mark, or the mark file
//! be replaced by another (a new file is not the one held open), the keys are also read
//! again once they are [`MAX_AGE`] old.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::ApiKey;
use crate::store::StoreError;

/// How long keys read from the database are trusted without a new mark.
pub(super) const MAX_AGE: Duration = Duration::from_secs(5);
/// A mark is a UUID's text (36 bytes); a longer file is read this far.
const MARK_BYTES: usize = 64;

/// The live keys as of one read, with the mark that was there before it.
#[derive(Debug)]
pub(super) struct Known {
    mark: Option<Vec<u8>>,
    read_at: Instant,
    by_hash: HashMap<String, ApiKey>,
    by_id: HashMap<String, ApiKey>,
}

impl Known {
    pub(super) fn count(&self) -> u64 {
        self.by_hash.len() as u64
    }

    pub(super) fn by_hash(&self, hash: &str) -> Option<ApiKey> {
        self.by_hash.get(hash).cloned()
    }

    pub(super) fn by_id(&self, id: &str) -> Option<ApiKey> {
        self.by_id.get(id).cloned()
    }
}

/// The keys in memory and the file whose mark says they changed.
#[derive(Debug, Default)]
pub(super) struct KeyBook {
    /// `None` for an in-memory database, which no other process can reach.
    marker: Option<PathBuf>,
    /// The mark file, held open for reading; `None` in memory or when it cannot be
    /// opened (then only [`MAX_AGE`] makes the keys be read again).
    mark_file: Option<File>,
    known: Mutex<Option<Arc<Known>>>,
    /// Held while the keys are read again, so a burst of requests reads them once.
    reading: tokio::sync::Mutex<()>,
}

impl KeyBook {
    /// The book of a database file at `database` (`None` in memory).
    pub(super) fn new(database: Option<PathBuf>) -> Self {
        let marker = database.map(|file| super::beside(&file, ".keys"));
        let mark_file = marker.as_ref().and_then(|path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .inspect_err(|error| {
                    tracing::warn!(
                        path = %path.display(),
                        %error,
                        "cannot open the keys' mark; a change by `darkroom keys` reaches a running server within {} s",
                        MAX_AGE.as_secs()
                    );
                })
                .ok()
        });
        Self {
            marker,
            mark_file,
            ..Self::default()
        }
    }

    /// The live keys, read with `read` when they may have changed since the last read.
    ///
    /// # Errors
    ///
    /// What `read` failed with.
    pub(super) async fn current<F>(
        &self,
        read: impl FnOnce() -> F,
    ) -> Result<Arc<Known>, StoreError>
    where
        F: Future<Output = Result<Vec<ApiKey>, StoreError>>,
    {
        if let Some(known) = self.still_current(&self.mark()) {
            return Ok(known);
        }
        let _turn = self.reading.lock().await;
        // Read after the turn: whoever held it may have read the keys this request needs.
        let mark = self.mark();
        if let Some(known) = self.still_current(&mark) {
            return Ok(known);
        }
        let keys = read().await?;
        let known = Arc::new(Known {
            mark,
            read_at: Instant::now(),
            by_hash: keys
                .iter()
                .map(|key| (key.hash.clone(), key.clone()))
                .collect(),
            by_id: keys.into_iter().map(|key| (key.id.clone(), key)).collect(),
        });
        *self.lock() = Some(Arc::clone(&known));
        Ok(known)
    }

    /// After this process committed a change of keys: forgets them, and tells the server
    /// (when it is another process) with a new mark.
    pub(super) fn changed(&self) {
        *self.lock() = None;
        let Some(marker) = &self.marker else { return };
        let mark = uuid::Uuid::new_v4().to_string();
        if let Err(error) = std::fs::write(marker, mark) {
            tracing::warn!(
                path = %marker.display(),
                %error,
                "cannot mark the keys changed; a running server sees the change within {} s",
                MAX_AGE.as_secs()
            );
        }
    }

    fn still_current(&self, mark: &Option<Vec<u8>>) -> Option<Arc<Known>> {
        self.lock()
            .as_ref()
            .filter(|known| &known.mark == mark && known.read_at.elapsed() < MAX_AGE)
            .cloned()
    }

    /// The mark now; `None` when there is no mark file to read. A plain blocking read:
    /// 36 bytes in the page cache cost less than a hop to a blocking thread would.
    fn mark(&self) -> Option<Vec<u8>> {
        let file = self.mark_file.as_ref()?;
        let mut mark = vec![0; MARK_BYTES];
        let read = read_start(file, &mut mark).ok()?;
        mark.truncate(read);
        Some(mark)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Known>>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the start of `file` at offset 0, wherever its cursor is: requests read it at once.
#[cfg(unix)]
fn read_start(file: &File, buffer: &mut [u8]) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buffer, 0)
}

#[cfg(windows)]
fn read_start(file: &File, buffer: &mut [u8]) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buffer, 0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.to_owned(),
            name: id.to_owned(),
            role: crate::auth::Role::User,
            hash: format!("hash-{id}"),
            shown: String::new(),
            limits: crate::auth::KeyLimits::default(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn keys_are_read_again_when_another_process_marks_a_change() {
        let folder = tempfile::tempdir().unwrap();
        let database = folder.path().join("darkroom.db");
        let server = KeyBook::new(Some(database.clone()));
        let cli = KeyBook::new(Some(database));
        let reads = AtomicU32::new(0);
        let stored = Mutex::new(vec![key("a")]);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(stored.lock().unwrap().clone())
        };

        assert_eq!(server.current(read).await.unwrap().count(), 1);
        assert_eq!(server.current(read).await.unwrap().count(), 1);
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "unchanged keys are not read again"
        );

        stored.lock().unwrap().push(key("b"));
        cli.changed();
        let known = server.current(read).await.unwrap();
        assert_eq!(known.count(), 2);
        assert!(known.by_hash("hash-b").is_some());
        assert!(known.by_id("b").is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
