//! Choosing which queued jobs go to which backends now: a pure function of the queue's
//! candidates and the backends' live status, so every rule is tested without a database
//! or a ComfyUI.
//!
//! The rules, in order:
//! - Priority first: a job of higher priority is placed before any of lower priority.
//! - Fair sharing within a priority: the next job comes from the owner with the fewest
//!   jobs on backends now (anonymous jobs are one owner), ties to the oldest job. One
//!   owner's thousand jobs therefore take turns with another's one.
//! - A job goes only to a backend that takes work (driven by this replica, up, probed, not
//!   draining) and has its node classes and model files.
//! - Among those with room, prefer one that ran the job's models last (they are likely
//!   still loaded), then the least loaded for its weight, then the heavier, then by name.
//! - A job that outranks every prompt waiting inside a full backend's ComfyUI may take
//!   one place beyond the backend's limit and is posted to the front of its queue, so a
//!   newcomer waits for the run in progress and not for a flood queued before it.
//!
//! A job no backend can take now is passed over, and later jobs are tried: no capable
//! backend idles because the head of the queue waits for another.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::board::{BackendStatus, Phase};
use crate::jobs::model::{BackendId, JobId};
use crate::store::QueuedJob;

/// One decision: post `job_id` to `backend`, at the front of its ComfyUI queue or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub job_id: JobId,
    pub owner: Option<String>,
    pub priority: i32,
    pub backend: BackendId,
    pub front: bool,
}

/// A backend as the planner sees it while it fills places.
struct Place<'a> {
    status: &'a BackendStatus,
    used: usize,
    /// Priority and owner of each prompt not yet running there.
    waiting: Vec<(i32, Option<String>)>,
}

impl Place<'_> {
    fn has_room(&self) -> bool {
        self.used < self.status.max_prompts
    }

    fn can_overflow(&self) -> bool {
        self.used == self.status.max_prompts && !self.waiting.is_empty()
    }

    fn affinity(&self, job: &QueuedJob) -> usize {
        let wanted = job.requirements.model_files();
        self.status
            .loaded
            .iter()
            .filter(|model| wanted.contains(model.as_str()))
            .count()
    }
}

/// Places as many candidates as the backends take now, in the order they should be
/// posted. `candidates` come in queue order (priority, then age).
pub fn plan(candidates: &[QueuedJob], backends: &[BackendStatus]) -> Vec<Assignment> {
    let mut in_flight: HashMap<Option<String>, usize> = HashMap::new();
    let mut places: Vec<Place<'_>> = Vec::new();
    for status in backends {
        for run in &status.runs {
            *in_flight.entry(run.owner.clone()).or_default() += 1;
        }
        let waiting = status
            .runs
            .iter()
            .filter(|run| run.phase != Phase::Running)
            .map(|run| (run.priority, run.owner.clone()))
            .collect();
        places.push(Place {
            status,
            used: status.runs.len(),
            waiting,
        });
    }
    if !places.iter().any(|place| place.status.accepting()) {
        return Vec::new();
    }

    let mut queues: BTreeMap<Option<String>, VecDeque<&QueuedJob>> = BTreeMap::new();
    for job in candidates {
        queues.entry(job.owner.clone()).or_default().push_back(job);
    }

    let mut assignments = Vec::new();
    while let Some(job) = next_job(&mut queues, &in_flight) {
        let Some((index, front)) = choose_place(job, &places, &in_flight) else {
            continue;
        };
        let place = &mut places[index];
        place.used += 1;
        place.waiting.push((job.priority, job.owner.clone()));
        *in_flight.entry(job.owner.clone()).or_default() += 1;
        assignments.push(Assignment {
            job_id: job.id,
            owner: job.owner.clone(),
            priority: job.priority,
            backend: place.status.id.clone(),
            front,
        });
        if !places
            .iter()
            .any(|place| place.status.accepting() && (place.has_room() || place.can_overflow()))
        {
            break;
        }
    }
    assignments
}

/// Takes the next job by priority, then the owner's share, then age.
fn next_job<'a>(
    queues: &mut BTreeMap<Option<String>, VecDeque<&'a QueuedJob>>,
    in_flight: &HashMap<Option<String>, usize>,
) -> Option<&'a QueuedJob> {
    let owner = queues
        .iter()
        .filter_map(|(owner, queue)| Some((owner, *queue.front()?)))
        .min_by(|(left_owner, left), (right_owner, right)| {
            let share = |owner: &Option<String>| in_flight.get(owner).copied().unwrap_or(0);
            right
                .priority
                .cmp(&left.priority)
                .then(share(left_owner).cmp(&share(right_owner)))
                .then(left.created_at.cmp(&right.created_at))
                .then(left.id.cmp(&right.id))
        })
        .map(|(owner, _)| owner.clone())?;
    let queue = queues.get_mut(&owner)?;
    let job = queue.pop_front();
    if queue.is_empty() {
        queues.remove(&owner);
    }
    job
}

