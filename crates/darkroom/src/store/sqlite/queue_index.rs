//! The queue of the SQLite engine, held in memory: its length, each owner's share of it
//! and each job's place in it, each in O(log n) instead of a `COUNT` over the queued rows.
//!
//! It mirrors the `queued` rows of the one process that owns the database: loaded at open,
//! then changed only after a commit that moved a job into or out of `queued`, while that
//! commit still holds the store's writer lock, so it never runs ahead of or behind the
//! database for another writer. It must not decide anything the database has not
//! committed.
//!
//! Queue order is `(priority descending, created_at, id)`, as `sql/queue.rs` orders it.
//! Priorities are few (the API takes -100..=100), so the queue is one sorted deque per
//! priority: a job's place is the length of the deques of higher priorities plus its
//! index, found by binary search, in its own. New jobs are the youngest of their priority
//! and claims take the oldest, so both ends move in O(1); an insert or removal in the
//! middle (a requeue, a cancel) shifts the shorter side of one deque. A balanced
//! order-statistics tree would bound that too, but no well-kept crate offers one, and
//! these deques are simpler to trust.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::jobs::model::{JobId, JobState, JobSummary};
use crate::jobs::requirements::Requirements;
use crate::store::rows::to_micros;

/// A job's key within its priority: older first, then by id, as the SQL orders them
/// (`JobId` orders as its canonical text does).
type Place = (i64, JobId);

/// What the index remembers of a queued job: where it is, whose it is, and (once known)
/// what it needs, which never changes, so the scheduler's candidates need no query.
#[derive(Debug, Clone)]
struct Member {
    priority: i32,
    place: Place,
    owner: Option<String>,
    /// Unknown for a job loaded at open or put back in the queue, until first asked for.
    requirements: Option<Arc<Requirements>>,
}

/// A queued job offered to the scheduler, as the index knows it.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub id: JobId,
    pub owner: Option<String>,
    pub priority: i32,
    pub created_at: i64,
    pub requirements: Option<Arc<Requirements>>,
}

/// The queued jobs in queue order, counted per owner.
#[derive(Debug, Default)]
pub(super) struct QueueIndex {
    by_priority: BTreeMap<Reverse<i32>, VecDeque<Place>>,
    members: HashMap<JobId, Member>,
    per_owner: HashMap<String, u64>,
    anonymous: u64,
}

impl QueueIndex {
    /// Records a committed job: a queued one joins the queue (once), any other leaves it.
    pub(super) fn apply(&mut self, job: &JobSummary) {
        if job.state == JobState::Queued {
            self.insert(
                job.id,
                job.priority,
                to_micros(job.created_at),
                job.owner.clone(),
                None,
            );
        } else {
            self.remove(job.id);
        }
    }

    /// Adds a queued job; a job already in the queue stays where it is.
    pub(super) fn insert(
        &mut self,
        id: JobId,
        priority: i32,
        created_at: i64,
        owner: Option<String>,
        requirements: Option<Arc<Requirements>>,
    ) {
        if self.members.contains_key(&id) {
            return;
        }
        let place = (created_at, id);
        let queue = self.by_priority.entry(Reverse(priority)).or_default();
        // The common case, a job younger than every other of its priority, appends.
        let index = match queue.back() {
            Some(last) if *last > place => queue.partition_point(|other| *other < place),
            _ => queue.len(),
        };
        queue.insert(index, place);
        match &owner {
            Some(owner) => *self.per_owner.entry(owner.clone()).or_default() += 1,
            None => self.anonymous += 1,
        }
        self.members.insert(
            id,
            Member {
                priority,
                place,
                owner,
                requirements,
            },
        );
    }

