//! Building the application and serving it on a listener the caller bound, until the
//! caller's shutdown future resolves. Tests bind port 0; `main` binds the configured one.
//!
//! Start-up order: store (with migrations), blob store, templates, scheduler (which
//! reconciles every unfinished job before taking new work), retention sweep, then the HTTP
//! server. Shutdown runs it backwards: stop taking requests, let drivers finish what they
//! are storing.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;

use crate::api::{self, AppState};
use crate::artifacts::LocalBlobStore;
use crate::config::Config;
use crate::jobs::bus::JobBus;
use crate::jobs::model::BackendId;
use crate::scheduler::{BackendSpec, Context, Scheduler, Settings};
use crate::templates::Library;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid backend {name:?}: {source}")]
    Backend {
        name: String,
        #[source]
        source: comfy::ComfyError,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] crate::artifacts::ArtifactError),
    #[error("cannot load templates: {0}")]
    Templates(#[from] crate::templates::TemplateError),
    #[error("http server failed")]
    Http(#[from] std::io::Error),
}

/// Serves Darkroom on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// [`ServeError`] when the store, blobs or a backend cannot be set up, or the listener
/// fails.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    tokio::fs::create_dir_all(&config.data_dir).await?;
    let store = crate::store::open(&config.database_url).await?;
    tracing::info!(database = %crate::config::redact_url(&config.database_url), "store open");
    let blobs = LocalBlobStore::create(config.data_dir.join("blobs")).await?;
    // Loaded without /object_info, so start-up never waits on a backend; each template is
    // checked again with it on first use.
    let templates = Library::open(config.templates_folder(), None).await?;

    let mut backends = Vec::new();
    for backend in &config.backends {
        let client =
            comfy::ComfyUiClient::new(&backend.url).map_err(|source| ServeError::Backend {
                name: backend.name.clone(),
                source,
            })?;
        backends.push(BackendSpec {
            id: BackendId(backend.name.clone()),
            client,
            socket: comfy::SocketConfig::default(),
        });
    }
    let settings = Settings {
        retention: time::Duration::try_from(config.retention).unwrap_or(time::Duration::days(7)),
        backend_lost_after: config.backend_lost_after,
        ..Settings::default()
    };
    let bus = Arc::new(JobBus::default());
    let context = Context {
        store: Arc::clone(&store),
        blobs: blobs.clone(),
        bus: Arc::clone(&bus),
        settings,
    };
    let scheduler = Scheduler::start(context, backends.clone()).await?;
    tracing::info!(backends = backends.len(), "scheduler started");
    let sweeper = tokio::spawn(crate::retention::sweep_forever(
        Arc::clone(&store),
        blobs.clone(),
    ));

    let stopping = tokio_util::sync::CancellationToken::new();
    let state = AppState {
        config: Arc::new(config),
        store,
        blobs,
        bus,
        scheduler: scheduler.handle.clone(),
        backends: Arc::new(backends),
        node_classes: Arc::default(),
        templates: Arc::new(templates),
        stopping: stopping.clone(),
    };
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // Open event streams end when stopping starts; graceful shutdown waits for them.
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    // No Nagle delay: an event stream writes small frames one after another, and each
    // would otherwise wait for the client's delayed ACK (about 40 ms on Linux).
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("http server stopped");

    sweeper.abort();
    scheduler.shutdown().await;
    served?;
    Ok(())
}
