//! The one HTTP error type: every failure maps to a status and a stable code, in the v2
//! contract's envelope `{"error": {"code", "message", "details"}}`. 5xx bodies hide
//! internals; the log keeps them.
//!
//! Codes are the contract's where it has one (`invalid_workflow`, `missing_asset`,
//! `queue_full`, ...); Darkroom adds `invalid_request` (a malformed request that is not a
//! workflow problem), `payload_too_large`, `asset_in_use`, `range_not_satisfiable` and
//! `blob_deleted` (an upload whose identical bytes were being deleted meanwhile).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::artifacts::ArtifactError;
use crate::store::StoreError;

/// How long a client should wait before retrying a full queue.
const QUEUE_FULL_RETRY_SECONDS: u32 = 5;

/// An error as a client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Boxed: it is rare, and keeps every `Result<_, ApiError>` small.
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A client-side error with its code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// `404 not_found`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// `422 invalid_request`: the request is malformed in a way no contract code names.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// `422 invalid_workflow`.
    pub fn invalid_workflow(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            message,
        )
    }

    /// `500 upstream_error`, with the cause logged and hidden from the client.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "upstream_error",
            "an internal service failed; try again later",
        )
    }

    /// Adds machine-readable details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::JobNotFound(id) => Self::not_found(format!("job {id} not found")),
            StoreError::AssetNotFound(id) => Self::not_found(format!("asset {id} not found")),
            StoreError::IdempotencyKeyReused { key } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reuse",
                format!(
                    "idempotency key {key:?} was already used; keys are single use for 24 hours"
                ),
            ),
            StoreError::OwnerQueueFull { queued } => Self {
                retry_after: Some(QUEUE_FULL_RETRY_SECONDS),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!(
                        "this key already has {queued} jobs waiting, its limit; retry once \
                         some have started"
                    ),
                )
            },
            StoreError::QueueFull { queued } => Self {
                retry_after: Some(QUEUE_FULL_RETRY_SECONDS),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!("the queue is full ({queued} jobs waiting); retry later"),
                )
            },
            // The contract wants the hold kept private.
            StoreError::AssetInUse { .. } => Self::new(
                StatusCode::CONFLICT,
                "asset_in_use",
                "the asset cannot be deleted while the platform still depends on it",
            ),
            // Logged and coded as any internal fault, but the submitter learns its job.
            StoreError::Unconfirmed { job_id, .. } => Self {
                message: format!(
                    "job {job_id} was recorded, but the disk did not confirm it was stored; \
                     it may still run: look it up at /api/v2/jobs/{job_id} rather than \
                     submitting it again"
                ),
                ..Self::internal(&error)
            }
            .with_details(json!({ "job_id": job_id.to_string() })),
            other => Self::internal(&other),
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> Self {
        Self::internal(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(http.status = self.status.as_u16(), error.code = self.code, message = %self.message, "request refused");
        }
        let body = json!({
            "error": {"code": self.code, "message": self.message, "details": self.details}
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The fallback for unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

/// The fallback for a known path asked with a method it does not serve.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::jobs::model::JobId;

    #[test]
    fn a_job_recorded_without_the_disks_confirmation_is_named_to_its_submitter() {
        let job_id = JobId::new();
        let error = ApiError::from(StoreError::Unconfirmed {
            job_id,
            source: Arc::new(StoreError::WriterStopped),
        });
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            error.message.contains(&job_id.to_string()),
            "{}",
            error.message
        );
        let details = error.details.expect("details name the job");
        assert_eq!(details["job_id"], job_id.to_string());
    }
}
