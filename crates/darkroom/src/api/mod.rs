//! The HTTP API: one `router()` listing every route, its layers and the fallback.
//! Handlers live in one module per resource.
//!
//! The public surface is the Comfy API v2 contract (jobs and assets) plus Darkroom's own
//! routes (health, the job list, the OpenAPI document). Every error, including a body
//! axum refuses, answers in the contract's envelope. Each request runs in one span named
//! by its route template and request id (`x-request-id`, generated when absent and
//! echoed back).

mod assets;
mod backends;
mod body;
mod error;
mod health;
mod history;
pub(crate) mod jobs;
mod links;
mod metrics;
pub mod node_classes;
mod openapi;
mod page;
mod templates;
mod thumbnails;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use node_classes::NodeClassCache;

use crate::artifacts::BlobStore;
use crate::config::Config;
use crate::jobs::bus::JobBus;
use crate::scheduler::{BackendSpec, SchedulerHandle};
use crate::store::Store;
use crate::templates::Library;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub bus: Arc<JobBus>,
    pub scheduler: SchedulerHandle,
    pub backends: Arc<Vec<BackendSpec>>,
    /// The node classes the backends know, for checking submitted graphs.
    pub node_classes: Arc<NodeClassCache>,
    /// The workflow templates.
    pub templates: Arc<Library>,
    /// Cancelled when the server starts to stop: responses that would otherwise last
    /// forever (event streams) end, so the graceful shutdown can finish.
    pub stopping: CancellationToken,
}

/// Every route Darkroom serves, with its layers and fallbacks.
pub fn router(state: AppState) -> Router {
    let routes = routes().into_iter().fold(Router::new(), |router, route| {
        router.route(route.path, route.handler)
    });
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(body::JSON_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The method and path template of every route, as `router()` serves them.
pub fn endpoints() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// The route table `router()` is built from: one line per method and path.
fn routes() -> Vec<Route> {
    let upload =
        on(MethodFilter::POST, assets::upload).layer(DefaultBodyLimit::max(body::UPLOAD_LIMIT));
    vec![
        Route::get("/api/openapi.json", openapi::document),
        Route::get("/api/v2/health", health::health),
        Route::post("/api/v2/jobs", jobs::submit),
        Route::get("/api/v2/jobs", jobs::list),
        Route::get("/api/v2/jobs/{id}", jobs::get),
        Route::get("/api/v2/jobs/{id}/workflow", jobs::workflow),
        Route::get("/api/v2/jobs/{id}/events", jobs::events),
        Route::post("/api/v2/jobs/{id}/cancel", jobs::cancel),
        Route::new(Method::POST, "/api/v2/assets", upload),
        Route::post("/api/v2/assets/from-hash", assets::from_hash),
        Route::head("/api/v2/assets/by-hash/{hash}", assets::head_by_hash),
        Route::get("/api/v2/assets/{id}", assets::get),
        Route::delete("/api/v2/assets/{id}", assets::delete),
        Route::get("/api/v2/assets/{id}/content", assets::content),
        Route::get("/api/v2/assets/{id}/thumbnail", thumbnails::thumbnail),
        Route::get("/api/backends", backends::list),
        Route::post("/api/backends/{name}/drain", backends::drain),
        Route::post("/api/backends/{name}/undrain", backends::undrain),
        Route::get("/metrics", metrics::metrics),
        Route::get("/api/history", history::list),
        Route::get("/api/history/{id}", history::get),
        Route::get("/api/templates", templates::list),
        Route::post("/api/templates", templates::create),
        Route::post("/api/templates/reload", templates::reload),
        Route::get("/api/templates/{name}", templates::get),
        Route::post("/api/templates/{name}/jobs", templates::run),
        Route::get("/", page::index),
        Route::get("/ui/{file}", page::file),
    ]
}

/// One method on one path. `GET` routes answer `HEAD` too, as axum does.
struct Route {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        Self {
            method,
            path,
            handler,
        }
    }

    fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::new(Method::GET, path, on(MethodFilter::GET, handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::new(Method::POST, path, on(MethodFilter::POST, handler))
    }

    fn head<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::new(Method::HEAD, path, on(MethodFilter::HEAD, handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::new(Method::DELETE, path, on(MethodFilter::DELETE, handler))
    }
}

/// The span of one request: its route template (not the raw path, which holds ids) and
/// its request id, so every log line of the request can be found together.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.route = route,
        request.id = request_id,
    )
}
