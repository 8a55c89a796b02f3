//! The behaviour every `Store` engine must show, written once against
//! `Arc<dyn Store>`. An engine's test file opens a store per test and expands
//! `store_suite!` with its constructor; see `tests/store.rs`.

pub mod assets;
pub mod jobs;
pub mod keys;
pub mod leases;
pub mod queue;
pub mod status;

use std::any::Any;
use std::sync::Arc;

use darkroom::jobs::model::{JobState, ReplicaId};
use darkroom::store::{JobChange, Lease, NewJob, Store, Transition};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A store under test and whatever must outlive it (a temp folder).
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub _guard: Option<Box<dyn Any + Send>>,
}

/// Expands one `#[tokio::test]` per suite case, each on a fresh store from
/// `$open`, an `async fn(test_name) -> Option<Harness>` (`None`: the engine
/// is skipped, and `$open` said so).
#[macro_export]
macro_rules! store_suite {
    ($open:path) => {
        $crate::store_suite!(@cases $open;
            jobs::created_job_reads_back_with_its_first_event,
            jobs::transitions_follow_the_state_machine_with_compare_and_set,
            jobs::racing_transitions_have_exactly_one_winner,
            jobs::events_are_numbered_per_job_and_resume_after_a_sequence,
            jobs::idempotency_key_is_single_use_per_owner_for_a_day,
            jobs::list_filters_by_state_owner_and_template_and_pages_newest_first,
            jobs::dispatch_and_progress_are_recorded_for_the_current_attempt,
            jobs::requeue_clears_the_abandoned_attempt,
            queue::queue_positions_follow_creation_order_and_claims_take_the_head,
            queue::racing_claims_never_share_a_job,
            queue::queue_bound_refuses_and_releases_the_idempotency_key,
            queue::unfinished_jobs_are_every_non_final_job,
            queue::candidates_are_each_owners_first_jobs_by_priority_then_age,
            queue::a_chosen_job_is_claimed_once_and_only_while_queued,
            status::positions_and_bounds_stay_exact_through_claims_cancels_and_requeues,
            status::a_status_read_shows_every_committed_change,
            status::submissions_together_commit_apart_from_the_ones_refused,
            assets::outputs_are_stored_with_their_asset_and_event,
            assets::an_output_refused_halfway_leaves_nothing_and_writes_go_on,
            assets::a_runs_last_steps_commit_together_and_stop_where_one_does_not_match,
            assets::assets_in_use_are_not_deleted_and_shared_blobs_outlive_one_asset,
            assets::sweep_expires_final_jobs_and_reports_orphaned_blobs,
            leases::a_backend_lease_has_one_holder_until_it_lapses,
            leases::jobs_are_taken_over_once_their_lease_lapses_and_the_old_holders_writes_are_refused,
            leases::requeued_and_ended_jobs_are_nobodys_and_a_release_hands_jobs_over_at_once,
            keys::keys_are_found_by_hash_while_live_and_revoked_by_id_or_name,
            keys::an_owner_may_hold_only_its_bound_of_queued_jobs,
        );
    };
    (@cases $open:path; $($case:ident :: $name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(harness) = $open(stringify!($name)).await else {
                    return;
                };
                $crate::store_suite::$case::$name(harness.store.clone()).await;
                drop(harness);
            }
        )+
    };
}

/// Every suite time is relative to one fixed instant: the store never reads
/// the clock, so tests need no sleeps.
pub fn at(minutes: i64) -> OffsetDateTime {
    datetime!(2026-01-01 00:00 UTC) + Duration::minutes(minutes)
}

/// The replica most cases act as.
pub fn replica() -> ReplicaId {
    ReplicaId::from("replica-a")
}

/// A lease for `holder` until `minutes`.
pub fn lease_until(holder: &str, minutes: i64) -> Lease {
    Lease {
        holder: ReplicaId::from(holder),
        expires_at: at(minutes),
    }
}

/// The lease most cases claim with: `replica()`'s, for a long while.
pub fn lease() -> Lease {
    lease_until("replica-a", 10_000)
}

pub fn new_job(minutes: i64) -> NewJob {
    let workflow = json!({"3": {"class_type": "KSampler", "inputs": {"seed": minutes}}});
    NewJob::api(workflow, at(minutes), at(minutes) + Duration::days(7))
}

pub async fn create(store: &Arc<dyn Store>, job: NewJob) -> JobChange {
    store.create_job(job).await.expect("create job")
}

pub async fn advance(store: &Arc<dyn Store>, change: &JobChange, path: &[JobState]) -> JobChange {
    let mut current = change.clone();
    for (step, next) in path.iter().enumerate() {
        let minutes = i64::try_from(step).unwrap_or_default() + 100;
        let transition = Transition::new(current.job.id, current.job.state, *next, at(minutes));
        current = store.transition(transition).await.expect("transition");
    }
    current
}
