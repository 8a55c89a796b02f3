//! Job rows: create (with idempotency key and queue bound), read, and the
//! compare-and-set transitions.

use super::Connection;

use super::{events, leases, locks, queue};
use crate::jobs::model::{
    BackendId, EventKind, Job, JobError, JobId, JobState, JobSummary, PromptId,
};
use crate::store::request::status_payload;
use crate::store::rows::{
    AsSent, JOB_COLUMNS, JobRow, SUMMARY_COLUMNS, SummaryRow, from_micros, to_micros,
};
use crate::store::{
    IDEMPOTENCY_KEY_LIFETIME, JobChange, Lease, NewEvent, NewJob, StoreError, Transition,
};

/// Requests without an API key share one idempotency namespace.
const ANONYMOUS_OWNER: &str = "";

pub(super) async fn create(
    connection: &mut Connection,
    job: &NewJob,
) -> Result<JobChange, StoreError> {
    if job.max_queued.is_some() || job.max_queued_for_owner.is_some() {
        locks::queue_bound(connection).await?;
    }
    if let Some(max_queued) = job.max_queued {
        let queued = queue::count_queued(connection).await?;
        if queued >= max_queued {
            return Err(StoreError::QueueFull { queued });
        }
    }
    if let Some(max_queued) = job.max_queued_for_owner {
        let queued = queue::count_queued_of(connection, job.owner.as_deref()).await?;
        if queued >= max_queued {
            return Err(StoreError::OwnerQueueFull { queued });
        }
    }
    create_unbounded(connection, job).await
}

/// `create` without the queue bounds, for an engine that checks them itself (under a
/// lock that also covers this insert).
pub(super) async fn create_unbounded(
    connection: &mut Connection,
    job: &NewJob,
) -> Result<JobChange, StoreError> {
    insert(connection, job).await?;
    if let Some(key) = &job.idempotency_key {
        claim_key(connection, job, key).await?;
    }

    let status = first_status(job);
    events::append_first(connection, job.id, &status).await?;
    created(job.clone(), &status)
}

/// A new job's first event, number 1: `status` queued.
pub(super) fn first_status(job: &NewJob) -> NewEvent {
    NewEvent {
        kind: EventKind::Status,
        payload: status_payload(JobState::Queued, None),
        at: job.created_at,
    }
}

/// What creating `job` committed, with `status` its first event, without reading it back.
/// It takes the job: its workflows move into the answer rather than being copied.
pub(super) fn created(job: NewJob, status: &NewEvent) -> Result<JobChange, StoreError> {
    let event = events::inserted(job.id, 1, status)?;
    Ok(JobChange {
        job: inserted(job)?,
        event,
    })
}

/// The job `insert` wrote, as reading it back would return it (times to the microsecond,
/// JSON as sent), without the round trip.
fn inserted(job: NewJob) -> Result<Job, StoreError> {
    Ok(Job {
        id: job.id,
        state: JobState::Queued,
        workflow: job.workflow,
        original_workflow: job.original_workflow,
        original_format: job.original_format,
        template: job.template,
        parameters: job.parameters,
        backend_id: None,
        prompt_id: None,
        attempt: 0,
        priority: job.priority,
        owner: job.owner,
        idempotency_key: job.idempotency_key,
        keep_previews: job.keep_previews,
        created_at: from_micros(to_micros(job.created_at))?,
        dispatched_at: None,
        started_at: None,
        completed_at: None,
        expires_at: from_micros(to_micros(job.expires_at))?,
        progress: None,
        error: None,
    })
}

/// Inserts the row with its event counter at 1: the `status` event that follows is its
/// first.
async fn insert(connection: &mut Connection, job: &NewJob) -> Result<(), StoreError> {
    bind_new(sqlx::query(sqlx::AssertSqlSafe(insert_statement(1))), job)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// The insert of a new job, its event counter at 1; its parameters are numbered from
/// `$first`, and [`bind_new`] binds them in order.
pub(super) fn insert_statement(first: usize) -> String {
    let parameters: Vec<String> = (first..first + 14).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO jobs (id, state, workflow, original_workflow, original_format, template, \
         parameters, owner, idempotency_key, keep_previews, created_at, expires_at, priority, \
         requirements, last_event_seq) VALUES ({}, 1)",
        parameters.join(", ")
    )
}

