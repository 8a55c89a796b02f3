//! The writes a running job makes, each a whole transaction sent to the writer's thread in
//! one trip.
//!
//! sqlx runs a SQLite connection on a thread of its own and hands it each statement, and
//! the `BEGIN` and `COMMIT` around them, as a message: two thread wake-ups per statement,
//! which were most of what a job cost Darkroom (docs/benchmarks.md). A move of a job was
//! four such trips, an output six. Here the whole transaction, from `BEGIN IMMEDIATE` to
//! `COMMIT`, is one multi-statement query: SQLite runs the statements in turn, binding
//! `$N` to the same values in each.
//!
//! The statements that change the job are the shared ones (`store/sql`); what follows them
//! inserts the event under the number the change took, and only if the change matched
//! (`changes() = 1`, the rows the statement before changed). When nothing matched, the
//! transaction commits nothing and a read says why, as the shared queries do.

use sqlx::query::QueryAs;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Sqlite, SqliteConnection};
use time::OffsetDateTime;

use super::{Touch, Writer, events, jobs, leases, lock_mirror, running};
use crate::jobs::model::{Job, JobEvent, JobId, JobState, OutputRecord, Progress, ReplicaId};
use crate::store::rows::JOB_COLUMNS;
use crate::store::rows::{JobRow, to_micros};
use crate::store::{
    Dispatch, Durability, Ended, Ending, JobChange, NewEvent, StoreError, Transition,
};

/// A transaction's statements and values, and the rows it returns.
type Trip<O> = QueryAs<'static, Sqlite, O, SqliteArguments>;
/// The number an event took.
type Seq = (i64,);

/// Inserts the event whose number the statement before took, if it changed the job.
/// Binds `$job` the job and the three parameters after `first`: kind, payload, time.
fn event_statement(job: usize, first: usize) -> String {
    format!(
        "INSERT INTO job_events (job_id, seq, kind, payload, at) \
         SELECT id, last_event_seq, ${first}, ${}, ${} FROM jobs \
         WHERE id = ${job} AND changes() = 1",
        first + 1,
        first + 2
    )
}

// An output's statements after its asset's (`OUTPUT_ASSET_STATEMENT`, whose parameters
// they share): each runs only if the one before it changed a row.
const OUTPUT_NUMBER_STATEMENT: &str = "UPDATE jobs SET last_event_seq = last_event_seq + 1 \
     WHERE id = $7 AND changes() = 1 RETURNING last_event_seq";
const OUTPUT_EVENT_STATEMENT: &str = "INSERT INTO job_events (job_id, seq, kind, payload, at) \
     SELECT id, last_event_seq, $9, $10, $6 FROM jobs WHERE id = $7 AND changes() = 1";
const OUTPUT_ROW_STATEMENT: &str = "INSERT INTO job_outputs (asset_id, job_id, seq, node_id, \
     name, output_type, content_type, size_bytes, hash, origin_filename, origin_subfolder, \
     origin_folder) \
     SELECT $1, id, last_event_seq, $11, $5, $12, $4, $3, $2, $13, $14, $15 FROM jobs \
     WHERE id = $7 AND changes() = 1";

/// `statements` as one transaction of the given durability.
pub(super) fn transaction(durability: Durability, statements: &[&str]) -> String {
    format!(
        "{}; {}; COMMIT",
        super::begin(durability),
        statements.join("; ")
    )
}

impl Writer {
    /// Runs `query`, a whole transaction, in one trip; `settle` turns the rows it returned
    /// into the caller's answer and says what status reads must learn. Runs in a task of
    /// its own, like every commit: a caller dropped halfway must not leave a transaction
    /// open on the writer.
    pub(super) async fn one_trip<O, R>(
        &self,
        query: Trip<O>,
        settle: impl FnOnce(Vec<O>) -> (R, Touch) + Send + 'static,
    ) -> Result<R, StoreError>
    where
        O: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin + 'static,
        R: Send + 'static,
    {
        let writer = self.clone();
        let trip = tokio::spawn(async move {
            let _turn = writer.lock.lock().await;
            let rows = match &writer.trips {
                Some(own) => run(&mut *own.lock().await, query).await?,
                None => run(&mut *writer.connection.acquire().await?, query).await?,
            };
            let (answer, touched) = settle(rows);
            lock_mirror(&writer.mirror).apply(touched);
            Ok(answer)
        });
        trip.await.map_err(|_| StoreError::WriterStopped)?
    }
}

