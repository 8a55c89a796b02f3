//! Suite cases for the queue: positions, claims, the bound and start-up
//! reconciliation.

use std::collections::BTreeSet;
use std::sync::Arc;

use darkroom::jobs::model::{BackendId, JobId, JobState, PromptId, ReplicaId};
use darkroom::store::{Dispatch, JobQuery, Store, StoreError};

use super::{advance, at, create, lease, lease_until, new_job};

pub async fn queue_positions_follow_creation_order_and_claims_take_the_head(store: Arc<dyn Store>) {
    // Created out of order: the queue follows created_at, not insertion.
    let late = create(&store, new_job(5)).await;
    let early = create(&store, new_job(1)).await;
    let middle = create(&store, new_job(3)).await;
    assert_eq!(store.count_queued().await.unwrap(), 3);
    assert_eq!(store.queue_position(early.job.id).await.unwrap(), Some(0));
    assert_eq!(store.queue_position(middle.job.id).await.unwrap(), Some(1));
    assert_eq!(store.queue_position(late.job.id).await.unwrap(), Some(2));
    assert_eq!(store.queue_position(JobId::new()).await.unwrap(), None);

    let backend = BackendId::from("gpu-0");
    let claimed = store
        .claim_next_queued(&backend, &lease(), at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.job.id, early.job.id);
    assert_eq!(claimed.job.state, JobState::Dispatched);
    assert_eq!(claimed.job.backend_id, Some(backend.clone()));
    assert_eq!(
        (claimed.job.attempt, claimed.job.dispatched_at),
        (1, Some(at(10)))
    );
    assert!(
        claimed.job.prompt_id.is_none(),
        "the prompt id comes with record_dispatch"
    );
    assert_eq!(claimed.event.payload["status"], serde_json::json!("queued"));
    assert_eq!(
        claimed.event.payload["state"],
        serde_json::json!("dispatched")
    );

    assert_eq!(store.queue_position(early.job.id).await.unwrap(), None);
    assert_eq!(store.queue_position(middle.job.id).await.unwrap(), Some(0));
    assert_eq!(store.count_queued().await.unwrap(), 2);

    store
        .claim_next_queued(&backend, &lease(), at(11))
        .await
        .unwrap()
        .unwrap();
    store
        .claim_next_queued(&backend, &lease(), at(12))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_next_queued(&backend, &lease(), at(13))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn racing_claims_never_share_a_job(store: Arc<dyn Store>) {
    let mut expected = BTreeSet::new();
    for minutes in 0..3 {
        expected.insert(create(&store, new_job(minutes)).await.job.id);
    }

    let mut claimers = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let backend = BackendId(format!("gpu-{worker}"));
        claimers.push(tokio::spawn(async move {
            store.claim_next_queued(&backend, &lease(), at(10)).await
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        if let Some(change) = claimer.await.unwrap().unwrap() {
            claimed.push(change.job.id);
        }
    }

    let unique: BTreeSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(
        claimed.len(),
        3,
        "three jobs, three successful claims: {claimed:?}"
    );
    assert_eq!(unique, expected);
}

pub async fn queue_bound_refuses_and_releases_the_idempotency_key(store: Arc<dyn Store>) {
    for minutes in 0..2 {
        let mut job = new_job(minutes);
        job.max_queued = Some(2);
        create(&store, job).await;
    }

    let mut refused = new_job(3);
    refused.max_queued = Some(2);
    refused.idempotency_key = Some("retry-me".into());
    let outcome = store.create_job(refused.clone()).await;
    assert!(matches!(outcome, Err(StoreError::QueueFull { queued: 2 })));
    assert!(store.job(refused.id).await.unwrap().is_none());

    // A refused submission holds no key: the retry goes through once there is room.
    store
        .claim_next_queued(&BackendId::from("gpu-0"), &lease(), at(4))
        .await
        .unwrap();
    let retried = create(&store, refused).await;
    assert_eq!(retried.job.idempotency_key.as_deref(), Some("retry-me"));
}

pub async fn unfinished_jobs_are_every_non_final_job(store: Arc<dyn Store>) {
    let paths: [&[JobState]; 6] = [
        &[],
        &[JobState::Dispatched],
        &[
            JobState::Dispatched,
            JobState::Running,
            JobState::Collecting,
        ],
        &[JobState::Dispatched, JobState::Running, JobState::Canceling],
        &[
            JobState::Dispatched,
            JobState::Running,
            JobState::Collecting,
            JobState::Succeeded,
        ],
        &[JobState::Canceled],
    ];
    let mut unfinished = Vec::new();
    for (minutes, path) in (0_i64..).zip(paths) {
        let created = create(&store, new_job(minutes)).await;
        let settled = advance(&store, &created, path).await;
        if !settled.job.state.is_final() {
            unfinished.push(settled.job.id);
        }
    }

    let listed = store.unfinished_jobs().await.unwrap();
    assert_eq!(
        listed.iter().map(|job| job.id).collect::<Vec<_>>(),
        unfinished
    );
    assert_eq!(
        store.list_jobs(&JobQuery::default()).await.unwrap().total,
        6
    );
}

pub async fn candidates_are_each_owners_first_jobs_by_priority_then_age(store: Arc<dyn Store>) {
    let owned = |owner: Option<&str>, minutes: i64, priority: i32| {
        let mut job = new_job(minutes);
        job.owner = owner.map(str::to_owned);
        job.priority = priority;
        job
    };
    let flood: Vec<JobId> = {
        let mut ids = Vec::new();
        for minutes in 0..5 {
            ids.push(
                create(&store, owned(Some("flood"), minutes, 0))
                    .await
                    .job
                    .id,
            );
        }
        ids
    };
    let anonymous = create(&store, owned(None, 10, 0)).await.job.id;
    let urgent = create(&store, owned(Some("other"), 20, 3)).await.job.id;

    let candidates = store.queued_candidates(2).await.unwrap();
    let ids: Vec<JobId> = candidates.iter().map(|job| job.id).collect();
    assert_eq!(ids, [urgent, flood[0], flood[1], anonymous]);
    assert_eq!(candidates[0].priority, 3);
    assert_eq!(candidates[0].owner.as_deref(), Some("other"));
    assert_eq!(candidates[1].created_at, at(0));
    assert!(
        candidates[1].requirements.nodes.contains("KSampler"),
        "requirements are stored with the job: {:?}",
        candidates[1].requirements
    );
    // A higher priority waits ahead in the position a client sees too.
    assert_eq!(store.queue_position(urgent).await.unwrap(), Some(0));
    assert_eq!(store.queue_position(flood[0]).await.unwrap(), Some(1));
}

pub async fn a_chosen_job_is_claimed_once_and_only_while_queued(store: Arc<dyn Store>) {
    let job = create(&store, new_job(0)).await.job;
    let backend = BackendId::from("gpu-1");

    // Four replicas choose the same job at once.
    let claims = (0..4).map(|replica| {
        let store = store.clone();
        let backend = backend.clone();
        let holder = format!("replica-{replica}");
        tokio::spawn(async move {
            let prompt_id = PromptId::from(format!("prompt-of-{holder}").as_str());
            let claimed = store
                .claim_queued(
                    job.id,
                    &backend,
                    &prompt_id,
                    &lease_until(&holder, 60),
                    at(5),
                )
                .await;
            (holder, claimed)
        })
    });
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for claim in claims {
        let (holder, claimed) = claim.await.unwrap();
        match claimed.unwrap() {
            Some(claimed) => {
                assert_eq!(claimed.job.state, JobState::Dispatched);
                assert_eq!(claimed.job.backend_id, Some(backend.clone()));
                assert_eq!(claimed.job.attempt, 1);
                let prompt_id = format!("prompt-of-{holder}");
                assert_eq!(
                    claimed.job.prompt_id.as_ref().map(|id| id.0.as_str()),
                    Some(prompt_id.as_str()),
                    "the claim records the winner's prompt id"
                );
                assert_eq!(claimed.event.payload["state"], "dispatched");
                winners.push(holder);
            }
            None => losers.push(holder),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert!(store.queued_candidates(10).await.unwrap().is_empty());

    // The claim holds the job under the winner's lease: a loser's write is refused.
    let posted = |holder: &str| Dispatch {
        backend_id: backend.clone(),
        prompt_id: PromptId::from("prompt-1"),
        attempt: 1,
        holder: ReplicaId::from(holder),
    };
    let refused = store.record_dispatch(job.id, &posted(&losers[0])).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { ref holder, .. }) if holder.0 == winners[0]),
        "a losing replica cannot post the job: {refused:?}"
    );
    store
        .record_dispatch(job.id, &posted(&winners[0]))
        .await
        .unwrap();

    assert!(
        store
            .claim_queued(
                JobId::new(),
                &backend,
                &PromptId::from("prompt-2"),
                &lease(),
                at(6)
            )
            .await
            .unwrap()
            .is_none(),
        "an unknown job is not claimed"
    );
}