/// `query` with the parameters of [`insert_statement`] bound to `job`'s values.
pub(super) fn bind_new<'q>(
    query: sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments>,
    job: &'q NewJob,
) -> sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments> {
    query
        .bind(job.id.to_string())
        .bind(JobState::Queued.as_str())
        .bind(AsSent(&job.workflow))
        .bind(AsSent(&job.original_workflow))
        .bind(job.original_format.as_str())
        .bind(job.template.as_deref())
        .bind(job.parameters.as_ref().map(AsSent))
        .bind(job.owner.as_deref())
        .bind(job.idempotency_key.as_deref())
        .bind(job.keep_previews)
        .bind(to_micros(job.created_at))
        .bind(to_micros(job.expires_at))
        .bind(i64::from(job.priority))
        .bind(sqlx::types::Json(&job.requirements))
}

/// Claims a key for 24 hours. A lapsed claim is cleared first, so the
/// primary key alone decides, atomically, whether the key is still taken.
async fn claim_key(connection: &mut Connection, job: &NewJob, key: &str) -> Result<(), StoreError> {
    let owner = job.owner.as_deref().unwrap_or(ANONYMOUS_OWNER);
    sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE owner = $1 AND idempotency_key = $2 AND expires_at <= $3",
    )
    .bind(owner)
    .bind(key)
    .bind(to_micros(job.created_at))
    .execute(&mut *connection)
    .await?;

    let expires_at = job.created_at + IDEMPOTENCY_KEY_LIFETIME;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (owner, idempotency_key, job_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(owner)
    .bind(key)
    .bind(job.id.to_string())
    .bind(to_micros(expires_at))
    .execute(&mut *connection)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if StoreError::is_unique_violation(&error) => {
            Err(StoreError::IdempotencyKeyReused {
                key: key.to_owned(),
            })
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn find(
    connection: &mut Connection,
    id: JobId,
) -> Result<Option<Job>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
    row.map(Job::try_from).transpose()
}

/// The job without its workflows: what a status read shows.
pub(super) async fn find_summary(
    connection: &mut Connection,
    id: JobId,
) -> Result<Option<JobSummary>, StoreError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM jobs WHERE id = $1");
    let row: Option<SummaryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
    row.map(JobSummary::try_from).transpose()
}

pub(super) async fn fetch(connection: &mut Connection, id: JobId) -> Result<Job, StoreError> {
    find(connection, id)
        .await?
        .ok_or(StoreError::JobNotFound(id))
}

/// A claim's part in a move to `dispatched`: the backend, the prompt id the attempt will
/// be posted under when the claimer chose it already, and the lease the claiming replica
/// takes on the job.
#[derive(Debug)]
pub(super) struct Claim<'a> {
    pub(super) backend_id: &'a BackendId,
    pub(super) prompt_id: Option<&'a PromptId>,
    pub(super) lease: &'a Lease,
}

/// The compare-and-set at the heart of the state machine: the `UPDATE` only
/// matches while the job is still in `from`, so of two racing callers one
/// changes the row and the other sees zero rows and gets `StateConflict`.
pub(super) async fn transition(
    connection: &mut Connection,
    change: &Transition,
    claim: Option<&Claim<'_>>,
) -> Result<JobChange, StoreError> {
    let (sql, values) = move_statement(change, claim)?;
    let mut moving = sqlx::query_as::<_, MovedRow>(sqlx::AssertSqlSafe(sql))
        .bind(change.to.as_str())
        .bind(change.job_id.to_string())
        .bind(change.from.as_str())
        .bind(change.holder.as_ref().map(|holder| holder.0.as_str()));
    for value in values {
        moving = value.bind_to(moving);
    }
    let Some(moved) = moving.fetch_optional(&mut *connection).await? else {
        return Err(conflict(connection, change.job_id, change.from).await);
    };

    if let Some(expires_at) = change.expires_at {
        // Outputs live exactly as long as their job.
        sqlx::query("UPDATE assets SET expires_at = $2 WHERE job_id = $1")
            .bind(change.job_id.to_string())
            .bind(to_micros(expires_at))
            .execute(&mut *connection)
            .await?;
    }
    let status = status_event(change);
    let event = events::insert(connection, change.job_id, moved.last_event_seq, &status).await?;
    let job = Job::try_from(moved.job)?;
    Ok(JobChange { job, event })
}

/// The `status` event a move writes.
pub(super) fn status_event(change: &Transition) -> NewEvent {
    NewEvent {
        kind: EventKind::Status,
        payload: status_payload(change.to, change.error.as_ref()),
        at: change.at,
    }
}

