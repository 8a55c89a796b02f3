//! Suite cases for leases: one replica drives a backend, the jobs on it are held by the
//! replica that claimed or adopted them, a lapsed lease is taken over, and the old
//! holder's writes are then refused.

use std::sync::Arc;

use darkroom::jobs::model::{BackendId, JobState, Progress, PromptId, ReplicaId};
use darkroom::store::{Dispatch, Store, StoreError, Transition};

use super::assets::output;
use super::{at, create, lease_until, new_job};

pub async fn a_backend_lease_has_one_holder_until_it_lapses(store: Arc<dyn Store>) {
    let gpu = BackendId::from("gpu-0");
    let other_gpu = BackendId::from("gpu-1");
    let acquire = |holder: &str, until: i64, now: i64| {
        let store = store.clone();
        let gpu = gpu.clone();
        let lease = lease_until(holder, until);
        async move { store.acquire_backend_lease(&gpu, &lease, at(now)).await }
    };

    assert!(store.backend_lease(&gpu).await.unwrap().is_none());
    assert!(
        acquire("a", 10, 0).await.unwrap(),
        "a free backend is taken"
    );
    assert!(!acquire("b", 15, 5).await.unwrap(), "a live lease is not");
    assert_eq!(
        store.backend_lease(&gpu).await.unwrap(),
        Some(lease_until("a", 10))
    );
    assert!(
        acquire("a", 16, 6).await.unwrap(),
        "the holder takes it again"
    );
    assert!(
        store
            .acquire_backend_lease(&other_gpu, &lease_until("b", 16), at(6))
            .await
            .unwrap(),
        "each backend has its own lease"
    );

    assert!(
        !store
            .renew_backend_lease(&gpu, &lease_until("b", 30))
            .await
            .unwrap(),
        "only the holder renews"
    );
    assert!(
        store
            .renew_backend_lease(&gpu, &lease_until("a", 20))
            .await
            .unwrap()
    );
    assert!(!acquire("b", 40, 19).await.unwrap());
    assert!(
        acquire("b", 40, 20).await.unwrap(),
        "a lapsed lease is taken over"
    );
    assert!(
        !store
            .renew_backend_lease(&gpu, &lease_until("a", 50))
            .await
            .unwrap(),
        "the old holder learns it lost the backend"
    );

    let a = ReplicaId::from("a");
    let b = ReplicaId::from("b");
    store.release_backend_lease(&gpu, &a).await.unwrap();
    assert_eq!(
        store.backend_lease(&gpu).await.unwrap(),
        Some(lease_until("b", 40)),
        "only the holder releases"
    );
    store.release_backend_lease(&gpu, &b).await.unwrap();
    assert!(store.backend_lease(&gpu).await.unwrap().is_none());
    assert!(
        acquire("a", 60, 21).await.unwrap(),
        "a released backend is free at once"
    );
}

