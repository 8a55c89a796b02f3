//! Suite cases for job rows, transitions, events, idempotency and listing.

use std::collections::BTreeSet;
use std::sync::Arc;

use darkroom::jobs::model::{
    BackendId, EventKind, JobError, JobId, JobState, JobStatus, Progress, PromptId, WorkflowFormat,
};
use darkroom::store::{Dispatch, JobCursor, JobQuery, NewEvent, Store, StoreError, Transition};
use serde_json::json;
use time::Duration;

use super::{advance, at, create, lease, new_job, replica};

pub async fn created_job_reads_back_with_its_first_event(store: Arc<dyn Store>) {
    let mut new = new_job(0);
    new.template = Some("portrait".into());
    new.parameters = Some(json!({"prompt": "a lighthouse at dusk", "seed": 42}));
    new.original_workflow = json!({"nodes": [], "links": []});
    new.original_format = WorkflowFormat::Save;
    new.owner = Some("key-1".into());
    new.keep_previews = true;

    let created = create(&store, new.clone()).await;
    let job = store.job(new.id).await.unwrap().expect("job is stored");
    assert_eq!(job, created.job);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.workflow, new.workflow);
    assert_eq!(job.original_workflow, new.original_workflow);
    assert_eq!(job.original_format, WorkflowFormat::Save);
    assert_eq!(job.parameters, new.parameters);
    // What a client submitted is shown back as sent, key order included.
    for (stored, sent) in [
        (&job.original_workflow, &new.original_workflow),
        (
            &job.parameters.clone().unwrap(),
            &new.parameters.clone().unwrap(),
        ),
    ] {
        assert_eq!(stored.to_string(), sent.to_string());
    }
    assert_eq!(
        (job.created_at, job.expires_at),
        (new.created_at, new.expires_at)
    );
    assert_eq!((job.attempt, job.keep_previews), (0, true));
    assert!(job.prompt_id.is_none() && job.started_at.is_none() && job.progress.is_none());

    assert_eq!(created.event.seq, 1);
    assert_eq!(created.event.kind, EventKind::Status);
    assert_eq!(created.event.payload["status"], json!("queued"));
    assert!(store.job(JobId::new()).await.unwrap().is_none());
}

pub async fn transitions_follow_the_state_machine_with_compare_and_set(store: Arc<dyn Store>) {
    let created = create(&store, new_job(0)).await;
    let id = created.job.id;

    let illegal = store.transition(Transition::new(
        id,
        JobState::Queued,
        JobState::Succeeded,
        at(1),
    ));
    assert!(matches!(
        illegal.await,
        Err(StoreError::IllegalTransition { .. })
    ));

    let stale = store.transition(Transition::new(
        id,
        JobState::Running,
        JobState::Collecting,
        at(1),
    ));
    match stale.await {
        Err(StoreError::StateConflict {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (JobState::Running, JobState::Queued));
        }
        other => panic!("expected a state conflict, got {other:?}"),
    }

    let running = advance(&store, &created, &[JobState::Dispatched, JobState::Running]).await;
    assert_eq!(running.job.state, JobState::Running);
    assert_eq!(running.job.attempt, 1);
    assert!(running.job.dispatched_at.is_some() && running.job.started_at.is_some());
    assert_eq!(running.event.payload["status"], json!("running"));
    assert_eq!(running.event.payload["state"], json!("running"));

    let error = JobError {
        code: "node_execution_error".into(),
        message: "out of memory".into(),
        node_id: Some("3".into()),
        class_type: Some("KSampler".into()),
        exception_type: Some("torch.OutOfMemoryError".into()),
        traceback: None,
    };
    let failed =
        Transition::new(id, JobState::Running, JobState::Failed, at(5)).with_error(error.clone());
    let failed = store.transition(failed).await.unwrap();
    assert_eq!(failed.job.error, Some(error));
    assert_eq!(failed.job.completed_at, Some(at(5)));
    assert_eq!(failed.job.state.public_status(), JobStatus::Failed);
    assert_eq!(failed.event.payload["error"]["node_id"], json!("3"));

    let missing = store.transition(Transition::new(
        JobId::new(),
        JobState::Queued,
        JobState::Canceled,
        at(1),
    ));
    assert!(matches!(missing.await, Err(StoreError::JobNotFound(_))));
}

pub async fn racing_transitions_have_exactly_one_winner(store: Arc<dyn Store>) {
    let created = create(&store, new_job(0)).await;
    let targets = [
        JobState::Canceled,
        JobState::Dispatched,
        JobState::Failed,
        JobState::Canceling,
    ];

    let mut racers = Vec::new();
    for round in 0..4 {
        for target in targets {
            let store = store.clone();
            let change = Transition::new(created.job.id, JobState::Queued, target, at(round));
            racers.push(tokio::spawn(async move { store.transition(change).await }));
        }
    }

    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(change) => winners.push(change.job.state),
            Err(StoreError::StateConflict {
                expected: JobState::Queued,
                ..
            }) => {}
            Err(other) => panic!("a loser must see a state conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one transition wins: {winners:?}");

    let job = store.job(created.job.id).await.unwrap().unwrap();
    assert_eq!(job.state, winners[0]);
    let events = store.events_after(job.id, 0, 100).await.unwrap();
    assert_eq!(
        events.len(),
        2,
        "one creation event and one winning transition"
    );
}