/// The place for `job` and whether it goes to the front of that ComfyUI's queue.
///
/// Room and rank are weighed before the job's requirements: with every backend full, as
/// under a deep queue, each pass meets dozens of candidates that no backend can take, and
/// matching their node classes and models against a backend's costs more than the
/// answer, which is no.
fn choose_place(
    job: &QueuedJob,
    places: &[Place<'_>],
    in_flight: &HashMap<Option<String>, usize>,
) -> Option<(usize, bool)> {
    let outranks_all = |place: &Place<'_>| {
        !place.waiting.is_empty()
            && place
                .waiting
                .iter()
                .all(|(priority, owner)| outranks(job, *priority, owner, in_flight))
    };
    let capable = |index: &usize| {
        let place = &places[*index];
        place.status.accepting()
            && place
                .status
                .capabilities
                .as_ref()
                .is_some_and(|capabilities| capabilities.missing(&job.requirements).is_none())
    };

    let with_room = (0..places.len())
        .filter(|&index| places[index].has_room())
        .filter(capable);
    if let Some(index) = best(job, places, with_room) {
        return Some((index, outranks_all(&places[index])));
    }
    let overflow = (0..places.len())
        .filter(|&index| places[index].can_overflow() && outranks_all(&places[index]))
        .filter(capable);
    best(job, places, overflow).map(|index| (index, true))
}

/// Whether `job` should run before a waiting prompt of `owner` at `priority`: it is more
/// urgent, or as urgent while its owner, even with it, has fewer jobs on backends.
fn outranks(
    job: &QueuedJob,
    priority: i32,
    owner: &Option<String>,
    in_flight: &HashMap<Option<String>, usize>,
) -> bool {
    let share = |owner: &Option<String>| in_flight.get(owner).copied().unwrap_or(0);
    job.priority > priority || (job.priority == priority && share(&job.owner) + 1 < share(owner))
}

