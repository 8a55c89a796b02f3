//! Suite cases for what status reads and submissions see while the queue moves: positions
//! and bounds after claims, cancels and requeues, the snapshot a status read returns, and
//! submissions that arrive together.

use std::sync::Arc;

use darkroom::jobs::model::{BackendId, JobId, JobState, Progress, PromptId};
use darkroom::store::{NewJob, Store, StoreError, Transition};
use futures_util::future::join_all;

use super::assets::output;
use super::{advance, at, create, lease, new_job, replica};

fn owned(owner: &str, minutes: i64, priority: i32) -> NewJob {
    let mut job = new_job(minutes);
    job.owner = Some(owner.to_owned());
    job.priority = priority;
    job
}

async fn positions(store: &Arc<dyn Store>, ids: &[JobId]) -> Vec<Option<u64>> {
    let mut positions = Vec::new();
    for id in ids {
        positions.push(store.queue_position(*id).await.unwrap());
    }
    positions
}

pub async fn positions_and_bounds_stay_exact_through_claims_cancels_and_requeues(
    store: Arc<dyn Store>,
) {
    let a = create(&store, owned("alice", 0, 0)).await;
    let b = create(&store, owned("bob", 1, 0)).await;
    let c = create(&store, owned("alice", 2, 5)).await;
    let d = create(&store, owned("alice", 3, 0)).await;
    let ids = [a.job.id, b.job.id, c.job.id, d.job.id];
    assert_eq!(
        positions(&store, &ids).await,
        [Some(1), Some(2), Some(0), Some(3)]
    );

    // The head (the urgent c) is claimed, b is canceled.
    let backend = BackendId::from("gpu-0");
    let claimed = store
        .claim_queued(
            c.job.id,
            &backend,
            &PromptId::from("prompt-c"),
            &lease(),
            at(10),
        )
        .await
        .unwrap()
        .expect("c is claimed");
    advance(&store, &b, &[JobState::Canceled]).await;
    assert_eq!(
        positions(&store, &ids).await,
        [Some(0), None, None, Some(1)]
    );
    assert_eq!(store.count_queued().await.unwrap(), 2);

    // Bounds count what waits now: two jobs, both alice's.
    let mut full = new_job(20);
    full.max_queued = Some(2);
    assert!(matches!(
        store.create_job(full).await,
        Err(StoreError::QueueFull { queued: 2 })
    ));
    let mut alice_full = owned("alice", 20, 0);
    alice_full.max_queued_for_owner = Some(2);
    assert!(matches!(
        store.create_job(alice_full).await,
        Err(StoreError::OwnerQueueFull { queued: 2 })
    ));
    let mut bob_room = owned("bob", 20, 0);
    bob_room.max_queued_for_owner = Some(1);
    let e = create(&store, bob_room).await;

    // c goes back to the queue and, being urgent, to its head again.
    let requeue = Transition::new(c.job.id, JobState::Dispatched, JobState::Queued, at(30))
        .held_by(replica());
    store.transition(requeue).await.unwrap();
    let ids = [a.job.id, c.job.id, d.job.id, e.job.id];
    assert_eq!(
        positions(&store, &ids).await,
        [Some(1), Some(0), Some(2), Some(3)]
    );
    assert_eq!(store.count_queued().await.unwrap(), 4);
    let candidates = store.queued_candidates(1).await.unwrap();
    let chosen: Vec<JobId> = candidates.iter().map(|job| job.id).collect();
    assert_eq!(chosen, [c.job.id, e.job.id]);
    assert!(
        candidates[0].requirements.nodes.contains("KSampler"),
        "a requeued job still has its requirements"
    );
    let snapshot = store.job_snapshot(c.job.id).await.unwrap().unwrap();
    assert_eq!(snapshot.job.state, JobState::Queued);
    assert_eq!(snapshot.job.attempt, claimed.job.attempt);
    assert_eq!(snapshot.queue_position, Some(0));
}

pub async fn a_status_read_shows_every_committed_change(store: Arc<dyn Store>) {
    let created = create(&store, owned("alice", 0, 0)).await;
    let id = created.job.id;
    let queued = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(queued.job.state, JobState::Queued);
    assert_eq!(queued.job.owner.as_deref(), Some("alice"));
    assert_eq!(queued.queue_position, Some(0));
    assert!(queued.outputs.is_empty());
    assert!(store.job_snapshot(JobId::new()).await.unwrap().is_none());

    let running = advance(&store, &created, &[JobState::Dispatched, JobState::Running]).await;
    let snapshot = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(snapshot.job.state, JobState::Running);
    assert_eq!(snapshot.job.started_at, running.job.started_at);
    assert_eq!(snapshot.queue_position, None);

    let progress = Progress {
        value: 0.3,
        nodes_done: 1,
        nodes_total: 3,
        ..Progress::default()
    };
    store
        .update_progress(id, &progress, &replica(), at(200))
        .await
        .unwrap();
    let snapshot = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(snapshot.job.progress, Some(progress));

    advance(&store, &running, &[JobState::Collecting]).await;
    let stored = output(id, "9", 'a');
    store
        .add_output(&stored, &replica(), at(300))
        .await
        .unwrap();
    let snapshot = store.job_snapshot(id).await.unwrap().unwrap();
    assert_eq!(snapshot.outputs, vec![stored]);
    assert_eq!(snapshot.job.state, JobState::Collecting);
    assert_eq!(snapshot, store.job_snapshot(id).await.unwrap().unwrap());
}

pub async fn submissions_together_commit_apart_from_the_ones_refused(store: Arc<dyn Store>) {
    let mut first = new_job(0);
    first.idempotency_key = Some("once".into());
    create(&store, first).await;

    // Ten at once under a bound of five more, one of them reusing the key: exactly four
    // of the others fit, whatever order they commit in, and the reused key alone fails
    // for its key.
    let submissions = (1..=10).map(|minutes| {
        let mut job = new_job(minutes);
        job.max_queued = Some(5);
        if minutes == 1 {
            job.idempotency_key = Some("once".into());
            job.max_queued = None;
        }
        let store = Arc::clone(&store);
        async move { store.create_job(job).await }
    });
    let outcomes = join_all(submissions).await;

    assert!(matches!(
        &outcomes[0],
        Err(StoreError::IdempotencyKeyReused { key }) if key == "once"
    ));
    let accepted = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let full = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(StoreError::QueueFull { .. })))
        .count();
    assert_eq!((accepted, full), (4, 5), "{outcomes:?}");
    assert_eq!(store.count_queued().await.unwrap(), 5);
    for change in outcomes.iter().flatten() {
        let read = store.job(change.job.id).await.unwrap();
        assert_eq!(
            read.as_ref(),
            Some(&change.job),
            "an accepted job is committed"
        );
    }
}
