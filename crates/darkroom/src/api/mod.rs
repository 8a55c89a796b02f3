//! The HTTP API: one `router()` listing every route with who may use it (`Access`: public,
//! any caller, admin), its layers and the fallback. Handlers live in one module per
//! resource; the gate (`guard`) names the caller, and handlers check what it owns.
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
mod guard;
mod health;
mod history;
pub(crate) mod jobs;
mod links;
mod metrics;
pub mod node_classes;
mod openapi;
mod page;
mod session;
mod templates;
mod thumbnails;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{MethodFilter, MethodRouter, on};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use guard::Access;
pub use node_classes::NodeClassCache;

use crate::artifacts::BlobStore;
use crate::auth::Auth;
use crate::config::Config;
use crate::jobs::bus::JobBus;
use crate::scheduler::{BackendSpec, SchedulerHandle};
use crate::store::Store;
use crate::templates::Library;

/// What every handler can reach. Each request clones it several times (the gate, the
/// extractors), so it is one reference to the [`Services`], not a dozen.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of the server handlers use.
#[derive(Debug)]
pub struct Services {
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
    /// Keys, anonymous access and per-key limits.
    pub auth: Arc<Auth>,
}

/// Every route Darkroom serves, with its access gate, layers and fallbacks.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.config.limits.upload_bytes();
    let routes = routes().into_iter().fold(Router::new(), |router, route| {
        let mut handler = route.handler;
        if route.path == "/api/v2/assets" && route.method == Method::POST {
            handler = handler.layer(DefaultBodyLimit::max(upload_limit));
        }
        let handler = match route.access {
            Access::Public => handler,
            Access::Caller => handler.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::caller,
            )),
            Access::Admin => handler.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::admin,
            )),
        };
        router.route(route.path, handler)
    });
    let config = Arc::clone(&state.config);
    let router = routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.limits.body_bytes()))
        .layer(MapRequestBodyLayer::new(axum::body::Body::new))
        .layer(RequestBodyTimeoutLayer::new(config.timeouts.client_body))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state);
    match cors(&config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for the configured origins, or none at all (browsers then refuse every
/// cross-origin read). Credentials are never allowed across origins: other sites' pages
/// send a key in `Authorization`, never the page's cookie.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let request_headers = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        HeaderName::from_static("idempotency-key"),
        HeaderName::from_static("last-event-id"),
    ];
    let response_headers = [
        header::LOCATION,
        header::RETRY_AFTER,
        HeaderName::from_static("x-request-id"),
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allow_headers(request_headers)
            .expose_headers(response_headers)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The method, path template and access of every route, as `router()` serves them.
pub fn endpoints() -> Vec<(Method, &'static str, Access)> {
    routes()
        .into_iter()
        .map(|route| (route.method, route.path, route.access))
        .collect()
}

/// The route table `router()` is built from: one line per method and path, with who may
/// use it.
fn routes() -> Vec<Route> {
    use Access::{Admin, Caller, Public};
    vec![
        Route::get(Public, "/api/openapi.json", openapi::document),
        Route::get(Public, "/api/v2/health", health::health),
        Route::post(Caller, "/api/v2/jobs", jobs::submit),
        Route::get(Caller, "/api/v2/jobs", jobs::list),
        Route::get(Caller, "/api/v2/jobs/{id}", jobs::get),
        Route::get(Caller, "/api/v2/jobs/{id}/workflow", jobs::workflow),
        Route::get(Caller, "/api/v2/jobs/{id}/events", jobs::events),
        Route::post(Caller, "/api/v2/jobs/{id}/cancel", jobs::cancel),
        Route::post(Caller, "/api/v2/assets", assets::upload),
        Route::post(Caller, "/api/v2/assets/from-hash", assets::from_hash),
        Route::head(
            Caller,
            "/api/v2/assets/by-hash/{hash}",
            assets::head_by_hash,
        ),
        Route::get(Caller, "/api/v2/assets/{id}", assets::get),
        Route::delete(Caller, "/api/v2/assets/{id}", assets::delete),
        Route::get(Caller, "/api/v2/assets/{id}/content", assets::content),
        Route::get(
            Caller,
            "/api/v2/assets/{id}/thumbnail",
            thumbnails::thumbnail,
        ),
        Route::get(Caller, "/api/backends", backends::list),
        Route::post(Admin, "/api/backends/{name}/drain", backends::drain),
        Route::post(Admin, "/api/backends/{name}/undrain", backends::undrain),
        Route::get(Admin, "/metrics", metrics::metrics),
        Route::get(Caller, "/api/history", history::list),
        Route::get(Caller, "/api/history/{id}", history::get),
        Route::get(Caller, "/api/templates", templates::list),
        Route::post(Admin, "/api/templates", templates::create),
        Route::post(Admin, "/api/templates/reload", templates::reload),
        Route::get(Caller, "/api/templates/{name}", templates::get),
        Route::post(Caller, "/api/templates/{name}/jobs", templates::run),
        Route::post(Caller, "/api/session", session::create),
        Route::delete(Public, "/api/session", session::delete),
        Route::get(Public, "/", page::index),
        Route::get(Public, "/ui/{file}", page::file),
    ]
}

/// One method on one path, with who may use it. `GET` routes answer `HEAD` too, as axum
/// does.
struct Route {
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H: Handler<T, AppState>, T: 'static>(
        method: Method,
        access: Access,
        path: &'static str,
        handler: H,
    ) -> Self {
        let filter = match method {
            Method::POST => MethodFilter::POST,
            Method::HEAD => MethodFilter::HEAD,
            Method::DELETE => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        };
        Self {
            method,
            path,
            access,
            handler: on(filter, handler),
        }
    }

    fn get<H: Handler<T, AppState>, T: 'static>(
        access: Access,
        path: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::GET, access, path, handler)
    }

    fn post<H: Handler<T, AppState>, T: 'static>(
        access: Access,
        path: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::POST, access, path, handler)
    }

    fn head<H: Handler<T, AppState>, T: 'static>(
        access: Access,
        path: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::HEAD, access, path, handler)
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(
        access: Access,
        path: &'static str,
        handler: H,
    ) -> Self {
        Self::new(Method::DELETE, access, path, handler)
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