pub async fn jobs_are_taken_over_once_their_lease_lapses_and_the_old_holders_writes_are_refused(
    store: Arc<dyn Store>,
) {
    let gpu = BackendId::from("gpu-0");
    let (a, b) = (ReplicaId::from("a"), ReplicaId::from("b"));
    let first = create(&store, new_job(0)).await.job.id;
    let second = create(&store, new_job(1)).await.job.id;
    for minutes in [2, 3] {
        let claimed = store
            .claim_next_queued(&gpu, &lease_until("a", 10), at(minutes))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.job.backend_id, Some(gpu.clone()));
    }
    let posted = Dispatch {
        backend_id: gpu.clone(),
        prompt_id: PromptId::from("prompt-1"),
        attempt: 1,
        holder: a.clone(),
    };
    store.record_dispatch(first, &posted).await.unwrap();

    let adopted = store
        .adopt_jobs(&gpu, &lease_until("a", 10), at(4))
        .await
        .unwrap();
    let ids: Vec<_> = adopted.iter().map(|job| job.id).collect();
    assert_eq!(ids, [first, second], "the holder's own jobs, oldest first");
    assert!(
        store
            .adopt_jobs(&gpu, &lease_until("b", 30), at(5))
            .await
            .unwrap()
            .is_empty(),
        "live leases are not taken"
    );
    assert_eq!(
        store
            .renew_job_leases(&gpu, &lease_until("a", 20))
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .adopt_jobs(&gpu, &lease_until("b", 30), at(19))
            .await
            .unwrap()
            .is_empty(),
        "renewed leases are not taken"
    );

    let taken = store
        .adopt_jobs(&gpu, &lease_until("b", 30), at(20))
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|job| job.id).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(taken[0].prompt_id, Some(PromptId::from("prompt-1")));
    assert_eq!(
        store
            .renew_job_leases(&gpu, &lease_until("a", 40))
            .await
            .unwrap(),
        0,
        "the old holder renews nothing"
    );

    let events_before = store.events_after(first, 0, 100).await.unwrap().len();
    let stale_move =
        Transition::new(first, JobState::Dispatched, JobState::Running, at(21)).held_by(a.clone());
    let progress = Progress::default();
    let refusals = [
        store.transition(stale_move).await.err(),
        store
            .update_progress(first, &progress, &a, at(21))
            .await
            .err(),
        store.record_dispatch(first, &posted).await.err(),
        store
            .add_output(&output(first, "9", 'a'), &a, at(21))
            .await
            .err(),
    ];
    for refusal in refusals {
        assert!(
            matches!(&refusal, Some(StoreError::LeaseLost { job_id, holder }) if *job_id == first && *holder == b),
            "{refusal:?}"
        );
    }
    assert_eq!(
        store.events_after(first, 0, 100).await.unwrap().len(),
        events_before,
        "refused writes leave no event"
    );
    assert!(store.outputs(first).await.unwrap().is_empty());

    let moved =
        Transition::new(first, JobState::Dispatched, JobState::Running, at(22)).held_by(b.clone());
    assert_eq!(
        store.transition(moved).await.unwrap().job.state,
        JobState::Running
    );
    store
        .update_progress(first, &progress, &b, at(22))
        .await
        .unwrap();
    // A move that names no holder (a client's cancel) is not fenced.
    let cancel = Transition::new(second, JobState::Dispatched, JobState::Canceling, at(23));
    store.transition(cancel).await.unwrap();
}

pub async fn requeued_and_ended_jobs_are_nobodys_and_a_release_hands_jobs_over_at_once(
    store: Arc<dyn Store>,
) {
    let gpu = BackendId::from("gpu-0");
    let (a, b) = (ReplicaId::from("a"), ReplicaId::from("b"));
    let job = create(&store, new_job(0)).await.job.id;
    store
        .claim_next_queued(&gpu, &lease_until("a", 100), at(1))
        .await
        .unwrap()
        .unwrap();
    let requeue =
        Transition::new(job, JobState::Dispatched, JobState::Queued, at(2)).held_by(a.clone());
    store.transition(requeue).await.unwrap();

    let reclaimed = store
        .claim_next_queued(&gpu, &lease_until("b", 100), at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((reclaimed.job.id, reclaimed.job.attempt), (job, 2));
    let stale = Transition::new(job, JobState::Dispatched, JobState::Running, at(4)).held_by(a);
    assert!(matches!(
        store.transition(stale).await,
        Err(StoreError::LeaseLost { .. })
    ));

    store.release_backend_lease(&gpu, &b).await.unwrap();
    let adopted = store
        .adopt_jobs(&gpu, &lease_until("c", 100), at(5))
        .await
        .unwrap();
    assert_eq!(
        adopted.iter().map(|job| job.id).collect::<Vec<_>>(),
        [job],
        "released jobs are taken before their lease would have lapsed"
    );

    let failed = Transition::new(job, JobState::Dispatched, JobState::Failed, at(6))
        .held_by(ReplicaId::from("c"));
    store.transition(failed).await.unwrap();
    assert!(
        store
            .adopt_jobs(&gpu, &lease_until("d", 100), at(7))
            .await
            .unwrap()
            .is_empty(),
        "an ended job is nobody's to adopt"
    );
}
