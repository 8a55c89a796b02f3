//! Suite cases for outputs, assets and the expiry sweep.

use std::sync::Arc;

use darkroom::artifacts::BlobHash;
use darkroom::jobs::model::{
    Asset, AssetId, BackendId, EventKind, JobId, JobState, OriginFolder, OutputOrigin,
    OutputRecord, OutputType, PromptId, ReplicaId,
};
use darkroom::store::{Ending, JobChange, Store, StoreError, Transition};

use super::{advance, at, create, lease, new_job, replica};

/// The moves that bring a new job to where its outputs are stored.
const TO_COLLECTING: [JobState; 3] = [
    JobState::Dispatched,
    JobState::Running,
    JobState::Collecting,
];

fn hash(fill: char) -> BlobHash {
    format!("blake3:{}", fill.to_string().repeat(64))
        .parse()
        .unwrap()
}

pub fn output(job_id: JobId, node_id: &str, blob: char) -> OutputRecord {
    OutputRecord {
        job_id,
        asset_id: AssetId::new(),
        node_id: node_id.into(),
        name: format!("ComfyUI_{node_id}_.png"),
        output_type: OutputType::Image,
        content_type: "image/png".into(),
        size_bytes: 1_848_320,
        hash: hash(blob),
        origin: OutputOrigin {
            filename: format!("ComfyUI_{node_id}_.png"),
            subfolder: String::new(),
            folder: OriginFolder::Output,
        },
    }
}

fn upload(blob: char, expires_at: Option<time::OffsetDateTime>) -> Asset {
    Asset {
        id: AssetId::new(),
        hash: hash(blob),
        size_bytes: 10,
        content_type: "image/png".into(),
        file_path: Some("photo.png".into()),
        created_at: at(0),
        expires_at,
        owner: Some("alice".into()),
        job_id: None,
    }
}

pub async fn outputs_are_stored_with_their_asset_and_event(store: Arc<dyn Store>) {
    let mut job = new_job(0);
    job.owner = Some("alice".into());
    let created = create(&store, job).await;
    let collecting = advance(&store, &created, &TO_COLLECTING).await;

    let first = output(created.job.id, "9", 'a');
    let second = output(created.job.id, "12", 'b');
    let event = store.add_output(&first, &replica(), at(20)).await.unwrap();
    assert_eq!(
        (event.kind, event.seq),
        (EventKind::Output, collecting.event.seq + 1)
    );
    assert_eq!(event.payload["type"], serde_json::json!("image"));
    store.add_output(&second, &replica(), at(21)).await.unwrap();

    assert_eq!(
        store.outputs(created.job.id).await.unwrap(),
        vec![first.clone(), second]
    );
    let asset = store
        .asset(first.asset_id)
        .await
        .unwrap()
        .expect("output asset exists");
    assert_eq!(asset.hash, first.hash);
    assert_eq!(asset.job_id, Some(created.job.id));
    assert_eq!(asset.owner.as_deref(), Some("alice"));
    assert_eq!(asset.expires_at, Some(created.job.expires_at));
    assert_eq!(asset.file_path.as_deref(), Some("ComfyUI_9_.png"));

    let stray = output(JobId::new(), "1", 'c');
    assert!(matches!(
        store.add_output(&stray, &replica(), at(22)).await,
        Err(StoreError::JobNotFound(_))
    ));
    assert!(store.asset(stray.asset_id).await.unwrap().is_none());
}

/// An output whose asset id is taken fails after its transaction began: nothing of it
/// stays (no event, no row), and the next writes go through.
pub async fn an_output_refused_halfway_leaves_nothing_and_writes_go_on(store: Arc<dyn Store>) {
    let created = create(&store, new_job(0)).await;
    let collecting = advance(&store, &created, &TO_COLLECTING).await;
    let first = output(created.job.id, "9", 'a');
    store.add_output(&first, &replica(), at(20)).await.unwrap();
    assert_eq!(
        store
            .asset(first.asset_id)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(created.job.expires_at)
    );

    let mut taken = output(created.job.id, "12", 'b');
    taken.asset_id = first.asset_id;
    let refused = store.add_output(&taken, &replica(), at(21)).await;
    assert!(refused.is_err(), "a second asset under one id: {refused:?}");

    assert_eq!(
        store.outputs(created.job.id).await.unwrap(),
        vec![first.clone()]
    );
    let events = store.events_after(created.job.id, 0, 100).await.unwrap();
    assert_eq!(events.last().unwrap().seq, collecting.event.seq + 1);
    let ended = store
        .transition(
            Transition::new(
                created.job.id,
                JobState::Collecting,
                JobState::Succeeded,
                at(22),
            )
            .held_by(replica())
            .with_expiry(at(1000)),
        )
        .await
        .expect("the writer goes on after a refused write");
    assert_eq!(ended.event.seq, collecting.event.seq + 2);
    // The end's expiry reaches the job's outputs in the same transaction.
    let asset = store.asset(first.asset_id).await.unwrap().unwrap();
    assert_eq!(asset.expires_at, Some(at(1000)));
}

