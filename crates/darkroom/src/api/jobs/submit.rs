//! `POST /api/v2/jobs`: checks a submitted workflow, records the job durably, then wakes
//! the scheduler. A `201` is sent only after the store committed the job, so an accepted
//! job survives any crash that follows.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::validate::{self, Graph};
use super::view::{self, JobView};
use crate::api::links::Origin;
use crate::api::{ApiError, AppState, body};
use crate::auth::Caller;
use crate::jobs::model::JobSummary;
use crate::store::{JobSnapshot, NewJob};

/// Fields the contract reserves for later versions and refuses today.
const RESERVED_FIELDS: &[&str] = &["webhook_url", "inputs"];
/// The only `extra_data` key the contract accepts.
const EXTRA_DATA_KEYS: &[&str] = &["api_key_comfy_org"];
const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// The range of Darkroom's `priority` extension field.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -100..=100;

/// The answer to a created job: `201` with its `Location` and the contract's `Job`.
pub type Created = (StatusCode, [(header::HeaderName, String); 1], Json<JobView>);

/// Submits a workflow.
///
/// # Errors
///
/// The contract's 422 codes for a bad workflow, `idempotency_key_reuse`, `queue_full`.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let submission = parse(body, &state.config.limits)?;
    check(&state, &caller, &submission.graph).await?;

    let mut job = new_job(&state, Value::Object(submission.graph));
    job.idempotency_key = idempotency_key;
    job.keep_previews = submission.keep_previews;
    job.priority = submission.priority;
    accept(&state, &caller, job, &origin).await
}

/// A job to run `workflow`, created now and kept for the configured retention.
pub fn new_job(state: &AppState, workflow: Value) -> NewJob {
    let now = OffsetDateTime::now_utc();
    let retention =
        time::Duration::try_from(state.config.retention).unwrap_or(time::Duration::days(7));
    NewJob::api(workflow, now, now + retention)
}

/// Records `job` as `caller`'s, durably, wakes the scheduler and answers `201`: every
/// route that creates a job goes through here, so each answers alike.
///
/// # Errors
///
/// `queue_full` (the whole queue, or the caller's share of it), `idempotency_key_reuse`,
/// store faults.
pub async fn accept(
    state: &AppState,
    caller: &Caller,
    mut job: NewJob,
    origin: &Origin,
) -> Result<Created, ApiError> {
    job.owner = caller.owner();
    job.max_queued = Some(u64::from(state.config.queue_limit));
    if let Err(unrunnable) = state.scheduler.check_runnable(&job.requirements) {
        let backends: serde_json::Map<String, Value> = unrunnable
            .backends
            .iter()
            .map(|(backend, missing)| (backend.0.clone(), Value::String(missing.to_string())))
            .collect();
        return Err(ApiError::invalid_workflow(unrunnable.to_string())
            .with_details(serde_json::json!({ "backends": backends })));
    }
    job.max_queued_for_owner = state
        .auth
        .limits_of(caller)
        .map(|limits| u64::from(limits.max_queued));
    let created = state.store.create_job(job).await?;
    state.bus.publish(created.event);
    let job = created.job;
    state.scheduler.wake();
    state.scheduler.context().metrics.job_submitted();
    tracing::info!(job.id = %job.id, "job accepted");

    // A new job has no outputs yet.
    let snapshot = JobSnapshot {
        queue_position: state.store.queue_position(job.id).await?,
        job: JobSummary::from(&job),
        outputs: Vec::new(),
    };
    let view = view::render(&snapshot, origin);
    let location = view.urls.self_.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
}

/// What a submission asks for, beyond the contract's fields that are only checked.
struct Submission {
    graph: Graph,
    keep_previews: bool,
    priority: i32,
}

