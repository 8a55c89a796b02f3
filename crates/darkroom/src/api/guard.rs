//! The gate in front of every route that is not public: who is calling, whether they are
//! over their request rate, and whether the route is theirs to use. Handlers then take
//! the [`Caller`] as an extractor and check ownership themselves.
//!
//! A key comes as `Authorization: Bearer KEY`; on `GET` and `HEAD` only, the page's session
//! cookie also counts (see `auth::session`). A request with a key that does not check out
//! is refused even where anonymous requests would pass: a typo must not fall back to
//! another identity. The rate is checked before anything is looked up, so a `429` says
//! nothing about whether a job exists.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::{ApiError, AppState};
use crate::auth::{Caller, keys, session};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, the page's files, the OpenAPI document.
    Public,
    /// Any caller with a valid key (or anonymous, where that is allowed).
    Caller,
    /// Admin keys (and the anonymous local operator).
    Admin,
}

/// Middleware for [`Access::Caller`] routes.
pub async fn caller(State(state): State<AppState>, request: Request, next: Next) -> Response {
    admit(state, Access::Caller, request, next).await
}

/// Middleware for [`Access::Admin`] routes.
pub async fn admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    admit(state, Access::Admin, request, next).await
}

async fn admit(state: AppState, access: Access, mut request: Request, next: Next) -> Response {
    let caller = match authenticate(&state, request.method(), request.headers()).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(limits) = state.auth.limits_of(&caller)
        && let Err(wait) = state.auth.gate.take_request(caller.label(), limits)
    {
        let seconds = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
        tracing::debug!(caller = caller.label(), seconds, "rate limited");
        return ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests for this key ({} a minute); retry in {seconds} s",
                    limits.requests_per_minute
                ),
            )
        }
        .into_response();
    }
    if access == Access::Admin && !caller.is_admin() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route needs an admin key",
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller a request's credentials name.
async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Refusal::Malformed)?;
        let key = state
            .store
            .live_key_by_hash(&keys::hash_key(token))
            .await
            .map_err(|error| Refusal::Internal(ApiError::from(error)))?;
        return key
            .map(|key| Caller::Key(Arc::new(key)))
            .ok_or(Refusal::BadKey);
    }

    let cookie = (*method == Method::GET || *method == Method::HEAD)
        .then(|| session_token(headers))
        .flatten();
    if let Some(token) = cookie {
        let key = match session::claimed_key(&token) {
            Some(id) => state
                .store
                .live_key(id)
                .await
                .map_err(|error| Refusal::Internal(ApiError::from(error)))?,
            None => None,
        };
        return key
            .filter(|key| session::verify(&token, key, OffsetDateTime::now_utc()))
            .map(|key| Caller::Key(Arc::new(key)))
            .ok_or(Refusal::BadSession);
    }

    let keys_exist = state
        .store
        .count_live_keys()
        .await
        .map_err(|error| Refusal::Internal(ApiError::from(error)))?
        > 0;
    if state.auth.admits_anonymous(keys_exist) {
        Ok(Caller::Anonymous)
    } else {
        Err(Refusal::Missing)
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| session::cookie_value(value, session::COOKIE))
        .map(str::to_owned)
}

/// Why a request was not let in.
enum Refusal {
    Missing,
    Malformed,
    BadKey,
    BadSession,
    Internal(ApiError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let message = match self {
            Self::Missing => "an API key is required: send \"Authorization: Bearer <key>\"",
            Self::Malformed => "the Authorization header must be \"Bearer <key>\"",
            Self::BadKey => "the API key is not valid: unknown or revoked",
            Self::BadSession => "the session has expired or its key was revoked; sign in again",
            Self::Internal(error) => return error.into_response(),
        };
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"darkroom\""),
        );
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only a route without the gate lacks one: a bug, never the client's doing.
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = parts.uri.path(), "route without its access gate");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upstream_error",
                "an internal service failed; try again later",
            )
        })
    }
}
