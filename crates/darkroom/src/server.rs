//! Building the application and serving it on a listener the caller bound, until the
//! caller's shutdown future resolves. Tests bind port 0; `main` binds the configured one.

use std::future::Future;
use std::sync::Arc;

use crate::api::{self, AppState};
use crate::config::Config;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid backend {name:?}: {source}")]
    Backend {
        name: String,
        #[source]
        source: comfy::ComfyError,
    },
    #[error("http server failed")]
    Http(#[from] std::io::Error),
}

/// Serves Darkroom on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// [`ServeError`] when a backend URL is unusable or the listener fails.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut backends = Vec::new();
    for backend in &config.backends {
        let client =
            comfy::ComfyUiClient::new(&backend.url).map_err(|source| ServeError::Backend {
                name: backend.name.clone(),
                source,
            })?;
        backends.push((backend.name.clone(), client));
    }
    let state = AppState {
        config: Arc::new(config),
        backends: Arc::new(backends),
    };

    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}