/// The preferred place among `indexes`: loaded models, then load for weight, then weight,
/// then name.
fn best(
    job: &QueuedJob,
    places: &[Place<'_>],
    indexes: impl Iterator<Item = usize>,
) -> Option<usize> {
    indexes.min_by(|&left, &right| {
        let (left, right) = (&places[left], &places[right]);
        right
            .affinity(job)
            .cmp(&left.affinity(job))
            .then(
                (left.used as u64 * u64::from(right.status.weight))
                    .cmp(&(right.used as u64 * u64::from(left.status.weight))),
            )
            .then(right.status.weight.cmp(&left.status.weight))
            .then(left.status.id.cmp(&right.status.id))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};
    use time::OffsetDateTime;

    use super::*;
    use crate::jobs::requirements::Requirements;
    use crate::scheduler::board::{Health, RunSlot};
    use crate::scheduler::capability::Capabilities;

    fn info(classes: &[&str], checkpoints: &[&str]) -> Arc<Capabilities> {
        let mut info = serde_json::Map::new();
        for class in classes {
            info.insert((*class).to_owned(), json!({"input": {"required": {}}}));
        }
        info.insert(
            "CheckpointLoaderSimple".to_owned(),
            json!({"input": {"required": {"ckpt_name": [checkpoints, {}]}}}),
        );
        let info = serde_json::from_value(Value::Object(info)).unwrap_or_default();
        Arc::new(Capabilities::from_object_info(&info))
    }

    fn backend(name: &str, max_prompts: usize, classes: &[&str]) -> BackendStatus {
        let mut status = BackendStatus::new(name.into(), 1, Vec::new(), max_prompts);
        status.driven = true;
        status.health = Health::Up;
        status.probed = true;
        status.capabilities = Some(info(classes, &["a.safetensors", "b.safetensors"]));
        status
    }

    fn job(owner: Option<&str>, seconds: i64, graph: Value) -> QueuedJob {
        QueuedJob {
            id: JobId::new(),
            owner: owner.map(str::to_owned),
            priority: 0,
            created_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seconds),
            requirements: std::sync::Arc::new(Requirements::of(&graph)),
        }
    }

    fn plain() -> Value {
        json!({"1": {"class_type": "SaveImage", "inputs": {}}})
    }

    fn slot(owner: Option<&str>, phase: Phase) -> RunSlot {
        RunSlot {
            job_id: JobId::new(),
            owner: owner.map(str::to_owned),
            priority: 0,
            phase,
        }
    }

    #[test]
    fn a_job_goes_only_to_a_backend_with_its_node_class() {
        let backends = [
            backend("a", 2, &["SaveImage"]),
            backend("b", 2, &["SaveImage", "Special"]),
        ];
        let special = job(
            None,
            0,
            json!({"1": {"class_type": "Special", "inputs": {}}}),
        );
        let assignments = plan(std::slice::from_ref(&special), &backends);
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].backend, BackendId::from("b"));
    }

    #[test]
    fn draining_down_and_unprobed_backends_take_nothing() {
        let mut draining = backend("a", 2, &["SaveImage"]);
        draining.draining = true;
        let mut down = backend("b", 2, &["SaveImage"]);
        down.health = Health::Down;
        let mut unprobed = backend("c", 2, &["SaveImage"]);
        unprobed.probed = false;
        let jobs = [job(None, 0, plain())];
        assert!(plan(&jobs, &[draining, down, unprobed]).is_empty());
    }

    #[test]
    fn a_backend_another_replica_drives_takes_nothing_from_this_one() {
        let mut elsewhere = backend("a", 2, &["SaveImage"]);
        elsewhere.driven = false;
        let here = backend("b", 2, &["SaveImage"]);
        let jobs = [job(None, 0, plain()), job(None, 1, plain())];
        let placed = plan(&jobs, &[elsewhere, here]);
        assert_eq!(placed.len(), 2);
        assert!(placed.iter().all(|assignment| assignment.backend.0 == "b"));
    }

    #[test]
    fn work_is_spread_by_load_and_bounded_by_max_prompts() {
        let backends = [
            backend("a", 2, &["SaveImage"]),
            backend("b", 2, &["SaveImage"]),
        ];
        let jobs: Vec<_> = (0..10).map(|second| job(None, second, plain())).collect();
        let assignments = plan(&jobs, &backends);
        let on = |name: &str| {
            assignments
                .iter()
                .filter(|assignment| assignment.backend == BackendId::from(name))
                .count()
        };
        assert_eq!((on("a"), on("b")), (2, 2));
        // Oldest first, and nobody jumps a queue of one owner.
        assert_eq!(assignments[0].job_id, jobs[0].id);
        assert!(assignments.iter().all(|assignment| !assignment.front));
    }

    #[test]
    fn a_backend_of_weight_two_gets_twice_the_prompts() {
        let mut heavy = backend("heavy", 4, &["SaveImage"]);
        heavy.weight = 2;
        let backends = [backend("light", 4, &["SaveImage"]), heavy];
        let jobs: Vec<_> = (0..6).map(|second| job(None, second, plain())).collect();
        let on: Vec<_> = plan(&jobs, &backends)
            .into_iter()
            .map(|assignment| assignment.backend.0)
            .collect();
        // Load for weight: two prompts on the heavy one weigh as one on the light one.
        assert_eq!(on, ["heavy", "light", "heavy", "heavy", "light", "heavy"]);
    }

    #[test]
    fn the_backend_with_the_checkpoint_loaded_is_preferred() {
        let mut warm = backend("z", 2, &["SaveImage"]);
        warm.loaded = vec!["b.safetensors".to_owned()];
        let backends = [backend("a", 2, &["SaveImage"]), warm];
        let wants_b = job(
            None,
            0,
            json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}}}),
        );
        let assignments = plan(&[wants_b], &backends);
        assert_eq!(assignments[0].backend, BackendId::from("z"));
    }

    #[test]
    fn a_job_needing_a_missing_model_waits() {
        let backends = [backend("a", 2, &["SaveImage"])];
        let wants_c = job(
            None,
            0,
            json!({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "c.safetensors"}}}),
        );
        let other = job(None, 1, plain());
        let assignments = plan(&[wants_c, other.clone()], &backends);
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].job_id, other.id);
    }

    #[test]
    fn owners_take_turns_and_a_newcomer_jumps_a_flood_waiting_in_comfyui() {
        let mut busy = backend("a", 2, &["SaveImage"]);
        busy.runs = vec![
            slot(Some("flood"), Phase::Running),
            slot(Some("flood"), Phase::Waiting),
        ];
        let mut jobs: Vec<_> = (0..5)
            .map(|second| job(Some("flood"), second, plain()))
            .collect();
        let single = job(Some("single"), 100, plain());
        jobs.push(single.clone());

        let assignments = plan(&jobs, &[busy]);
        assert_eq!(assignments.len(), 1, "{assignments:?}");
        assert_eq!(assignments[0].job_id, single.id);
        assert!(assignments[0].front);
    }

    #[test]
    fn one_owner_never_overflows_its_own_queue() {
        let mut busy = backend("a", 1, &["SaveImage"]);
        busy.runs = vec![slot(None, Phase::Running)];
        let jobs = [job(None, 0, plain())];
        assert!(plan(&jobs, &[busy.clone()]).is_empty());

        busy.max_prompts = 2;
        busy.runs.push(slot(None, Phase::Waiting));
        assert!(plan(&jobs, &[busy]).is_empty());
    }

    #[test]
    fn fair_share_alternates_owners_with_free_room() {
        let backends = [backend("a", 4, &["SaveImage"])];
        let mut jobs: Vec<_> = (0..6)
            .map(|second| job(Some("x"), second, plain()))
            .collect();
        jobs.push(job(Some("y"), 50, plain()));
        jobs.push(job(Some("y"), 51, plain()));
        let owners: Vec<_> = plan(&jobs, &backends)
            .into_iter()
            .map(|assignment| assignment.owner.unwrap_or_default())
            .collect();
        assert_eq!(owners, ["x", "y", "x", "y"]);
    }

    #[test]
    fn higher_priority_goes_first_whoever_owns_it() {
        let backends = [backend("a", 1, &["SaveImage"])];
        let mut urgent = job(Some("x"), 10, plain());
        urgent.priority = 5;
        let jobs = [job(Some("y"), 0, plain()), urgent.clone()];
        let assignments = plan(&jobs, &backends);
        assert_eq!(assignments[0].job_id, urgent.id);
    }
}
