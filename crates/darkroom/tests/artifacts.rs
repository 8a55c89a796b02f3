//! The content-addressed blob store, one suite run against every engine: local disk on a
//! temp folder (`local_disk::*`), SQLite's database in front of such a folder, as a server
//! with SQLite and local artifacts runs (`in_database::*`), and S3 on moto's server
//! (`s3::*`, a bucket per test; `DARKROOM_SKIP_S3=1` skips those loudly). Streaming writes that never hold a blob in
//! memory, dedup, byte ranges, cleanup after failed and canceled writes, replicas sharing
//! a bucket, and hashes from hostile clients.

#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    reason = "the large-blob test prints what it measured; helpers outside #[test] fns panic \
              too: that is the failure message we want"
)]

mod support;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use darkroom::artifacts::{
    ArtifactError, ArtifactsLocation, BlobHash, BlobInfo, BlobStore, LocalBlobStore, S3BlobStore,
    S3Settings,
};
use darkroom::store::{SqliteStore, Store};
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use support::s3::MotoServer;
use tokio::io::AsyncReadExt;

const CHUNK: usize = 64 * 1024;
/// Blobs up to this size go into SQLite's database (the tier's limit is 256 KiB); the
/// tests use sizes well either side of it.
const SMALL_ENOUGH: u64 = 256 * 1024;

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
    store: &dyn BlobStore,
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

/// A store under test and a view of what its engine holds besides blobs.
struct Subject {
    store: Arc<dyn BlobStore>,
    engine: Engine,
}

enum Engine {
    Local(tempfile::TempDir),
    /// `darkroom.db` in the folder, files under `blobs/` in it.
    Database(tempfile::TempDir),
    S3 {
        moto: &'static MotoServer,
        bucket: String,
        prefix: String,
    },
}

async fn local_disk() -> Option<Subject> {
    let folder = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::create(folder.path()).await.unwrap();
    Some(Subject {
        store: Arc::new(store),
        engine: Engine::Local(folder),
    })
}

async fn in_database() -> Option<Subject> {
    let folder = tempfile::tempdir().unwrap();
    let store = database_tier(folder.path()).await;
    Some(Subject {
        store,
        engine: Engine::Database(folder),
    })
}

/// SQLite's tier over a blob folder, both in `folder`, as `darkroom serve` opens them.
async fn database_tier(folder: &Path) -> Arc<dyn BlobStore> {
    let store = SqliteStore::open_in(folder).await.unwrap();
    let files = LocalBlobStore::create(folder.join("blobs")).await.unwrap();
    store.keep_small_blobs(Arc::new(files))
}

/// The hashes of the blobs kept in the database in `folder`.
async fn database_rows(folder: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", folder.join("darkroom.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT hash FROM blobs ORDER BY hash")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().map(|(hash,)| hash).collect()
}

async fn s3() -> Option<Subject> {
    let moto = MotoServer::shared()?;
    let bucket = moto.bucket().await;
    let prefix = "outputs/darkroom".to_owned();
    let store = s3_store(moto, &bucket, &prefix).await;
    Some(Subject {
        store,
        engine: Engine::S3 {
            moto,
            bucket,
            prefix,
        },
    })
}

async fn s3_store(moto: &MotoServer, bucket: &str, prefix: &str) -> Arc<dyn BlobStore> {
    let location = ArtifactsLocation::parse(
        &format!("s3://{bucket}/{prefix}"),
        Path::new("/unused"),
        &moto.settings(),
    )
    .unwrap();
    darkroom::artifacts::open(&location).await.unwrap()
}

impl Subject {
    fn store(&self) -> &dyn BlobStore {
        self.store.as_ref()
    }

    /// Where a blob is kept, relative to the engine's root (bucket for S3; a blob in the
    /// database is `database/HEX`).
    fn expected_key(&self, blob: &BlobInfo) -> String {
        let hex = blob.hash.hex();
        match &self.engine {
            Engine::Local(_) => format!("{}/{}/{hex}", &hex[..2], &hex[2..4]),
            Engine::Database(_) if blob.size <= SMALL_ENOUGH => format!("database/{hex}"),
            Engine::Database(_) => format!("blobs/{}/{}/{hex}", &hex[..2], &hex[2..4]),
            Engine::S3 { prefix, .. } => format!("{prefix}/blobs/{}/{}", &hex[..2], &hex[2..]),
        }
    }