impl super::SqliteStore {
    /// Moves a job (a claim when `claim` is given): the move, its `status` event and, on
    /// an end, its outputs' expiry, in one trip. `None` when the move matched nothing.
    async fn move_job(
        &self,
        change: &Transition,
        claim: Option<&jobs::Claim<'_>>,
    ) -> Result<Option<JobChange>, StoreError> {
        let moving = Move::new(change, claim, 0, false)?;
        let statements: Vec<&str> = moving.statements.iter().map(String::as_str).collect();
        let sql = transaction(change.durability(), &statements);
        let status = moving.status.clone();
        let query = moving.bind(sqlx::query_as::<_, jobs::MovedRow>(sqlx::AssertSqlSafe(
            sql,
        )));

        let id = change.job_id;
        let moved = self
            .writer
            .one_trip(query, move |rows| {
                let moved = rows
                    .into_iter()
                    .next()
                    .map(|row| Job::try_from(row.job).map(|job| (job, row.last_event_seq)));
                let touched = job_touched(
                    id,
                    moved
                        .as_ref()
                        .map(|moved| moved.as_ref().map(|(job, _)| job)),
                );
                (moved, touched)
            })
            .await?;
        let Some((job, seq)) = moved.transpose()? else {
            return Ok(None);
        };
        let event = events::inserted(id, seq, &status)?;
        Ok(Some(JobChange { job, event }))
    }

    /// A run's last steps, [`Ending`], in one trip: the move into `collecting` when given,
    /// the output (as [`Self::add_output_in_one_trip`] writes it) and the end, each
    /// statement after the first running only if the one before it changed a row. Every
    /// step that returns rows returns a moved job's row, so the rows say how far it got.
    pub(super) async fn end_with_output_in_one_trip(
        &self,
        ending: &Ending,
    ) -> Result<Ended, StoreError> {
        let output = &ending.output;
        let event = events::output_event(output, ending.at)?;
        // The output's statements take `$1` to `$15`; the moves' parameters follow.
        let collecting = ending
            .collecting
            .as_ref()
            .map(|change| Move::new(change, None, OUTPUT_PARAMETERS, false))
            .transpose()?;
        let base = OUTPUT_PARAMETERS + collecting.as_ref().map_or(0, Move::parameters);
        let end = Move::new(&ending.end, None, base, true)?;

        let mut statements: Vec<String> = Vec::new();
        // A staged blob first, whatever follows: a blob no record names yet is harmless,
        // and `$2` is the output's hash.
        let blob_parameter = base + end.parameters() + 1;
        if ending.blob.is_some() {
            statements.push(format!(
                "INSERT INTO blobs (hash, bytes) VALUES ($2, ${blob_parameter}) \
                 ON CONFLICT (hash) DO NOTHING"
            ));
        }
        if let Some(collecting) = &collecting {
            statements.extend(collecting.statements.iter().cloned());
            statements.push(format!(
                "{} AND changes() = 1",
                events::OUTPUT_ASSET_STATEMENT
            ));
        } else {
            statements.push(events::OUTPUT_ASSET_STATEMENT.to_owned());
        }
        // The output's number, returned with the job's row as the moves return theirs.
        statements.push(OUTPUT_NUMBER_STATEMENT.replacen(
            "RETURNING last_event_seq",
            &format!("RETURNING {JOB_COLUMNS}, last_event_seq"),
            1,
        ));
        statements.push(OUTPUT_EVENT_STATEMENT.to_owned());
        statements.push(OUTPUT_ROW_STATEMENT.to_owned());
        statements.extend(end.statements.iter().cloned());
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        let sql = transaction(ending.end.durability(), &statements);

        let mut query = bind_output(
            sqlx::query_as::<_, jobs::MovedRow>(sqlx::AssertSqlSafe(sql)),
            output,
            &ending.holder,
            ending.at,
            &event,
        );
        let collecting_status = collecting
            .as_ref()
            .map(|collecting| collecting.status.clone());
        let end_status = end.status.clone();
        if let Some(collecting) = collecting {
            query = collecting.bind(query);
        }
        let mut query = end.bind(query);
        if let Some(blob) = &ending.blob {
            query = query.bind(blob.to_vec());
        }

        let id = output.job_id;
        let recorded = output.clone();
        let moved_first = collecting_status.is_some();
        let rows = self
            .writer
            .one_trip(query, move |rows| {
                let rows: Vec<Result<(Job, i64), StoreError>> = rows
                    .into_iter()
                    .map(|row| Job::try_from(row.job).map(|job| (job, row.last_event_seq)))
                    .collect();
                // The output was recorded when its row came back, after the move's if any.
                let output_row = usize::from(moved_first);
                let mut touched = Vec::new();
                if rows.len() > output_row {
                    touched.push(Touch::Output(Box::new(recorded)));
                }
                touched.push(job_touched(
                    id,
                    rows.last().map(|row| row.as_ref().map(|(job, _)| job)),
                ));
                (rows, Touch::Several(touched))
            })
            .await?;

        let mut rows = rows.into_iter();
        let mut ended = Ended::default();
        if let Some(status) = collecting_status {
            let Some(row) = rows.next() else {
                return Ok(ended);
            };
            let (job, seq) = row?;
            let event = events::inserted(id, seq, &status)?;
            ended.collecting = Some(JobChange { job, event });
        }
        let Some(row) = rows.next() else {
            return Ok(ended);
        };
        let (_, seq) = row?;
        ended.output = Some(events::inserted(id, seq, &event)?);
        if let Some(row) = rows.next() {
            let (job, seq) = row?;
            let event = events::inserted(id, seq, &end_status)?;
            ended.end = Some(JobChange { job, event });
        }
        Ok(ended)
    }