pub async fn events_are_numbered_per_job_and_resume_after_a_sequence(store: Arc<dyn Store>) {
    let first = create(&store, new_job(0)).await;
    let other = create(&store, new_job(1)).await;
    for line in 0..5 {
        let log = NewEvent {
            kind: EventKind::Log,
            payload: json!({"level": "info", "message": line}),
            at: at(line),
        };
        store.append_event(first.job.id, log).await.unwrap();
    }
    let other_log = NewEvent {
        kind: EventKind::Log,
        payload: json!({"message": "other"}),
        at: at(9),
    };
    assert_eq!(
        store
            .append_event(other.job.id, other_log)
            .await
            .unwrap()
            .seq,
        2
    );

    let all = store.events_after(first.job.id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(all.iter().all(|event| event.job_id == first.job.id));
    assert_eq!(all[3].payload["message"], json!(2));
    assert_eq!(all[3].at, at(2));

    let resumed = store.events_after(first.job.id, 4, 100).await.unwrap();
    assert_eq!(
        resumed.iter().map(|event| event.seq).collect::<Vec<_>>(),
        vec![5, 6]
    );
    let limited = store.events_after(first.job.id, 1, 2).await.unwrap();
    assert_eq!(
        limited.iter().map(|event| event.seq).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(
        store
            .events_after(first.job.id, 6, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let orphan = NewEvent {
        kind: EventKind::Log,
        payload: json!({}),
        at: at(0),
    };
    assert!(matches!(
        store.append_event(JobId::new(), orphan).await,
        Err(StoreError::JobNotFound(_))
    ));
}

pub async fn idempotency_key_is_single_use_per_owner_for_a_day(store: Arc<dyn Store>) {
    let keyed = |minutes: i64, owner: Option<&str>| {
        let mut job = new_job(minutes);
        job.idempotency_key = Some("5b6e0c7a-key".into());
        job.owner = owner.map(str::to_owned);
        job
    };

    let first = create(&store, keyed(0, Some("alice"))).await;
    assert_eq!(first.job.idempotency_key.as_deref(), Some("5b6e0c7a-key"));

    let reused = store.create_job(keyed(1, Some("alice"))).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyReused { ref key }) if key == "5b6e0c7a-key")
    );
    let almost_a_day = store.create_job(keyed(24 * 60 - 1, Some("alice"))).await;
    assert!(matches!(
        almost_a_day,
        Err(StoreError::IdempotencyKeyReused { .. })
    ));

    create(&store, keyed(2, Some("bob"))).await;
    create(&store, keyed(3, None)).await;
    assert!(store.create_job(keyed(4, None)).await.is_err());

    create(&store, keyed(24 * 60, Some("alice"))).await;
    let listed = store.list_jobs(&JobQuery::default()).await.unwrap();
    assert_eq!(listed.total, 4, "refused submissions created no job");
}

pub async fn list_filters_by_state_owner_and_template_and_pages_newest_first(
    store: Arc<dyn Store>,
) {
    let mut ids = Vec::new();
    for minutes in 0..9 {
        let mut job = new_job(minutes);
        job.owner = Some(if minutes % 2 == 0 { "even" } else { "odd" }.into());
        job.template = (minutes < 3).then(|| "portrait".into());
        let created = create(&store, job).await;
        if minutes % 3 == 0 {
            advance(&store, &created, &[JobState::Canceled]).await;
        }
        ids.push(created.job.id);
    }
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();

    let everything = store.list_jobs(&JobQuery::default()).await.unwrap();
    assert_eq!(everything.total, 9);
    assert_eq!(
        everything.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        newest_first
    );
    assert!(everything.next.is_none());

    let query = |states: Vec<JobState>, owner: Option<&str>, template: Option<&str>| JobQuery {
        states,
        owner: owner.map(str::to_owned),
        template: template.map(str::to_owned),
        ..JobQuery::default()
    };
    let canceled = store
        .list_jobs(&query(vec![JobState::Canceled], None, None))
        .await
        .unwrap();
    assert_eq!(canceled.total, 3);
    let waiting_or_done = query(
        vec![JobState::Queued, JobState::Canceled],
        Some("even"),
        None,
    );
    assert_eq!(store.list_jobs(&waiting_or_done).await.unwrap().total, 5);
    let portraits = store
        .list_jobs(&query(vec![], Some("odd"), Some("portrait")))
        .await
        .unwrap();
    assert_eq!(
        portraits.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );

    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page_query = JobQuery {
            limit: 4,
            after: cursor,
            ..JobQuery::default()
        };
        let page = store.list_jobs(&page_query).await.unwrap();
        assert_eq!(page.total, 9);
        paged.extend(page.jobs.iter().map(|job| job.id));
        let Some(next) = page.next else { break };
        let round_trip: JobCursor = next.to_string().parse().unwrap();
        cursor = Some(round_trip);
    }
    assert_eq!(
        paged, newest_first,
        "cursor paging visits every job once, in order"
    );

    let offset = JobQuery {
        limit: 2,
        offset: 3,
        ..JobQuery::default()
    };
    let page = store.list_jobs(&offset).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        newest_first[3..5].to_vec()
    );
    let unique: BTreeSet<JobId> = paged.into_iter().collect();
    assert_eq!(unique.len(), 9);
}