    /// Every blob kept, as keys relative to the engine's root, sorted.
    async fn blob_keys(&self) -> Vec<String> {
        match &self.engine {
            Engine::Local(folder) => {
                let mut keys = Vec::new();
                walk(folder.path(), folder.path(), &mut keys);
                keys.retain(|key| !key.starts_with("tmp/"));
                keys.sort();
                keys
            }
            Engine::Database(folder) => {
                let blobs = folder.path().join("blobs");
                let mut keys = Vec::new();
                walk(folder.path(), &blobs, &mut keys);
                keys.retain(|key| !key.starts_with("blobs/tmp/"));
                for hash in database_rows(folder.path()).await {
                    let hash: BlobHash = hash.parse().unwrap();
                    keys.push(format!("database/{}", hash.hex()));
                }
                keys.sort();
                keys
            }
            Engine::S3 {
                moto,
                bucket,
                prefix,
            } => moto.keys(bucket, &format!("{prefix}/blobs/")).await,
        }
    }

    /// Unfinished writes: temp files, or temporary objects and open multipart uploads.
    async fn unfinished(&self) -> usize {
        match &self.engine {
            Engine::Local(folder) => files_in(&folder.path().join("tmp")),
            Engine::Database(folder) => files_in(&folder.path().join("blobs/tmp")),
            Engine::S3 {
                moto,
                bucket,
                prefix,
            } => {
                moto.keys(bucket, &format!("{prefix}/tmp/")).await.len()
                    + moto.open_uploads(bucket).await
            }
        }
    }

    /// Waits until no write is unfinished; S3 cleans up after a canceled write on a task
    /// of its own, which the test cannot join.
    async fn until_nothing_unfinished(&self) {
        let deadline = tokio::time::Instant::now() + support::PATIENCE;
        while self.unfinished().await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "unfinished writes remain after {:?}",
                support::PATIENCE
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn walk(root: &Path, folder: &Path, keys: &mut Vec<String>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, keys);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            keys.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Runs each scenario once per engine: `local_disk::NAME`, `in_database::NAME` and
/// `s3::NAME`.
macro_rules! on_every_engine {
    ($($scenario:ident),* $(,)?) => {
        mod local_disk {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let subject = super::local_disk().await.unwrap();
                    super::$scenario(subject).await;
                }
            )*
        }
        mod in_database {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let subject = super::in_database().await.unwrap();
                    super::$scenario(subject).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(subject) = super::s3().await {
                        super::$scenario(subject).await;
                    }
                }
            )*
        }
    };
}

on_every_engine!(
    a_large_blob_streams_through_without_being_buffered,
    identical_bytes_are_stored_once_under_their_hash,
    byte_ranges_read_only_what_was_asked,
    a_failing_source_leaves_nothing_behind,
    a_canceled_write_leaves_nothing_behind,
);

/// 112 MiB: past S3's multipart threshold many times over.
const LARGE: usize = 112 * 1024 * 1024;

async fn a_large_blob_streams_through_without_being_buffered(subject: Subject) {
    let chunks = LARGE / CHUNK;
    let live = Arc::new(LiveChunks::default());

    let started = std::time::Instant::now();
    let info = subject
        .store()
        .put(generated(chunks, live.clone()))
        .await
        .unwrap();

    let mut expected = blake3::Hasher::new();
    for index in 0..chunks {
        expected.update(&pattern(index));
    }
    assert_eq!(info.hash, BlobHash::from_digest(&expected.finalize()));
    assert_eq!(info.size, LARGE as u64);
    assert!(info.created_new);
    // Local disk writes each chunk before asking for the next; S3 holds the parts being
    // uploaded (8 MiB each, two in flight, one filling), never the blob.
    let peak_bytes = live.peak.load(Ordering::SeqCst) * CHUNK;
    let bound = match subject.engine {
        Engine::Local(_) | Engine::Database(_) => CHUNK,
        Engine::S3 { .. } => 32 * 1024 * 1024,
    };
    assert!(
        peak_bytes <= bound,
        "{peak_bytes} bytes held at once, more than {bound}"
    );
    assert_eq!(live.now.load(Ordering::SeqCst), 0);

    let blob = subject.store().open(&info.hash).await.unwrap();
    assert_eq!(blob.size(), info.size);
    let mut rehash = blake3::Hasher::new();
    let mut chunks_read = blob.into_stream();
    while let Some(chunk) = chunks_read.try_next().await.unwrap() {
        rehash.update(&chunk);
    }
    assert_eq!(BlobHash::from_digest(&rehash.finalize()), info.hash);
    eprintln!(
        "measured: {LARGE} bytes put and read back in {:?}, at most {peak_bytes} bytes of the \
         source held at once",
        started.elapsed()
    );
    assert_eq!(subject.unfinished().await, 0, "no temp file left behind");
    assert_eq!(subject.blob_keys().await, vec![subject.expected_key(&info)]);
}

