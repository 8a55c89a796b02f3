//! The store: the engine-neutral suite run against SQLite in memory and on
//! disk and against PostgreSQL (a fresh schema per test on the server
//! `DARKROOM_TEST_POSTGRES_URL` names; `DARKROOM_SKIP_POSTGRES=1` skips it,
//! loudly), plus what only a file database can show (durability across
//! reopen) and the state machine's rules.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod harness;
mod postgres;
mod store_suite;

use std::sync::Arc;

use darkroom::jobs::model::{JobId, JobState, JobStatus, transition_allowed};
use darkroom::store::{self, PostgresStore, SqliteStore, Store, StoreError};
use store_suite::{Harness, at, create, new_job};

async fn sqlite_in_memory(_test: &str) -> Option<Harness> {
    let store = SqliteStore::open("sqlite::memory:")
        .await
        .expect("open in-memory store");
    Some(Harness {
        store: Arc::new(store),
        _guard: None,
    })
}

/// A file database, so racing tasks really run on separate connections.
async fn sqlite_file(_test: &str) -> Option<Harness> {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_in(folder.path())
        .await
        .expect("open file store");
    Some(Harness {
        store: Arc::new(store),
        _guard: Some(Box::new(folder)),
    })
}

/// A fresh schema on the test PostgreSQL server, dropped after the test.
async fn postgres_schema(test: &str) -> Option<Harness> {
    let schema = postgres::TestSchema::create(test).await?;
    let store = PostgresStore::open(&schema.url)
        .await
        .expect("open postgres store");
    Some(Harness {
        store: Arc::new(store),
        _guard: Some(Box::new(schema)),
    })
}

mod sqlite_memory {
    use super::store_suite;
    store_suite!(super::sqlite_in_memory);
}

mod sqlite_on_disk {
    use super::store_suite;
    store_suite!(super::sqlite_file);
}

mod postgres_engine {
    use super::store_suite;
    store_suite!(super::postgres_schema);
}

#[tokio::test]
async fn committed_jobs_survive_closing_and_reopening_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        folder.path().join("nested/state.db").display()
    );

    let first = SqliteStore::open(&url).await.unwrap();
    let created = first.create_job(new_job(0)).await.unwrap();
    let dispatched = first
        .transition(store::Transition::new(
            created.job.id,
            JobState::Queued,
            JobState::Dispatched,
            at(1),
        ))
        .await
        .unwrap();
    first.close().await;
    drop(first);

    let reopened = store::open(&url).await.unwrap();
    let job = reopened
        .job(created.job.id)
        .await
        .unwrap()
        .expect("job survived the reopen");
    assert_eq!(job, dispatched.job);
    assert_eq!(reopened.events_after(job.id, 0, 10).await.unwrap().len(), 2);
    assert_eq!(reopened.unfinished_jobs().await.unwrap(), vec![job]);
}

#[tokio::test]
async fn store_urls_choose_the_engine() {
    let memory = store::open("sqlite::memory:").await.unwrap();
    create(&memory, new_job(0)).await;
    assert_eq!(memory.count_queued().await.unwrap(), 1);

    let unsupported = store::open("mysql://user:secret@127.0.0.1/darkroom").await;
    match unsupported {
        Err(error @ StoreError::UnsupportedUrl { .. }) => {
            assert!(
                !error.to_string().contains("secret"),
                "the url's password stays out of errors"
            );
        }
        other => panic!("expected an unsupported url, got {other:?}"),
    }
}

#[tokio::test]
async fn postgres_urls_of_either_scheme_open_the_shared_schema() {
    let Some(schema) =
        postgres::TestSchema::create("postgres_urls_of_either_scheme_open_the_shared_schema").await
    else {
        return;
    };
    let long_scheme = schema.url.replacen("postgres://", "postgresql://", 1);
    let first = store::open(&schema.url).await.unwrap();
    let second = store::open(&long_scheme).await.unwrap();
    create(&first, new_job(0)).await;
    create(&second, new_job(1)).await;
    assert_eq!(first.count_queued().await.unwrap(), 2);
    assert_eq!(second.count_queued().await.unwrap(), 2);
}