    pub(super) async fn transition_in_one_trip(
        &self,
        change: &Transition,
    ) -> Result<JobChange, StoreError> {
        match self.move_job(change, None).await? {
            Some(committed) => Ok(committed),
            None => {
                let mut connection = self.pool.acquire().await?;
                Err(jobs::conflict(&mut connection, change.job_id, change.from).await)
            }
        }
    }

    pub(super) async fn claim_in_one_trip(
        &self,
        change: &Transition,
        claim: &jobs::Claim<'_>,
    ) -> Result<Option<JobChange>, StoreError> {
        // A claim that matched nothing lost its race, or the job is gone: either way the
        // dispatcher moves on.
        self.move_job(change, Some(claim)).await
    }

    pub(super) async fn record_dispatch_in_one_trip(
        &self,
        id: JobId,
        dispatch: &Dispatch,
    ) -> Result<Job, StoreError> {
        let statement = running::dispatch_statement();
        let sql = transaction(Durability::CrashSafe, &[&statement]);
        let query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(dispatch.backend_id.0.clone())
            .bind(dispatch.prompt_id.0.clone())
            .bind(JobState::Dispatched.as_str())
            .bind(i64::from(dispatch.attempt))
            .bind(dispatch.holder.0.clone());
        let job = self
            .writer
            .one_trip(query, move |rows| {
                let job = rows.into_iter().next().map(Job::try_from);
                let touched = job_touched(id, job.as_ref().map(Result::as_ref));
                (job, touched)
            })
            .await?;
        match job {
            Some(job) => job,
            None => {
                let mut connection = self.pool.acquire().await?;
                Err(running::dispatch_refused(&mut connection, id, dispatch).await)
            }
        }
    }