pub async fn dispatch_and_progress_are_recorded_for_the_current_attempt(store: Arc<dyn Store>) {
    let created = create(&store, new_job(0)).await;
    let progress = Progress {
        value: 0.5,
        nodes_done: 1,
        nodes_total: 2,
        ..Progress::default()
    };
    let too_early = store
        .update_progress(created.job.id, &progress, &replica(), at(1))
        .await;
    assert!(matches!(
        too_early,
        Err(StoreError::JobNotActive {
            state: JobState::Queued,
            ..
        })
    ));

    let dispatched = advance(&store, &created, &[JobState::Dispatched]).await;
    let dispatch = Dispatch {
        backend_id: BackendId::from("gpu-0"),
        prompt_id: PromptId::from("c3f0a0d2-prompt"),
        attempt: dispatched.job.attempt,
        holder: replica(),
    };
    let job = store
        .record_dispatch(created.job.id, &dispatch)
        .await
        .unwrap();
    assert_eq!(job.backend_id, Some(BackendId::from("gpu-0")));
    assert_eq!(job.prompt_id, Some(PromptId::from("c3f0a0d2-prompt")));

    let stale = Dispatch {
        attempt: 7,
        ..dispatch.clone()
    };
    assert!(matches!(
        store.record_dispatch(created.job.id, &stale).await,
        Err(StoreError::StaleAttempt {
            expected: 7,
            actual: 1,
            ..
        })
    ));

    let progress = Progress {
        value: 0.42,
        nodes_done: 11,
        nodes_total: 31,
        current_node: Some("12".into()),
        current_node_class: Some("KSampler".into()),
        step: Some(21),
        steps: Some(50),
        message: Some("KSampler 21/50".into()),
    };
    let event = store
        .update_progress(created.job.id, &progress, &replica(), at(2))
        .await
        .unwrap();
    assert_eq!(event.kind, EventKind::Progress);
    assert_eq!(event.payload["current_node_class"], json!("KSampler"));
    let job = store.job(created.job.id).await.unwrap().unwrap();
    assert_eq!(job.progress, Some(progress.clone()));

    let canceled = advance(
        &store,
        &dispatched,
        &[JobState::Canceling, JobState::Canceled],
    )
    .await;
    assert!(matches!(
        store.record_dispatch(created.job.id, &dispatch).await,
        Err(StoreError::StateConflict {
            actual: JobState::Canceled,
            ..
        })
    ));
    let late = store
        .update_progress(canceled.job.id, &progress, &replica(), at(3))
        .await;
    assert!(matches!(
        late,
        Err(StoreError::JobNotActive {
            state: JobState::Canceled,
            ..
        })
    ));
}

pub async fn requeue_clears_the_abandoned_attempt(store: Arc<dyn Store>) {
    let created = create(&store, new_job(0)).await;
    let backend = BackendId::from("gpu-0");
    let claimed = store
        .claim_next_queued(&backend, &lease(), at(1))
        .await
        .unwrap()
        .unwrap();
    let dispatch = Dispatch {
        backend_id: backend.clone(),
        prompt_id: "p-1".into(),
        attempt: 1,
        holder: replica(),
    };
    store
        .record_dispatch(created.job.id, &dispatch)
        .await
        .unwrap();
    let running = advance(&store, &claimed, &[JobState::Running]).await;

    let requeued = store
        .transition(Transition::new(
            running.job.id,
            JobState::Running,
            JobState::Queued,
            at(2),
        ))
        .await
        .unwrap();
    assert_eq!(requeued.job.state, JobState::Queued);
    assert_eq!(
        requeued.job.attempt, 1,
        "the attempt count survives a requeue"
    );
    assert!(requeued.job.prompt_id.is_none() && requeued.job.backend_id.is_none());
    assert!(requeued.job.dispatched_at.is_none() && requeued.job.started_at.is_none());

    let again = store
        .claim_next_queued(&backend, &lease(), at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.job.id, again.job.attempt), (created.job.id, 2));
    assert_eq!(
        again.job.expires_at,
        created.job.expires_at + Duration::ZERO
    );
}
