//! Building the application and serving it on a listener the caller bound, until the
//! caller's shutdown future resolves. Tests bind port 0; `main` binds the configured one.
//!
//! Start-up order: store (with migrations), blob store, templates, scheduler (which
//! reconciles every unfinished job before taking new work), retention sweep, the relay of
//! other replicas' events (on a shared store), then the HTTP server. Shutdown runs it
//! backwards: stop taking requests, let drivers finish what they are storing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::{self, AppState, Services};
use crate::artifacts::ArtifactsLocation;
use crate::auth::{Auth, ExposedWithoutKeys};
use crate::config::Config;
use crate::jobs::bus::JobBus;
use crate::jobs::model::{BackendId, ReplicaId};
use crate::scheduler::managed::ManagedSpec;
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
    #[error("cannot prepare managed backend {name:?}: {source}")]
    Managed {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] crate::artifacts::ArtifactError),
    #[error("cannot load templates: {0}")]
    Templates(#[from] crate::templates::TemplateError),
    #[error(transparent)]
    Exposed(#[from] ExposedWithoutKeys),
    #[error("http server failed")]
    Http(#[from] std::io::Error),
}

/// Refuses to serve on `address` when it is not loopback, no API key exists and the
/// configuration does not say `open_server`. Called before binding, so such a server
/// never listens; [`serve`] checks again with the address it was handed.
///
/// # Errors
///
/// [`ServeError::Exposed`]; store faults while counting keys.
pub async fn check_exposure(config: &Config, address: SocketAddr) -> Result<(), ServeError> {
    if address.ip().is_loopback() {
        return Ok(());
    }
    let store = crate::store::open_beside_server(&config.database_url).await?;
    let keys = store.count_live_keys().await?;
    crate::auth::check_exposure(address, keys, config.open_server)?;
    Ok(())
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
    // Held until `serve` returns: one server per SQLite database. Claimed before the store
    // opens, because opening migrates it: a server refused here must leave the database
    // as the one serving it knows it.
    let _ownership = crate::store::claim_ownership(&config.database_url)?;
    let store = crate::store::open(&config.database_url).await?;
    tracing::info!(database = %crate::config::redact_url(&config.database_url), "store open");
    let location = ArtifactsLocation::parse(&config.artifacts_url, &config.data_dir, &config.s3)?;
    let blobs = crate::artifacts::open(&location).await?;
    // Small blobs in the database only beside a local folder: blobs in S3 are shared.
    let blobs = match location {
        ArtifactsLocation::Local(_) => store.keep_small_blobs(blobs),
        ArtifactsLocation::S3 { .. } => blobs,
    };
    tracing::info!(blobs = %location, "blob store open");
    // Loaded without /object_info, so start-up never waits on a backend; each template is
    // checked again with it on first use.
    let templates = Library::open(config.templates_folder(), None).await?;

    let address = listener.local_addr()?;
    let keys = store.count_live_keys().await?;
    crate::auth::check_exposure(address, keys, config.open_server)?;
    tracing::info!(keys, "api keys");

    let backends = backend_specs(&config)?;
    let settings = Settings {
        retention: time::Duration::try_from(config.retention).unwrap_or(time::Duration::days(7)),
        backend_lost_after: config.backend_lost_after,
        max_attempts: config.max_attempts,
        replica: replica_id(&config, store.is_shared()),
        lease_duration: config.lease_duration,
        max_run_time: (!config.timeouts.max_run_time.is_zero())
            .then_some(config.timeouts.max_run_time),
        ..Settings::default()
    };
    let bus = Arc::new(JobBus::default());
    let context = Context::new(
        Arc::clone(&store),
        blobs.clone(),
        Arc::clone(&bus),
        settings,
    );
    let scheduler = Scheduler::start(context, backends.clone()).await?;
    tracing::info!(backends = backends.len(), "scheduler started");
    let sweeper = tokio::spawn(crate::retention::sweep_forever(
        Arc::clone(&store),
        blobs.clone(),
    ));
    let relay = match store.event_feed().await? {
        Some(feed) => {
            let scheduler = scheduler.handle.clone();
            Some(tokio::spawn(crate::jobs::relay::relay(
                Arc::clone(&store),
                Arc::clone(&bus),
                feed,
                move || scheduler.wake(),
            )))
        }
        None => None,
    };

    let stopping = tokio_util::sync::CancellationToken::new();
    let header_timeout = config.timeouts.client_header;
    let state = AppState::new(Services {
        auth: Arc::new(Auth::new(&config, address)),
        config: Arc::new(config),
        store: Arc::clone(&store),
        blobs,
        bus,
        scheduler: scheduler.handle.clone(),
        backends: Arc::new(backends),
        node_classes: Arc::default(),
        templates: Arc::new(templates),
        stopping: stopping.clone(),
    });
    tracing::info!(%address, "listening");
    // Open event streams end when stopping starts; graceful shutdown waits for them.
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    crate::connections::serve(listener, api::router(state), header_timeout, shutdown).await;
    tracing::info!("http server stopped");

    sweeper.abort();
    if let Some(relay) = relay {
        relay.abort();
    }
    scheduler.shutdown().await;
    store.close().await;
    Ok(())
}

/// One spec per configured backend; a managed one gets its port and folder now, so its
/// URL is known before its process starts.
fn backend_specs(config: &Config) -> Result<Vec<BackendSpec>, ServeError> {
    let timeouts = comfy::Timeouts {
        connect: config.timeouts.backend_connect,
        call: config.timeouts.backend_call,
        ..comfy::Timeouts::default()
    };
    let mut specs = Vec::new();
    for backend in &config.backends {
        let managed = match &backend.managed {
            Some(managed) => Some(
                ManagedSpec::prepare(&backend.name, managed.clone(), &config.data_dir).map_err(
                    |source| ServeError::Managed {
                        name: backend.name.clone(),
                        source,
                    },
                )?,
            ),
            None => None,
        };
        let url = managed
            .as_ref()
            .map_or_else(|| backend.url.clone(), ManagedSpec::url);
        let client = comfy::ComfyUiClient::with_timeouts(&url, timeouts).map_err(|source| {
            ServeError::Backend {
                name: backend.name.clone(),
                source,
            }
        })?;
        let mut spec = BackendSpec::new(BackendId(backend.name.clone()), client);
        spec.weight = backend.weight;
        spec.tags.clone_from(&backend.tags);
        spec.max_prompts = backend
            .max_prompts
            .unwrap_or(config.prompts_per_backend)
            .try_into()
            .unwrap_or(usize::MAX);
        spec.managed = managed;
        specs.push(spec);
    }
    Ok(specs)
}

/// The configured replica id, else `<hostname>-<pid>` on a shared store (unique among
/// replicas, even several on one host) or the hostname alone on a store one process owns
/// (the same after a restart, which then takes its leases back without waiting).
fn replica_id(config: &Config, shared: bool) -> ReplicaId {
    if !config.replica_id.is_empty() {
        return ReplicaId(config.replica_id.clone());
    }
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|file| std::fs::read_to_string(file).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "darkroom".to_owned());
    if shared {
        ReplicaId(format!("{host}-{}", std::process::id()))
    } else {
        ReplicaId(host)
    }
}