    pub(super) async fn progress_in_one_trip(
        &self,
        id: JobId,
        progress: &Progress,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        let event = running::progress_event(progress, at)?;
        let written = progress.clone();
        let inserting = event_statement(1, 7);
        let sql = transaction(
            Durability::CrashSafe,
            &[running::PROGRESS_STATEMENT, &inserting],
        );
        let [dispatched, running_, collecting] = running::ACTIVE;
        let query = sqlx::query_as::<_, Seq>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(sqlx::types::Json(progress.clone()))
            .bind(dispatched.as_str())
            .bind(running_.as_str())
            .bind(collecting.as_str())
            .bind(holder.0.clone())
            .bind(event.kind.as_str())
            .bind(sqlx::types::Json(event.payload.clone()))
            .bind(to_micros(at));
        let seq = self
            .writer
            .one_trip(query, move |rows| {
                event_written(rows, Touch::Progress(id, Box::new(written)))
            })
            .await?;
        match seq {
            Some(seq) => events::inserted(id, seq, &event),
            None => {
                let mut connection = self.pool.acquire().await?;
                Err(running::progress_refused(&mut connection, id).await)
            }
        }
    }

    pub(super) async fn append_in_one_trip(
        &self,
        id: JobId,
        event: &NewEvent,
    ) -> Result<JobEvent, StoreError> {
        let inserting = event_statement(1, 2);
        let sql = transaction(
            Durability::CrashSafe,
            &[events::NEXT_SEQ_STATEMENT, &inserting],
        );
        let query = sqlx::query_as::<_, Seq>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(event.kind.as_str())
            .bind(sqlx::types::Json(event.payload.clone()))
            .bind(to_micros(event.at));
        let seq = self
            .writer
            .one_trip(query, |rows| event_written(rows, Touch::Nothing))
            .await?;
        match seq {
            Some(seq) => events::inserted(id, seq, event),
            None => Err(StoreError::JobNotFound(id)),
        }
    }

    /// An output: its asset, its event and its row, in one trip.
    pub(super) async fn add_output_in_one_trip(
        &self,
        output: &OutputRecord,
        holder: &ReplicaId,
        at: OffsetDateTime,
    ) -> Result<JobEvent, StoreError> {
        let event = events::output_event(output, at)?;
        let recorded = output.clone();
        let sql = transaction(
            Durability::CrashSafe,
            &[
                events::OUTPUT_ASSET_STATEMENT,
                OUTPUT_NUMBER_STATEMENT,
                OUTPUT_EVENT_STATEMENT,
                OUTPUT_ROW_STATEMENT,
            ],
        );
        let job_id = output.job_id;
        let query = bind_output(
            sqlx::query_as::<_, Seq>(sqlx::AssertSqlSafe(sql)),
            output,
            holder,
            at,
            &event,
        );
        let seq = self
            .writer
            .one_trip(query, move |rows| {
                event_written(rows, Touch::Output(Box::new(recorded)))
            })
            .await?;
        match seq {
            Some(seq) => events::inserted(job_id, seq, &event),
            None => {
                let mut connection = self.pool.acquire().await?;
                Err(leases::lease_lost(&mut connection, job_id).await)
            }
        }
    }
}

/// Runs `query`, a whole transaction, on `connection`; rolls back what a failed statement
/// left open.
async fn run<O>(connection: &mut SqliteConnection, query: Trip<O>) -> Result<Vec<O>, StoreError>
where
    O: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin + 'static,
{
    match query.fetch_all(&mut *connection).await {
        Ok(rows) => Ok(rows),
        Err(error) => {
            // A statement failed halfway: what ran before it is still open. (A failed
            // BEGIN left nothing to roll back; that error is not ours.)
            let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
            Err(error.into())
        }
    }
}

/// How many parameters an output's statements take (`$1` to `$15`).
const OUTPUT_PARAMETERS: usize = 15;