    /// Takes a job out of the queue; a job not in it is ignored.
    pub(super) fn remove(&mut self, id: JobId) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        if let Some(queue) = self.by_priority.get_mut(&Reverse(member.priority)) {
            if let Ok(index) = queue.binary_search(&member.place) {
                queue.remove(index);
            }
            if queue.is_empty() {
                self.by_priority.remove(&Reverse(member.priority));
            }
        }
        match member.owner {
            Some(owner) => {
                if let Some(count) = self.per_owner.get_mut(&owner) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_owner.remove(&owner);
                    }
                }
            }
            None => self.anonymous -= 1,
        }
    }

    /// Records what a queued job needs, read from the database.
    pub(super) fn learn(&mut self, id: JobId, requirements: Arc<Requirements>) {
        if let Some(member) = self.members.get_mut(&id) {
            member.requirements = Some(requirements);
        }
    }

    /// Up to `per_owner` queued jobs of each owner (the anonymous ones count as one
    /// owner), each owner's in queue order, all of them in queue order: what
    /// `sql/queue.rs` `candidates` reads. Stops once every owner has its share.
    pub(super) fn candidates(&self, per_owner: u32) -> Vec<Candidate> {
        let per_owner = per_owner as usize;
        let owners = self.per_owner.len() + usize::from(self.anonymous > 0);
        let mut taken: HashMap<Option<&str>, usize> = HashMap::new();
        let mut full_owners = 0;
        let mut candidates =
            Vec::with_capacity(per_owner.saturating_mul(owners).min(self.members.len()));
        let in_order = self.by_priority.values().flatten();
        for (_, id) in in_order {
            if full_owners == owners {
                break;
            }
            let Some(member) = self.members.get(id) else {
                continue;
            };
            let count = taken.entry(member.owner.as_deref()).or_default();
            if *count == per_owner {
                continue;
            }
            *count += 1;
            if *count == per_owner {
                full_owners += 1;
            }
            candidates.push(Candidate {
                id: *id,
                owner: member.owner.clone(),
                priority: member.priority,
                created_at: member.place.0,
                requirements: member.requirements.clone(),
            });
        }
        candidates
    }

    /// How many jobs wait.
    pub(super) fn len(&self) -> u64 {
        self.members.len() as u64
    }

    /// How many jobs of `owner` wait (`None`: the anonymous ones).
    pub(super) fn count_of(&self, owner: Option<&str>) -> u64 {
        match owner {
            Some(owner) => self.per_owner.get(owner).copied().unwrap_or(0),
            None => self.anonymous,
        }
    }

    /// How many queued jobs are ahead of `id`, or `None` when it is not queued.
    pub(super) fn position(&self, id: JobId) -> Option<u64> {
        let member = self.members.get(&id)?;
        let ahead_in_higher: usize = self
            .by_priority
            .range(..Reverse(member.priority))
            .map(|(_, queue)| queue.len())
            .sum();
        let queue = self.by_priority.get(&Reverse(member.priority))?;
        let ahead_in_own = queue.partition_point(|other| *other < member.place);
        Some((ahead_in_higher + ahead_in_own) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<JobId> {
        let mut ids: Vec<JobId> = (0..count).map(|_| JobId::new()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn positions_follow_priority_then_age_then_id() {
        let id = ids(5);
        let mut queue = QueueIndex::default();
        queue.insert(id[0], 0, 10, None, None);
        queue.insert(id[1], 5, 20, Some("a".to_owned()), None);
        queue.insert(id[2], 0, 5, Some("a".to_owned()), None);
        // Same age as id[0]: the id breaks the tie, and id[3] sorts after id[0].
        queue.insert(id[3], 0, 10, None, None);
        queue.insert(id[4], -3, 1, None, None);

        let order: Vec<Option<u64>> = id.iter().map(|id| queue.position(*id)).collect();
        assert_eq!(order, [Some(2), Some(0), Some(1), Some(3), Some(4)]);
        assert_eq!(queue.len(), 5);
        assert_eq!(queue.count_of(None), 3);
        assert_eq!(queue.count_of(Some("a")), 2);
        assert_eq!(queue.count_of(Some("b")), 0);

        let two_each: Vec<JobId> = queue.candidates(2).iter().map(|job| job.id).collect();
        assert_eq!(two_each, [id[1], id[2], id[0], id[3]]);
        let one_each: Vec<JobId> = queue.candidates(1).iter().map(|job| job.id).collect();
        assert_eq!(one_each, [id[1], id[0]]);
    }

    #[test]
    fn removal_moves_the_jobs_behind_up_and_uncounts_the_owner() {
        let id = ids(3);
        let mut queue = QueueIndex::default();
        for (age, id) in id.iter().enumerate() {
            queue.insert(*id, 0, age as i64, Some("a".to_owned()), None);
        }
        queue.insert(id[0], 0, 0, Some("a".to_owned()), None);
        assert_eq!(queue.len(), 3, "a job joins the queue once");

        queue.remove(id[1]);
        queue.remove(id[1]);
        assert_eq!(queue.position(id[1]), None);
        assert_eq!(queue.position(id[2]), Some(1));
        assert_eq!(queue.count_of(Some("a")), 2);

        queue.remove(id[0]);
        queue.remove(id[2]);
        assert_eq!(queue.len(), 0);
        assert!(queue.per_owner.is_empty() && queue.by_priority.is_empty());
    }
}