/// Replicas learn of each other's events through the feed: every event committed by any
/// connection to the schema, in commit order, and nothing from another schema.
#[tokio::test]
async fn the_postgres_feed_announces_events_committed_by_another_replica() {
    let test = "the_postgres_feed_announces_events_committed_by_another_replica";
    let (Some(schema), Some(elsewhere)) = (
        postgres::TestSchema::create(test).await,
        postgres::TestSchema::create(test).await,
    ) else {
        return;
    };
    let listening = store::open(&schema.url).await.unwrap();
    let other_replica = store::open(&schema.url).await.unwrap();
    let other_schema = store::open(&elsewhere.url).await.unwrap();
    let mut feed = listening
        .event_feed()
        .await
        .unwrap()
        .expect("postgres has a feed");

    create(&other_schema, new_job(0)).await;
    let created = create(&other_replica, new_job(1)).await;
    let dispatched = other_replica
        .transition(store::Transition::new(
            created.job.id,
            JobState::Queued,
            JobState::Dispatched,
            at(2),
        ))
        .await
        .unwrap();

    for expected_seq in [created.event.seq, dispatched.event.seq] {
        let notice = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
            .await
            .expect("a notice in time")
            .unwrap();
        assert_eq!(
            notice,
            store::FeedNotice::Committed {
                job_id: created.job.id,
                seq: expected_seq
            }
        );
    }
}

#[tokio::test]
async fn sqlite_has_no_feed_since_one_process_writes_it() {
    let store = store::open("sqlite::memory:").await.unwrap();
    assert!(store.event_feed().await.unwrap().is_none());
    assert!(!store.is_shared());
}

#[test]
fn state_machine_allows_exactly_the_designed_edges() {
    use JobState::{
        Canceled, Canceling, Collecting, Dispatched, Expired, Failed, Queued, Running, Succeeded,
    };
    let allowed = [
        (Queued, Dispatched),
        (Queued, Failed),
        (Queued, Canceling),
        (Queued, Canceled),
        (Dispatched, Running),
        (Dispatched, Collecting),
        (Dispatched, Queued),
        (Dispatched, Failed),
        (Dispatched, Canceling),
        (Running, Collecting),
        (Running, Queued),
        (Running, Failed),
        (Running, Canceling),
        (Collecting, Succeeded),
        (Collecting, Failed),
        (Collecting, Canceling),
        (Canceling, Canceled),
        (Canceling, Failed),
        (Succeeded, Expired),
        (Failed, Expired),
        (Canceled, Expired),
    ];
    for &from in JobState::ALL {
        for &to in JobState::ALL {
            let expected = allowed.contains(&(from, to));
            assert_eq!(transition_allowed(from, to), expected, "{from} -> {to}");
        }
    }
}

#[test]
fn final_states_and_public_statuses_follow_the_contract() {
    let finals: Vec<JobState> = JobState::ALL
        .iter()
        .copied()
        .filter(|state| state.is_final())
        .collect();
    assert_eq!(
        finals,
        [
            JobState::Succeeded,
            JobState::Failed,
            JobState::Canceled,
            JobState::Expired
        ]
    );
    for &from in JobState::ALL {
        let reaches_expired = from.is_final() && from != JobState::Expired;
        assert_eq!(
            from.can_transition_to(JobState::Expired),
            reaches_expired,
            "{from}"
        );
        for &to in JobState::ALL {
            if from.is_final() && from.can_transition_to(to) {
                assert_eq!(to, JobState::Expired, "a final job only expires");
            }
        }
    }

    assert_eq!(JobState::Dispatched.public_status(), JobStatus::Queued);
    assert_eq!(JobState::Collecting.public_status(), JobStatus::Running);
    for &state in JobState::ALL {
        let status = state.public_status();
        assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
        assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
    }
}

#[test]
fn ids_accept_only_the_canonical_uuid_spelling() {
    let id = JobId::new();
    assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
    assert_eq!(
        serde_json::to_value(id).unwrap(),
        serde_json::json!(id.to_string())
    );
    for bad in [
        "",
        "not-a-uuid",
        "7F3D2C1B-9A8E-4D6F-B012-3C4D5E6F7A8B",
        "7f3d2c1b9a8e4d6fb0123c4d5e6f7a8b",
        "{7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b}",
        "urn:uuid:7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b",
        " 7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b",
    ] {
        assert!(bad.parse::<JobId>().is_err(), "{bad:?} must be refused");
    }
}