pub async fn assets_in_use_are_not_deleted_and_shared_blobs_outlive_one_asset(
    store: Arc<dyn Store>,
) {
    let created = create(&store, new_job(0)).await;
    advance(&store, &created, &TO_COLLECTING).await;
    let produced = output(created.job.id, "9", 'a');
    store
        .add_output(&produced, &replica(), at(1))
        .await
        .unwrap();

    let refused = store.delete_asset(produced.asset_id).await;
    assert!(
        matches!(refused, Err(StoreError::AssetInUse { job_id, .. }) if job_id == created.job.id)
    );

    // Two uploads of the same bytes share one blob.
    let first = upload('d', None);
    let second = upload('d', None);
    store.create_asset(&first).await.unwrap();
    store.create_asset(&second).await.unwrap();
    assert_eq!(store.asset(first.id).await.unwrap(), Some(first.clone()));
    let sharing = store.assets_with_hash(&hash('d')).await.unwrap();
    assert_eq!(sharing.len(), 2);

    let removal = store.delete_asset(first.id).await.unwrap();
    assert_eq!(removal.asset, first);
    assert_eq!(
        removal.orphaned_blob, None,
        "the other upload still uses the blob"
    );
    let removal = store.delete_asset(second.id).await.unwrap();
    assert_eq!(removal.orphaned_blob, Some(hash('d')));
    assert!(matches!(
        store.delete_asset(second.id).await,
        Err(StoreError::AssetNotFound(_))
    ));
    assert!(store.assets_with_hash(&hash('d')).await.unwrap().is_empty());
}