/// `query` with an output's values bound to `$1` to `$15`, as its statements take them.
fn bind_output<O>(
    query: Trip<O>,
    output: &OutputRecord,
    holder: &ReplicaId,
    at: OffsetDateTime,
    event: &NewEvent,
) -> Trip<O> {
    query
        .bind(output.asset_id.to_string())
        .bind(output.hash.as_str().to_owned())
        .bind(events::size(output.size_bytes))
        .bind(output.content_type.clone())
        .bind(output.name.clone())
        .bind(to_micros(at))
        .bind(output.job_id.to_string())
        .bind(holder.0.clone())
        .bind(event.kind.as_str())
        .bind(sqlx::types::Json(event.payload.clone()))
        .bind(output.node_id.clone())
        .bind(output.output_type.as_str().to_owned())
        .bind(output.origin.filename.clone())
        .bind(output.origin.subfolder.clone())
        .bind(output.origin.folder.as_str().to_owned())
}

/// A move's statements (the move, its `status` event and, on an end, its outputs'
/// expiry) with their parameters numbered from `base + 1`, and the values they bind.
struct Move<'a> {
    statements: Vec<String>,
    change: &'a Transition,
    values: Vec<jobs::Value<'a>>,
    status: NewEvent,
}

impl<'a> Move<'a> {
    /// `chained`: the move only runs if the statement before it changed a row.
    fn new(
        change: &'a Transition,
        claim: Option<&jobs::Claim<'a>>,
        base: usize,
        chained: bool,
    ) -> Result<Self, StoreError> {
        let (mut moving, values) = jobs::move_statement(change, claim)?;
        if chained {
            moving = moving.replacen(" RETURNING ", " AND changes() = 1 RETURNING ", 1);
        }
        let first = values.len() + 5;
        let mut statements = vec![moving, event_statement(2, first)];
        if change.expires_at.is_some() {
            // Outputs live exactly as long as their job; `changes()` is the event's row.
            statements.push(format!(
                "UPDATE assets SET expires_at = ${} WHERE job_id = $2 AND changes() = 1",
                first + 3
            ));
        }
        let statements = statements
            .iter()
            .map(|statement| numbered_from(statement, base))
            .collect();
        Ok(Self {
            statements,
            change,
            values,
            status: jobs::status_event(change),
        })
    }

    /// How many parameters the statements take.
    fn parameters(&self) -> usize {
        self.values.len() + 8
    }

    /// `query` with the move's values bound to its parameters, in order.
    fn bind<O>(self, query: Trip<O>) -> Trip<O> {
        let change = self.change;
        let mut query = query
            .bind(change.to.as_str())
            .bind(change.job_id.to_string())
            .bind(change.from.as_str())
            .bind(change.holder.as_ref().map(|holder| holder.0.clone()));
        for value in self.values {
            query = value.bind_to(query);
        }
        query
            .bind(self.status.kind.as_str())
            .bind(sqlx::types::Json(self.status.payload.clone()))
            .bind(to_micros(self.status.at))
            .bind(change.expires_at.map(to_micros))
    }
}

/// `statement` with every parameter `$N` renumbered `$(N + base)`, so that statements
/// written to number their own parameters from `$1` can share one trip with others. The
/// statements are this module's own, whose only `$` are parameters.
fn numbered_from(statement: &str, base: usize) -> String {
    if base == 0 {
        return statement.to_owned();
    }
    let mut numbered = String::with_capacity(statement.len() + 16);
    let mut rest = statement;
    while let Some(at) = rest.find('$') {
        numbered.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(number) => numbered.push_str(&(number + base).to_string()),
            Err(_) => numbered.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    numbered.push_str(rest);
    numbered
}

/// What status reads learn from a trip that returned job `id` as it left it: the job, when
/// it could be read back; that what was known is stale, when the commit's row could not be
/// read; nothing, when the trip changed nothing.
fn job_touched(id: JobId, job: Option<Result<&Job, &StoreError>>) -> Touch {
    match job {
        Some(Ok(job)) => Touch::job(job),
        Some(Err(_)) => Touch::Forget(vec![id]),
        None => Touch::Nothing,
    }
}

/// The number the trip's event took, if it wrote one, and what status reads learn: `touched`
/// when it did, nothing when the trip changed nothing.
fn event_written(rows: Vec<Seq>, touched: Touch) -> (Option<i64>, Touch) {
    match rows.first() {
        Some((seq,)) => (Some(*seq), touched),
        None => (None, Touch::Nothing),
    }
}