/// The request body down to its graph and Darkroom's `keep_previews` and `priority`
/// fields; every other field is checked and refused or dropped as the contract says.
fn parse(
    body: Result<Bytes, BytesRejection>,
    limits: &crate::config::Limits,
) -> Result<Submission, ApiError> {
    let value: Value = body::json(body, "invalid_workflow", limits)?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::invalid_workflow(
            "request body must be a JSON object with a \"workflow\" field",
        ));
    };
    // A UI export posted as the whole body deserves the UI answer, not "no workflow".
    validate::refuse_ui_format(&fields)?;
    check_fields(&fields)?;
    let keep_previews = match fields.get("keep_previews") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(keep)) => *keep,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "\"keep_previews\" must be a boolean, got {}",
                json_kind(other)
            )));
        }
    };

    let priority = priority(fields.get("priority"))?;

    match fields.remove("workflow") {
        Some(Value::Object(graph)) => {
            validate::refuse_ui_format(&graph)?;
            Ok(Submission {
                graph,
                keep_previews,
                priority,
            })
        }
        Some(other) => Err(ApiError::invalid_workflow(format!(
            "\"workflow\" must be an object of nodes keyed by node id, got {}",
            json_kind(&other)
        ))),
        None => Err(ApiError::invalid_workflow("field \"workflow\" is missing")),
    }
}

/// Darkroom's `priority` extension: an integer in [`PRIORITY_RANGE`], 0 when absent.
///
/// # Errors
///
/// `invalid_request` naming the field and the range.
pub fn priority(value: Option<&Value>) -> Result<i32, ApiError> {
    let refuse = |got: String| {
        ApiError::invalid_request(format!(
            "\"priority\" must be an integer between {} and {}, got {got}",
            PRIORITY_RANGE.start(),
            PRIORITY_RANGE.end()
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => {
            let priority = number
                .as_i64()
                .filter(|priority| PRIORITY_RANGE.contains(priority))
                .ok_or_else(|| refuse(number.to_string()))?;
            i32::try_from(priority).map_err(|_| refuse(number.to_string()))
        }
        Some(other) => Err(refuse(json_kind(other).to_owned())),
    }
}

fn check_fields(fields: &Map<String, Value>) -> Result<(), ApiError> {
    for name in fields.keys() {
        if RESERVED_FIELDS.contains(&name.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "field {name:?} is reserved for a later version of the API and not accepted yet"
            )));
        }
        // `keep_previews` (also store `temp` outputs) and `priority` are Darkroom's own.
        if !matches!(
            name.as_str(),
            "workflow" | "extra_data" | "keep_previews" | "priority"
        ) {
            return Err(ApiError::invalid_request(format!(
                "unknown field {name:?}; a job takes \"workflow\", \"extra_data\", \"keep_previews\" and \"priority\""
            )));
        }
    }
    match fields.get("extra_data") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(extra)) => check_extra_data(extra),
        Some(other) => Err(ApiError::invalid_request(format!(
            "\"extra_data\" must be an object, got {}",
            json_kind(other)
        ))),
    }
}

/// `extra_data` is a closed object. It is never stored nor logged (only its key names are
/// checked here); forwarding it to the backend is not supported yet, so it has no effect.
/// Forwarding would mean holding `api_key_comfy_org` in memory until dispatch and losing
/// it on a restart, so a job's outcome would depend on when Darkroom last restarted.
fn check_extra_data(extra: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in extra {
        if !EXTRA_DATA_KEYS.contains(&key.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "unknown extra_data key {key:?}; accepted keys: {}",
                EXTRA_DATA_KEYS.join(", ")
            )));
        }
        if !value.is_string() {
            return Err(ApiError::invalid_request(format!(
                "extra_data.{key} must be a string"
            )));
        }
    }
    Ok(())
}

pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| {
        !key.is_empty()
            && key.len() <= IDEMPOTENCY_KEY_MAX_LEN
            && key.bytes().all(|byte| byte.is_ascii_graphic())
    });
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(ApiError::invalid_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"
        ))),
    }
}

/// Structure and classes first (one answer listing every node problem), then assets.
async fn check(state: &AppState, caller: &Caller, graph: &Graph) -> Result<(), ApiError> {
    if graph.is_empty() {
        return Err(ApiError::invalid_workflow("the workflow has no nodes"));
    }
    let catalog = state.node_classes.catalog(&state.backends).await;
    let problems = validate::problems(graph, catalog.as_deref());
    if !problems.is_empty() {
        return Err(validate::invalid_workflow(&problems));
    }
    validate::check_assets(state.store.as_ref(), caller, graph).await
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
