//! The content-addressed blob store on a temp folder: streaming writes that
//! never hold a blob in memory, dedup, byte ranges, cleanup after failures,
//! and hashes from hostile clients.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use darkroom::artifacts::{ArtifactError, BlobHash, LocalBlobStore};
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use tokio::io::AsyncReadExt;

const CHUNK: usize = 64 * 1024;

/// Counts the chunks alive at once, so a test can prove the writer lets each
/// go before asking for the next.
#[derive(Default)]
struct LiveChunks {
    now: AtomicUsize,
    peak: AtomicUsize,
}

struct TrackedChunk {
    bytes: Vec<u8>,
    live: Arc<LiveChunks>,
}

impl AsRef<[u8]> for TrackedChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for TrackedChunk {
    fn drop(&mut self) {
        self.live.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Deterministic, incompressible-looking bytes for chunk `index`.
fn pattern(index: usize) -> Vec<u8> {
    let mut state = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// `chunks` chunks made only when asked for.
fn generated(chunks: usize, live: Arc<LiveChunks>) -> impl Stream<Item = io::Result<Bytes>> {
    stream::iter(0..chunks).map(move |index| {
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.peak.fetch_max(now, Ordering::SeqCst);
        let chunk = TrackedChunk {
            bytes: pattern(index),
            live: live.clone(),
        };
        Ok(Bytes::from_owner(chunk))
    })
}

fn from_slices(parts: &[&'static [u8]]) -> impl Stream<Item = io::Result<Bytes>> {
    stream::iter(
        parts
            .iter()
            .map(|part| Ok(Bytes::from_static(part)))
            .collect::<Vec<_>>(),
    )
}

async fn read_all(
    store: &LocalBlobStore,
    hash: &BlobHash,
    offset: u64,
    length: Option<u64>,
) -> Vec<u8> {
    let slice = store.open_range(hash, offset, length).await.unwrap();
    let mut bytes = Vec::new();
    slice.into_reader().read_to_end(&mut bytes).await.unwrap();
    bytes
}

fn files_in(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .map(|entries| entries.count())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_large_blob_streams_through_without_being_buffered() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    let chunks = 50 * 1024 * 1024 / CHUNK;
    let live = Arc::new(LiveChunks::default());

    let info = store.put(generated(chunks, live.clone())).await.unwrap();

    let mut expected = blake3::Hasher::new();
    for index in 0..chunks {
        expected.update(&pattern(index));
    }
    assert_eq!(info.hash, BlobHash::from_digest(&expected.finalize()));
    assert_eq!(info.size, 50 * 1024 * 1024);
    assert!(info.created_new);
    assert_eq!(
        live.peak.load(Ordering::SeqCst),
        1,
        "one chunk in flight at a time"
    );
    assert_eq!(live.now.load(Ordering::SeqCst), 0);

    let blob = store.open(&info.hash).await.unwrap();
    assert_eq!(blob.size(), info.size);
    let mut rehash = blake3::Hasher::new();
    let mut chunks_read = blob.into_stream();
    while let Some(chunk) = chunks_read.try_next().await.unwrap() {
        rehash.update(&chunk);
    }
    assert_eq!(BlobHash::from_digest(&rehash.finalize()), info.hash);
    assert_eq!(
        files_in(&folder.path().join("tmp")),
        0,
        "no temp file left behind"
    );
}

#[tokio::test]
async fn identical_bytes_are_stored_once_under_their_hash() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();

    let first = store
        .put(from_slices(&[b"hello ", b"world"]))
        .await
        .unwrap();
    let second = store
        .put(from_slices(&[b"hello", b" ", b"world"]))
        .await
        .unwrap();
    assert_eq!(first.hash, second.hash);
    assert!(first.created_new && !second.created_new);
    assert_eq!(
        first.hash,
        BlobHash::from_digest(&blake3::hash(b"hello world"))
    );

    let hex = first.hash.hex();
    let expected_path = folder.path().join(&hex[..2]).join(&hex[2..4]).join(hex);
    assert_eq!(store.path_of(&first.hash), expected_path);
    assert_eq!(std::fs::read(&expected_path).unwrap(), b"hello world");
    assert_eq!(files_in(&folder.path().join("tmp")), 0);

    assert!(store.exists(&first.hash).await.unwrap());
    assert!(store.delete(&first.hash).await.unwrap());
    assert!(!store.delete(&first.hash).await.unwrap());
    assert!(!store.exists(&first.hash).await.unwrap());
    assert!(matches!(
        store.open(&first.hash).await,
        Err(ArtifactError::NotFound { .. })
    ));
}

#[tokio::test]
async fn byte_ranges_read_only_what_was_asked() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    let info = store.put(from_slices(&[b"0123456789"])).await.unwrap();

    assert_eq!(read_all(&store, &info.hash, 0, None).await, b"0123456789");
    assert_eq!(read_all(&store, &info.hash, 2, Some(3)).await, b"234");
    assert_eq!(read_all(&store, &info.hash, 7, None).await, b"789");
    assert_eq!(
        read_all(&store, &info.hash, 8, Some(100)).await,
        b"89",
        "cut at the end"
    );

    let slice = store.open_range(&info.hash, 4, Some(4)).await.unwrap();
    assert_eq!((slice.offset, slice.length, slice.total_size), (4, 4, 10));
    let streamed: Vec<Bytes> = slice.into_stream().try_collect().await.unwrap();
    assert_eq!(streamed.concat(), b"4567");

    for offset in [10, 11, u64::MAX] {
        let past = store.open_range(&info.hash, offset, Some(1)).await;
        assert!(matches!(
            past,
            Err(ArtifactError::RangeNotSatisfiable { size: 10, .. })
        ));
    }

    let empty = store.put(from_slices(&[])).await.unwrap();
    assert_eq!(empty.size, 0);
    assert!(read_all(&store, &empty.hash, 0, None).await.is_empty());
}

#[tokio::test]
async fn a_failing_source_leaves_nothing_behind() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    let source = stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "upstream went away",
        )),
    ]);

    assert!(matches!(
        store.put(source).await,
        Err(ArtifactError::Source(_))
    ));
    assert_eq!(files_in(&folder.path().join("tmp")), 0);
    let partial = BlobHash::from_digest(&blake3::hash(b"partial"));
    assert!(!store.exists(&partial).await.unwrap());
    assert_eq!(files_in(folder.path()), 1, "only the temp folder exists");
}