/// SQLite keeps its queue in memory beside the file: a reopened store rebuilds it, so
/// positions, bounds and the scheduler's candidates go on from where they were.
/// A scheduler as the store sees it: whether it would place a job now, and how many
/// times it was told of committed jobs.
#[derive(Debug, Default)]
struct Watch {
    placing: std::sync::atomic::AtomicBool,
    told: std::sync::atomic::AtomicUsize,
}

impl store::QueueWatch for Watch {
    fn placing(&self) -> bool {
        self.placing.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn committed(&self) {
        self.told.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_file_store_tells_a_placing_scheduler_of_new_jobs_before_it_answers() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(folder.path()).await.unwrap();
    let watch = Arc::new(Watch::default());
    store.watch_queue(Arc::clone(&watch) as _);
    let told = || watch.told.load(std::sync::atomic::Ordering::SeqCst);

    // No backend has room: the commit is flushed inside, and nobody is told.
    let waiting = store.create_job(new_job(0)).await.unwrap();
    assert_eq!(told(), 0);

    watch
        .placing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let placed = store.create_job(new_job(1)).await.unwrap();
    assert_eq!(told(), 1, "told by the time the submission is answered");
    let mut keyed = new_job(2);
    keyed.idempotency_key = Some("once".into());
    store.create_job(keyed.clone()).await.unwrap();
    assert_eq!(
        told(),
        2,
        "a job with an idempotency key commits another way"
    );

    // Nothing committed, nothing told.
    keyed.id = JobId::new();
    assert!(matches!(
        store.create_job(keyed).await,
        Err(StoreError::IdempotencyKeyReused { .. })
    ));
    let mut over = new_job(3);
    over.max_queued = Some(3);
    assert!(matches!(
        store.create_job(over).await,
        Err(StoreError::QueueFull { queued: 3 })
    ));
    assert_eq!(told(), 2);

    // Every answered job was committed, either way.
    store.close().await;
    drop(store);
    let reopened = SqliteStore::open_in(folder.path()).await.unwrap();
    assert_eq!(reopened.count_queued().await.unwrap(), 3);
    for id in [waiting.job.id, placed.job.id] {
        assert!(reopened.job(id).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_job_whose_flush_failed_is_named_and_later_accepts_flush_in_their_commit() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(folder.path()).await.unwrap();
    let watch = Arc::new(Watch::default());
    watch
        .placing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    store.watch_queue(Arc::clone(&watch) as _);
    store.create_job(new_job(0)).await.unwrap();

    // The log gone from under the store: the next flush cannot find it.
    std::fs::remove_file(folder.path().join("darkroom.db-wal")).unwrap();
    let unconfirmed = store.create_job(new_job(1)).await.unwrap_err();
    let StoreError::Unconfirmed { job_id, .. } = &unconfirmed else {
        panic!("expected an unconfirmed job, got {unconfirmed:?}");
    };
    let message = unconfirmed.to_string();
    assert!(message.contains(&job_id.to_string()), "{message}");
    assert!(message.contains("darkroom.db-wal"), "{message}");
    assert!(
        message.contains("No such file"),
        "the system's reason: {message}"
    );
    assert!(
        store.job_snapshot(*job_id).await.unwrap().is_some(),
        "the job was committed"
    );

    // From then on the flush is the commit's own, and the scheduler hears as before.
    store.create_job(new_job(2)).await.unwrap();
    assert_eq!(watch.told.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reopened_file_store_rebuilds_its_queue() {
    let folder = tempfile::tempdir().unwrap();
    let first = SqliteStore::open_in(folder.path()).await.unwrap();
    let mut ids = Vec::new();
    for (minutes, priority) in [(0, 0), (1, 2), (2, 0)] {
        let mut job = new_job(minutes);
        job.priority = priority;
        job.owner = Some("alice".into());
        ids.push(first.create_job(job).await.unwrap().job.id);
    }
    let gone = first.create_job(new_job(3)).await.unwrap();
    first
        .transition(store::Transition::new(
            gone.job.id,
            JobState::Queued,
            JobState::Canceled,
            at(4),
        ))
        .await
        .unwrap();
    first.close().await;
    drop(first);

    let reopened = SqliteStore::open_in(folder.path()).await.unwrap();
    assert_eq!(reopened.count_queued().await.unwrap(), 3);
    let mut positions = Vec::new();
    for id in &ids {
        positions.push(reopened.queue_position(*id).await.unwrap());
    }
    assert_eq!(positions, [Some(1), Some(0), Some(2)]);
    assert_eq!(reopened.queue_position(gone.job.id).await.unwrap(), None);

    let mut over = new_job(5);
    over.owner = Some("alice".into());
    over.max_queued_for_owner = Some(3);
    assert!(matches!(
        reopened.create_job(over).await,
        Err(StoreError::OwnerQueueFull { queued: 3 })
    ));
    let candidates = reopened.queued_candidates(2).await.unwrap();
    let chosen: Vec<JobId> = candidates.iter().map(|job| job.id).collect();
    assert_eq!(chosen, [ids[1], ids[0]]);
    assert!(candidates[0].requirements.nodes.contains("KSampler"));
}

/// A database written before migration 7 (events in a table and an index, indexes of every
/// job) keeps every job and event when a newer Darkroom opens it, and its jobs are still
/// found by owner, template and backend.
#[tokio::test]
async fn a_database_from_before_events_were_kept_by_job_keeps_them_after_the_upgrade() {
    let folder = tempfile::tempdir().unwrap();
    let pool = old_database(folder.path(), 6).await;

    let (owned, templated, claimed) = (JobId::new(), JobId::new(), JobId::new());
    let rows = [
        (owned, "queued", Some("alice"), None, None),
        (templated, "queued", None, Some("portrait"), None),
        (claimed, "running", None, None, Some("gpu-1")),
    ];
    for (minutes, (id, state, owner, template, backend)) in (0_i64..).zip(rows) {
        let micros = 1_767_225_600_000_000 + minutes * 60_000_000;
        sqlx::query(
            "INSERT INTO jobs (id, state, workflow, original_workflow, original_format, \
             template, owner, backend_id, created_at, expires_at, last_event_seq) \
             VALUES ($1, $2, '{}', '{}', 'api', $3, $4, $5, $6, $7, 3)",
        )
        .bind(id.to_string())
        .bind(state)
        .bind(template)
        .bind(owner)
        .bind(backend)
        .bind(micros)
        .bind(micros + 86_400_000_000)
        .execute(&pool)
        .await
        .unwrap();
        for seq in 1..=3_i64 {
            sqlx::query(
                "INSERT INTO job_events (job_id, seq, kind, payload, at) \
                 VALUES ($1, $2, 'status', $3, $4)",
            )
            .bind(id.to_string())
            .bind(seq)
            .bind(format!(r#"{{"state":"queued","note":{seq}}}"#))
            .bind(micros + seq)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;

    let store = SqliteStore::open_in(folder.path()).await.unwrap();
    for id in [owned, templated, claimed] {
        let events = store.events_after(id, 0, 10).await.unwrap();
        let numbers: Vec<u64> = events.iter().map(|event| event.seq).collect();
        assert_eq!(numbers, [1, 2, 3], "job {id}'s events after the upgrade");
        assert_eq!(events[2].payload["note"], 3);
    }
    let listed = |owner: Option<&str>, template: Option<&str>| {
        let query = store::JobQuery {
            owner: owner.map(str::to_owned),
            template: template.map(str::to_owned),
            ..store::JobQuery::default()
        };
        let store = &store;
        async move {
            let page = store.list_jobs(&query).await.unwrap();
            page.jobs.iter().map(|job| job.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(Some("alice"), None).await, [owned]);
    assert_eq!(listed(None, Some("portrait")).await, [templated]);
    assert_eq!(listed(None, None).await, [claimed, templated, owned]);
    let running = store.unfinished_jobs().await.unwrap();
    assert!(running.iter().any(|job| job.id == claimed));

    // The next event continues the job's numbering.
    let canceled = store
        .transition(store::Transition::new(
            owned,
            JobState::Queued,
            JobState::Canceled,
            at(10),
        ))
        .await
        .unwrap();
    assert_eq!(canceled.event.seq, 4);
    assert_eq!(
        store.events_after(owned, 3, 10).await.unwrap(),
        [canceled.event]
    );
}

/// `darkroom.db` in `folder` with the SQLite migrations up to `last`, as an older Darkroom
/// left it, and a connection to it.
async fn old_database(folder: &std::path::Path, last: i64) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(folder.join("darkroom.db"))
            .create_if_missing(true),
    )
    .await
    .unwrap();
    old_schema(folder, last).await.run(&pool).await.unwrap();
    pool
}

/// The SQLite migrations up to `last`, as an older Darkroom applied them.
async fn old_schema(scratch: &std::path::Path, last: i64) -> sqlx::migrate::Migrator {
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let folder = scratch.join("old-migrations");
    std::fs::create_dir_all(&folder).unwrap();
    for entry in std::fs::read_dir(all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: i64 = name[..4].parse().unwrap();
        if version <= last {
            std::fs::copy(&path, folder.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(folder).await.unwrap()
}

/// A command beside a running server (`darkroom keys`) leaves the server's database at
/// the schema that server knows, and says why it refuses; with no server, it upgrades it.
#[tokio::test]
async fn a_command_beside_a_server_of_another_version_leaves_its_database_alone() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", folder.path().join("darkroom.db").display());
    let pool = old_database(folder.path(), 6).await;
    let version = || async {
        sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    let server = store::claim_ownership(&url).unwrap();
    match store::open_beside_server(&url).await {
        Err(error @ StoreError::SchemaMismatch { applied: 6, .. }) => {
            let message = error.to_string();
            assert!(message.contains("version 6"), "{message}");
            assert!(
                message.contains("another Darkroom process serves it"),
                "{message}"
            );
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    assert_eq!(
        version().await,
        6,
        "the server's database was migrated under it"
    );

    drop(server);
    let store = store::open_beside_server(&url).await.unwrap();
    assert!(version().await > 6);
    assert_eq!(store.api_keys().await.unwrap(), []);
}

/// Records a migration this build does not have, as a newer Darkroom would have.
const FROM_A_NEWER_DARKROOM: &str = "INSERT INTO _sqlx_migrations \
     (version, description, success, checksum, execution_time) \
     VALUES (9999, 'from a newer darkroom', TRUE, $1, 0)";

/// An older database is upgraded, and the command doing it says so first; a database a
/// newer Darkroom upgraded is refused with both versions named, and left as it was.
#[tokio::test]
async fn a_database_is_upgraded_with_a_word_and_one_from_a_newer_darkroom_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let pool = old_database(folder.path(), 6).await;
    let keys_list = || harness::darkroom(folder.path(), &["keys", "list"]);

    let upgraded = keys_list().await;
    let log = String::from_utf8_lossy(&upgraded.stderr);
    assert!(upgraded.status.success(), "{log}");
    assert!(log.contains("upgrading the database's schema"), "{log}");
    assert!(log.contains("schema.from=6"), "{log}");

    sqlx::query(FROM_A_NEWER_DARKROOM)
        .bind([0_u8].as_slice())
        .execute(&pool)
        .await
        .unwrap();
    let refused = keys_list().await;
    let log = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{log}");
    assert!(
        log.contains("schema is at version 9999, newer than this Darkroom's"),
        "{log}"
    );
    let newest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(newest, 9999, "the newer schema's record was touched");
}

#[tokio::test]
async fn a_postgres_schema_from_a_newer_darkroom_is_refused() {
    let Some(schema) =
        postgres::TestSchema::create("a_postgres_schema_from_a_newer_darkroom_is_refused").await
    else {
        return;
    };
    let store = store::open(&schema.url).await.unwrap();
    create(&store, new_job(0)).await;
    drop(store);
    let pool = sqlx::PgPool::connect(&schema.url).await.unwrap();
    sqlx::query(FROM_A_NEWER_DARKROOM)
        .bind([0_u8].as_slice())
        .execute(&pool)
        .await
        .unwrap();

    match store::open(&schema.url).await {
        Err(StoreError::SchemaNewer {
            applied: 9999,
            expected,
        }) => assert!(expected < 9999),
        other => panic!("expected a newer schema to be refused, got {other:?}"),
    }
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
}