async fn identical_bytes_are_stored_once_under_their_hash(subject: Subject) {
    let store = subject.store();
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
    assert_eq!(
        subject.blob_keys().await,
        vec![subject.expected_key(&first)]
    );
    assert_eq!(read_all(store, &first.hash, 0, None).await, b"hello world");
    assert_eq!(subject.unfinished().await, 0);

    assert!(store.exists(&first.hash).await.unwrap());
    assert!(store.delete(&first.hash).await.unwrap());
    assert!(!store.delete(&first.hash).await.unwrap());
    assert!(!store.exists(&first.hash).await.unwrap());
    assert!(matches!(
        store.open(&first.hash).await,
        Err(ArtifactError::NotFound { .. })
    ));
    assert!(subject.blob_keys().await.is_empty());
}

async fn byte_ranges_read_only_what_was_asked(subject: Subject) {
    let store = subject.store();
    let info = store.put(from_slices(&[b"0123456789"])).await.unwrap();

    assert_eq!(read_all(store, &info.hash, 0, None).await, b"0123456789");
    assert_eq!(read_all(store, &info.hash, 2, Some(3)).await, b"234");
    assert_eq!(read_all(store, &info.hash, 7, None).await, b"789");
    assert_eq!(
        read_all(store, &info.hash, 8, Some(100)).await,
        b"89",
        "cut at the end"
    );
    assert!(read_all(store, &info.hash, 3, Some(0)).await.is_empty());

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
    assert!(read_all(store, &empty.hash, 0, None).await.is_empty());
    let whole: Vec<Bytes> = store
        .open(&empty.hash)
        .await
        .unwrap()
        .into_stream()
        .try_collect()
        .await
        .unwrap();
    assert!(whole.is_empty());
}

async fn a_failing_source_leaves_nothing_behind(subject: Subject) {
    // Past one S3 part, so a multipart upload was under way when the source failed.
    let parts = (0..200).map(|index| Ok(Bytes::from(pattern(index))));
    let failure = io::Error::new(io::ErrorKind::ConnectionReset, "upstream went away");
    let source = stream::iter(parts.chain([Err(failure)]));

    assert!(matches!(
        subject.store().put(source).await,
        Err(ArtifactError::Source(_))
    ));
    assert_eq!(subject.unfinished().await, 0);
    assert!(subject.blob_keys().await.is_empty());
}