#[tokio::test]
async fn a_canceled_write_removes_its_temp_file() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    let (first_written, written) = tokio::sync::oneshot::channel::<()>();

    // Asking for the second chunk means the first is on disk; then the
    // source stalls until the write is canceled.
    let mut signal = Some(first_written);
    let source = stream::iter(0..2)
        .then(move |index| {
            let signal = if index == 1 { signal.take() } else { None };
            async move {
                if let Some(sender) = signal {
                    let _ = sender.send(());
                    std::future::pending::<()>().await;
                }
                Ok(Bytes::from_static(b"first chunk"))
            }
        })
        .boxed();
    let writer = tokio::spawn({
        let store = store.clone();
        async move { store.put(source).await }
    });

    written.await.unwrap();
    assert_eq!(
        files_in(&folder.path().join("tmp")),
        1,
        "the write is in progress"
    );
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());
    assert_eq!(files_in(&folder.path().join("tmp")), 0);
}

#[tokio::test]
async fn reopening_clears_writes_a_crash_left_unfinished() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("tmp")).unwrap();
    std::fs::write(folder.path().join("tmp/0000.part"), b"half a blob").unwrap();

    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    assert_eq!(store.root(), folder.path());
    assert_eq!(files_in(&folder.path().join("tmp")), 0);
}

#[test]
fn hashes_from_clients_are_validated_strictly() {
    let hex = "9f8a1c0d2b3e4f568a7b1c2d3e4f5a6b9f8a1c0d2b3e4f568a7b1c2d3e4f5a6b";
    let good = format!("blake3:{hex}");
    let parsed: BlobHash = good.parse().unwrap();
    assert_eq!((parsed.as_str(), parsed.hex()), (good.as_str(), hex));
    assert_eq!(parsed.relative_path(), Path::new("9f/8a").join(hex));

    let hostile = [
        String::new(),
        hex.to_owned(),
        format!("BLAKE3:{hex}"),
        format!("blake3:{}", hex.to_uppercase()),
        format!("sha256:{hex}"),
        format!("blake3:{hex}0"),
        format!("blake3:{}", &hex[1..]),
        format!(" blake3:{hex}"),
        format!("blake3:{hex}\n"),
        format!("blake3:../../{}", &hex[6..]),
        format!("blake3:{}/../{}", &hex[..30], &hex[..30]),
        format!("blake3:/etc/passwd{}", &hex[11..]),
        format!("blake3:{}\0{}", &hex[..32], &hex[33..]),
        format!("blake3:{}..{}", &hex[..31], &hex[33..]),
        format!("blake3:{}\\x{}", &hex[..31], &hex[33..]),
        // Fullwidth and Arabic-Indic digits, and a Cyrillic "а" for "a".
        format!("blake3:{}１{}", &hex[..31], &hex[32..]),
        format!("blake3:{}٣{}", &hex[..31], &hex[32..]),
        format!("blake3:{}а{}", &hex[..31], &hex[32..]),
        format!("blake3:{}g{}", &hex[..31], &hex[32..]),
        "blake3:".to_owned(),
        "/absolute/path".to_owned(),
        "..".to_owned(),
    ];
    for value in hostile {
        assert!(
            matches!(
                value.parse::<BlobHash>(),
                Err(ArtifactError::InvalidHash { .. })
            ),
            "{value:?} must be refused"
        );
        let json = serde_json::to_string(&value).unwrap();
        assert!(
            serde_json::from_str::<BlobHash>(&json).is_err(),
            "{value:?} via serde"
        );
    }
}

#[tokio::test]
async fn every_valid_hash_maps_inside_the_root() {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    for fill in ['0', '9', 'a', 'f'] {
        let hash: BlobHash = format!("blake3:{}", fill.to_string().repeat(64))
            .parse()
            .unwrap();
        let path = store.path_of(&hash);
        assert!(path.starts_with(folder.path()));
        let inside = path.strip_prefix(folder.path()).unwrap();
        assert_eq!(inside.components().count(), 3);
        assert!(
            inside
                .components()
                .all(|part| matches!(part, std::path::Component::Normal(_)))
        );
    }
}