pub async fn sweep_expires_final_jobs_and_reports_orphaned_blobs(store: Arc<dyn Store>) {
    let path = [
        JobState::Dispatched,
        JobState::Running,
        JobState::Collecting,
    ];
    let done = advance(&store, &create(&store, new_job(0)).await, &path).await;
    let done_output = output(done.job.id, "9", 'a');
    let shared_output = output(done.job.id, "10", 'b');
    store
        .add_output(&done_output, &replica(), at(1))
        .await
        .unwrap();
    store
        .add_output(&shared_output, &replica(), at(1))
        .await
        .unwrap();
    let retention = Transition::new(
        done.job.id,
        JobState::Collecting,
        JobState::Succeeded,
        at(2),
    )
    .with_expiry(at(60));
    store.transition(retention).await.unwrap();

    // Still running past its deadline: not final, so not swept.
    let running = advance(&store, &create(&store, new_job(1)).await, &path[..2]).await;
    // Final but retained for a week.
    let kept = advance(
        &store,
        &create(&store, new_job(2)).await,
        &[JobState::Canceled],
    )
    .await;
    let lapsed_upload = upload('c', Some(at(30)));
    let lasting_upload = upload('b', None);
    store.create_asset(&lapsed_upload).await.unwrap();
    store.create_asset(&lasting_upload).await.unwrap();

    let early = store.sweep_expired(at(59), 100).await.unwrap();
    assert!(early.expired_jobs.is_empty());
    assert_eq!(early.deleted_assets, vec![lapsed_upload.id]);
    assert_eq!(early.orphaned_blobs, vec![hash('c')]);

    let sweep = store.sweep_expired(at(24 * 60), 100).await.unwrap();
    assert_eq!(sweep.expired_jobs, vec![done.job.id]);
    assert_eq!(sweep.deleted_assets.len(), 2);
    assert_eq!(
        sweep.orphaned_blobs,
        vec![hash('a')],
        "blob b is still an upload's"
    );

    let expired = store.job(done.job.id).await.unwrap().unwrap();
    assert_eq!(expired.state, JobState::Expired);
    assert!(store.outputs(done.job.id).await.unwrap().is_empty());
    assert!(store.asset(done_output.asset_id).await.unwrap().is_none());
    let last = store
        .events_after(done.job.id, 0, 100)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.payload["status"], serde_json::json!("expired"));

    assert_eq!(
        store.job(running.job.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(
        store.job(kept.job.id).await.unwrap().unwrap().state,
        JobState::Canceled
    );
    let again = store.sweep_expired(at(61), 100).await.unwrap();
    assert!(again.expired_jobs.is_empty() && again.orphaned_blobs.is_empty());
}

/// A run's last steps in one commit: into `collecting`, its last output, its end, in that
/// order of events; and a step that does not match (the job was canceled meanwhile,
/// another replica holds it) writes nothing of itself or of the steps after it.
pub async fn a_runs_last_steps_commit_together_and_stop_where_one_does_not_match(
    store: Arc<dyn Store>,
) {
    let backend = BackendId::from("gpu-0");
    let running = |created: JobChange, minutes: i64| {
        let store = store.clone();
        let backend = backend.clone();
        async move {
            let id = created.job.id;
            let prompt_id = PromptId::from(format!("prompt-{minutes}").as_str());
            store
                .claim_queued(id, &backend, &prompt_id, &lease(), at(minutes))
                .await
                .unwrap()
                .expect("claimed");
            let moving = Transition::new(id, JobState::Dispatched, JobState::Running, at(minutes))
                .held_by(replica());
            store.transition(moving).await.unwrap()
        }
    };
    let ending = |id: JobId, collecting: bool, holder: &ReplicaId, node: &str| Ending {
        collecting: collecting.then(|| {
            Transition::new(id, JobState::Running, JobState::Collecting, at(20))
                .held_by(holder.clone())
        }),
        output: output(id, node, 'a'),
        blob: None,
        holder: holder.clone(),
        at: at(20),
        end: Transition::new(id, JobState::Collecting, JobState::Succeeded, at(20))
            .held_by(holder.clone())
            .with_expiry(at(1000)),
    };

    // All three steps, in one commit.
    let started = running(create(&store, new_job(0)).await, 1).await;
    let id = started.job.id;
    let steps = ending(id, true, &replica(), "9");
    let ended = store.end_with_output(&steps).await.unwrap();
    let collecting = ended.collecting.expect("moved to collecting");
    let stored = ended.output.expect("output recorded");
    let end = ended.end.expect("moved to its end");
    assert_eq!(collecting.job.state, JobState::Collecting);
    assert_eq!(end.job.state, JobState::Succeeded);
    let seqs = [collecting.event.seq, stored.seq, end.event.seq];
    let first = started.event.seq + 1;
    assert_eq!(seqs, [first, first + 1, first + 2]);
    let events = store
        .events_after(id, started.event.seq, 100)
        .await
        .unwrap();
    let kinds: Vec<(EventKind, Option<&str>)> = events
        .iter()
        .map(|event| (event.kind, event.payload["state"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Status, Some("collecting")),
            (EventKind::Output, None),
            (EventKind::Status, Some("succeeded")),
        ]
    );
    assert_eq!(store.outputs(id).await.unwrap(), vec![steps.output.clone()]);
    let asset = store.asset(steps.output.asset_id).await.unwrap().unwrap();
    assert_eq!(
        asset.expires_at,
        Some(at(1000)),
        "the end's expiry reaches the output"
    );
    let status = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(status.job.state, JobState::Succeeded);
    assert_eq!(status.outputs, vec![steps.output.clone()]);

    // Canceled before the commit: the move into collecting does not match, nothing is kept.
    let started = running(create(&store, new_job(2)).await, 3).await;
    let id = started.job.id;
    let canceling = Transition::new(id, JobState::Running, JobState::Canceling, at(4));
    let canceled = store.transition(canceling).await.unwrap();
    let ended = store
        .end_with_output(&ending(id, true, &replica(), "9"))
        .await
        .unwrap();
    assert!(ended.collecting.is_none() && ended.output.is_none() && ended.end.is_none());
    assert!(store.outputs(id).await.unwrap().is_empty());
    let events = store
        .events_after(id, canceled.event.seq, 100)
        .await
        .unwrap();
    assert!(events.is_empty(), "nothing was written: {events:?}");

    // Held by this replica, written by another: the output is refused, and the end with it.
    let started = running(create(&store, new_job(5)).await, 6).await;
    let id = started.job.id;
    let collecting =
        Transition::new(id, JobState::Running, JobState::Collecting, at(7)).held_by(replica());
    store.transition(collecting).await.unwrap();
    let intruder = ReplicaId::from("replica-b");
    let ended = store
        .end_with_output(&ending(id, false, &intruder, "9"))
        .await
        .unwrap();
    assert!(ended.output.is_none() && ended.end.is_none());
    assert!(store.outputs(id).await.unwrap().is_empty());
    let status = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(status.job.state, JobState::Collecting);

    if store.is_shared() {
        // PostgreSQL keeps no blobs: bytes handed to it are refused, not dropped quietly.
        let started = running(create(&store, new_job(8)).await, 9).await;
        let mut steps = ending(started.job.id, true, &replica(), "9");
        steps.blob = Some(bytes::Bytes::from_static(b"staged bytes"));
        let refused = store.end_with_output(&steps).await;
        assert!(
            matches!(refused, Err(StoreError::BlobsNotKept { .. })),
            "{refused:?}"
        );
        assert!(store.outputs(started.job.id).await.unwrap().is_empty());
    }
}