async fn a_canceled_write_leaves_nothing_behind(subject: Subject) {
    let (first_part_sent, sent) = tokio::sync::oneshot::channel::<()>();

    // 10 MiB go by (past one S3 part), then the source stalls until the write is canceled.
    let chunks_before_stall = 10 * 1024 * 1024 / CHUNK;
    let mut signal = Some(first_part_sent);
    let source = stream::iter(0..=chunks_before_stall)
        .then(move |index| {
            let signal = (index == chunks_before_stall)
                .then(|| signal.take())
                .flatten();
            async move {
                if let Some(sender) = signal {
                    let _ = sender.send(());
                    std::future::pending::<()>().await;
                }
                Ok(Bytes::from(pattern(index)))
            }
        })
        .boxed();
    let writer = tokio::spawn({
        let store = subject.store.clone();
        async move { store.put(source).await }
    });

    sent.await.unwrap();
    assert!(subject.unfinished().await >= 1, "the write is in progress");
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());
    subject.until_nothing_unfinished().await;
    assert!(subject.blob_keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_blobs_through_one_bucket_and_prefixes_keep_stores_apart() {
    let Some(moto) = MotoServer::shared() else {
        return;
    };
    let bucket = moto.bucket().await;
    let first_replica = s3_store(moto, &bucket, "shared").await;
    let second_replica = s3_store(moto, &bucket, "shared").await;
    let elsewhere = s3_store(moto, &bucket, "other").await;

    let info = first_replica
        .put(from_slices(&[b"an output"]))
        .await
        .unwrap();
    assert_eq!(
        read_all(second_replica.as_ref(), &info.hash, 0, None).await,
        b"an output"
    );
    let again = second_replica
        .put(from_slices(&[b"an ", b"output"]))
        .await
        .unwrap();
    assert!(!again.created_new, "the other replica's copy is found");
    assert!(!elsewhere.exists(&info.hash).await.unwrap());
    assert_eq!(moto.keys(&bucket, "other/").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_at_start() {
    let Some(moto) = MotoServer::shared() else {
        return;
    };
    let location = ArtifactsLocation::parse(
        "s3://no-such-bucket-here/x",
        Path::new("/unused"),
        &moto.settings(),
    )
    .unwrap();
    let error = darkroom::artifacts::open(&location).await.unwrap_err();
    assert!(
        matches!(error, ArtifactError::Object { action: "list", .. }),
        "{error}"
    );
}

#[test]
fn artifacts_urls_are_read_strictly() {
    let data = Path::new("/data");
    let settings = S3Settings {
        endpoint: "http://127.0.0.1:1".to_owned(),
        ..S3Settings::default()
    };
    let parse = |url: &str| ArtifactsLocation::parse(url, data, &settings);
    assert_eq!(
        parse("").unwrap(),
        ArtifactsLocation::Local(data.join("blobs"))
    );
    assert_eq!(
        parse("file:///srv/blobs").unwrap(),
        ArtifactsLocation::Local("/srv/blobs".into())
    );
    assert_eq!(
        parse("s3://bucket/some/prefix/").unwrap(),
        ArtifactsLocation::S3 {
            bucket: "bucket".to_owned(),
            prefix: "some/prefix".to_owned(),
            settings: settings.clone(),
        }
    );
    for (url, says) in [
        ("ftp://host/x", "scheme \"ftp\" is not supported"),
        ("s3:///prefix", "needs a bucket"),
        ("s3://bucket/x?versionId=1", "no query"),
        ("blobs", "relative URL"),
    ] {
        let error = parse(url).unwrap_err().to_string();
        assert!(
            error.contains(url) && error.contains(says),
            "{url}: {error}"
        );
    }
    let bad_prefix = S3BlobStore::create("bucket", "a//b", &settings).unwrap_err();
    assert!(
        matches!(bad_prefix, ArtifactError::InvalidLocation { .. }),
        "{bad_prefix}"
    );
}

#[test]
fn the_s3_secret_is_hidden_when_the_config_is_shown() {
    let config = darkroom::config::Config {
        artifacts_url: "s3://bucket/prefix".to_owned(),
        s3: S3Settings {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "very-secret-key".to_owned(),
            ..S3Settings::default()
        },
        ..darkroom::config::Config::default()
    };
    let shown = config.to_redacted_toml();
    assert!(!shown.contains("very-secret-key"), "{shown}");
    assert!(shown.contains("secret_access_key = \"****\""), "{shown}");
    assert!(shown.contains("AKIDEXAMPLE"));
    assert!(!format!("{:?}", config.s3).contains("very-secret-key"));
}

#[tokio::test]
async fn reopening_a_folder_clears_writes_a_crash_left_unfinished() {
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

#[tokio::test]
async fn small_blobs_live_in_the_database_and_are_there_after_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let small = pattern(1)[..1000].to_vec();
    let large: Vec<u8> = (0..64).flat_map(pattern).collect();
    let (small_info, large_info) = {
        let blobs = database_tier(folder.path()).await;
        let small_info = blobs
            .put(stream::iter([Ok(Bytes::from(small.clone()))]))
            .await;
        let large_info = blobs
            .put(stream::iter([Ok(Bytes::from(large.clone()))]))
            .await;
        (small_info.unwrap(), large_info.unwrap())
    };
    assert!(small_info.created_new && large_info.created_new);
    assert_eq!(
        database_rows(folder.path()).await,
        vec![small_info.hash.as_str().to_owned()],
        "only the small blob is a row"
    );

    // Another process opens the same folder, as after a restart.
    let blobs = database_tier(folder.path()).await;
    assert_eq!(
        read_all(blobs.as_ref(), &small_info.hash, 0, None).await,
        small
    );
    assert_eq!(
        read_all(blobs.as_ref(), &large_info.hash, 0, None).await,
        large
    );
    assert_eq!(
        read_all(blobs.as_ref(), &small_info.hash, 10, Some(5)).await,
        small[10..15]
    );
}

#[tokio::test]
async fn bytes_stored_as_a_file_before_the_database_tier_stay_one_blob() {
    let folder = tempfile::tempdir().unwrap();
    let files = LocalBlobStore::create(folder.path().join("blobs"))
        .await
        .unwrap();
    let as_file: &dyn BlobStore = &files;
    let stored = as_file
        .put(from_slices(&[b"an output from last week"]))
        .await;
    let earlier = files.path_of(&stored.unwrap().hash);
    assert!(earlier.exists());

    let blobs = database_tier(folder.path()).await;
    let again = blobs
        .put(from_slices(&[b"an output from last week"]))
        .await
        .unwrap();
    assert!(!again.created_new, "the file is that blob");
    assert!(database_rows(folder.path()).await.is_empty());
    assert!(blobs.exists(&again.hash).await.unwrap());

    assert!(blobs.delete(&again.hash).await.unwrap());
    assert!(!earlier.exists());
    assert!(!blobs.exists(&again.hash).await.unwrap());
}

/// With SQLite and local artifacts, a run's last output can leave its small blob unwritten
/// and hand the bytes to the commit that records the output: nothing is in the database
/// until that commit, and then both are, after a restart too. A large blob is stored as a
/// file at once, as always.
#[tokio::test]
async fn a_staged_blob_is_written_by_the_commit_that_records_it() {
    use darkroom::jobs::model::{
        AssetId, BackendId, JobState, OriginFolder, OutputOrigin, OutputRecord, OutputType,
        PromptId, ReplicaId,
    };
    use darkroom::store::{Ending, Lease, NewJob, Transition};
    use time::OffsetDateTime;

    let folder = tempfile::tempdir().unwrap();
    let small = pattern(2)[..1000].to_vec();
    let large: Vec<u8> = (0..64).flat_map(pattern).collect();
    {
        let store = SqliteStore::open_in(folder.path()).await.unwrap();
        let files = LocalBlobStore::create(folder.path().join("blobs"))
            .await
            .unwrap();
        let blobs = store.keep_small_blobs(Arc::new(files));

        let staged = blobs
            .stage_stream(stream::iter([Ok(Bytes::from(small.clone()))]).boxed())
            .await
            .unwrap();
        assert_eq!(staged.bytes.as_deref(), Some(&small[..]));
        assert!(
            database_rows(folder.path()).await.is_empty(),
            "a staged blob is not written"
        );
        let big = blobs
            .stage_stream(stream::iter([Ok(Bytes::from(large.clone()))]).boxed())
            .await
            .unwrap();
        assert!(big.bytes.is_none(), "a large blob is stored, not staged");
        assert!(blobs.exists(&big.info.hash).await.unwrap());

        let now = OffsetDateTime::now_utc();
        let workflow = serde_json::json!({"1": {"class_type": "SaveImage", "inputs": {}}});
        let job = store
            .create_job(NewJob::api(workflow, now, now + time::Duration::days(1)))
            .await
            .unwrap()
            .job;
        let replica = ReplicaId::from("replica-a");
        let lease = Lease {
            holder: replica.clone(),
            expires_at: now + time::Duration::hours(1),
        };
        let backend = BackendId::from("gpu-0");
        store
            .claim_queued(job.id, &backend, &PromptId::from("p-1"), &lease, now)
            .await
            .unwrap()
            .unwrap();
        let running = Transition::new(job.id, JobState::Dispatched, JobState::Running, now)
            .held_by(replica.clone());
        store.transition(running).await.unwrap();
        let output = OutputRecord {
            job_id: job.id,
            asset_id: AssetId::new(),
            node_id: "1".into(),
            name: "out.png".into(),
            output_type: OutputType::Image,
            content_type: "image/png".into(),
            size_bytes: staged.info.size,
            hash: staged.info.hash.clone(),
            origin: OutputOrigin {
                filename: "out.png".into(),
                subfolder: String::new(),
                folder: OriginFolder::Output,
            },
        };
        let ending = Ending {
            collecting: Some(
                Transition::new(job.id, JobState::Running, JobState::Collecting, now)
                    .held_by(replica.clone()),
            ),
            output,
            blob: staged.bytes.clone(),
            holder: replica.clone(),
            at: now,
            end: Transition::new(job.id, JobState::Collecting, JobState::Succeeded, now)
                .held_by(replica)
                .with_expiry(now + time::Duration::days(1)),
        };
        let ended = store.end_with_output(&ending).await.unwrap();
        assert!(ended.end.is_some(), "the job ended");
        assert_eq!(
            database_rows(folder.path()).await,
            vec![staged.info.hash.as_str().to_owned()],
            "the commit wrote the blob with its record"
        );
        store.close().await;
    }

    // Another process opens the same folder, as after a restart.
    let blobs = database_tier(folder.path()).await;
    let hash = BlobHash::from_digest(&blake3::hash(&small));
    assert_eq!(read_all(blobs.as_ref(), &hash, 0, None).await, small);
}