/// The statement of a move, with the values its effects bind from `$5` on, or
/// `IllegalTransition` when the state machine has no such move. One statement
/// moves the job, sets the columns its new state owns and takes the next event number, so
/// a move is two statements (and the output expiry on an end) instead of one per column.
/// A holder moves the job only while no other replica holds it. Binds `$1` the new
/// state, `$2` the job, `$3` the state it must be in, `$4` the holder.
pub(super) fn move_statement<'a>(
    change: &'a Transition,
    claim: Option<&Claim<'a>>,
) -> Result<(String, Vec<Value<'a>>), StoreError> {
    if !change.from.can_transition_to(change.to) {
        return Err(StoreError::IllegalTransition {
            from: change.from,
            to: change.to,
        });
    }
    let (effects, values) = effects(change, claim);
    let sql = format!(
        "UPDATE jobs SET state = $1, last_event_seq = last_event_seq + 1{effects} \
         WHERE id = $2 AND state = $3 \
         AND ($4 IS NULL OR lease_holder IS NULL OR lease_holder = $4) \
         RETURNING {JOB_COLUMNS}, last_event_seq"
    );
    Ok((sql, values))
}

/// A job row as a move left it, with the number its status event takes.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MovedRow {
    #[sqlx(flatten)]
    pub(super) job: JobRow,
    pub(super) last_event_seq: i64,
}

/// Why a compare-and-set matched nothing.
pub(super) async fn conflict(
    connection: &mut Connection,
    id: JobId,
    expected: JobState,
) -> StoreError {
    match find(connection, id).await {
        Ok(Some(job)) if job.state != expected => StoreError::StateConflict {
            job_id: id,
            expected,
            actual: job.state,
        },
        Ok(Some(_)) => leases::lease_lost(connection, id).await,
        Ok(None) => StoreError::JobNotFound(id),
        Err(error) => error,
    }
}

/// A value an effect binds.
pub(super) enum Value<'a> {
    Number(Option<i64>),
    Text(Option<&'a str>),
    Error(&'a JobError),
}

impl Value<'_> {
    /// `query` with this value bound to its next parameter.
    pub(super) fn bind_to<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, super::Db, O, <super::Db as sqlx::Database>::Arguments>,
    ) -> sqlx::query::QueryAs<'q, super::Db, O, <super::Db as sqlx::Database>::Arguments> {
        match self {
            Self::Number(number) => query.bind(number),
            Self::Text(text) => query.bind(text.map(str::to_owned)),
            Self::Error(error) => query.bind(sqlx::types::Json(error.clone())),
        }
    }
}

/// The columns a state owns (timestamps, the attempt count, the claim's lease, and on a
/// requeue the traces of the attempt that was given up), the error and the expiry, as
/// `SET` items, with the values their parameters (from `$5` on) take, in order.
fn effects<'a>(change: &'a Transition, claim: Option<&Claim<'a>>) -> (String, Vec<Value<'a>>) {
    let mut sets = String::new();
    let mut values = Vec::new();
    let mut set = |column: &str, value: Value<'a>| {
        values.push(value);
        sets.push_str(&format!(", {column} = ${}", values.len() + 4));
    };
    let at = Value::Number(Some(to_micros(change.at)));
    match change.to {
        JobState::Dispatched => {
            set("dispatched_at", at);
            set(
                "backend_id",
                Value::Text(claim.map(|claim| claim.backend_id.0.as_str())),
            );
            set(
                "lease_holder",
                Value::Text(claim.map(|claim| claim.lease.holder.0.as_str())),
            );
            let expires = claim.map(|claim| to_micros(claim.lease.expires_at));
            set("lease_expires_at", Value::Number(expires));
            let prompt_id = claim.and_then(|claim| claim.prompt_id);
            set(
                "prompt_id",
                Value::Text(prompt_id.map(|prompt_id| prompt_id.0.as_str())),
            );
        }
        JobState::Running => set("started_at", at),
        JobState::Succeeded | JobState::Failed | JobState::Canceled => set("completed_at", at),
        JobState::Queued | JobState::Collecting | JobState::Canceling | JobState::Expired => {}
    }
    if let Some(error) = &change.error {
        set("error", Value::Error(error));
    }
    if let Some(expires_at) = change.expires_at {
        set("expires_at", Value::Number(Some(to_micros(expires_at))));
    }
    match change.to {
        JobState::Dispatched => sets.push_str(", attempt = attempt + 1"),
        JobState::Queued => sets.push_str(
            ", backend_id = NULL, prompt_id = NULL, dispatched_at = NULL, started_at = NULL, \
             progress = NULL, lease_holder = NULL, lease_expires_at = NULL",
        ),
        // An ended job is nobody's.
        JobState::Succeeded | JobState::Failed | JobState::Canceled => {
            sets.push_str(", lease_holder = NULL, lease_expires_at = NULL");
        }
        JobState::Running | JobState::Collecting | JobState::Canceling | JobState::Expired => {}
    }
    (sets, values)
}
