//! Serving HTTP connections, in place of `axum::serve`, for what it does not offer: a
//! deadline on reading each request's headers. hyper starts that clock whenever it waits
//! for a request head, so it bounds both a client that sends its headers a byte at a time
//! (slowloris) and an idle keep-alive connection. Request bodies have their own stall
//! timeout, as a layer in the router. HTTP/2 and upgrades are served as axum serves them.
//!
//! On shutdown the listener closes first, then every connection finishes its request in
//! flight and closes; event streams end on their own (`AppState::stopping`).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long to wait after the listener fails (too many open files, say) before accepting
/// again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the open
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // No Nagle delay: an event stream writes small frames one after another, and each
        // would otherwise wait for the client's delayed ACK (about 40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }

        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        // WebSockets over HTTP/2, as axum::serve allows.
        builder.http2().enable_connect_protocol();
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client that went away or was too slow: worth a debug line, no more.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
