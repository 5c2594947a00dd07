//! HTTP conventions shared by every service: error bodies, request ids, metrics, JSON
//! parsing, listing, and serving with graceful shutdown.

pub mod error;
pub mod json;
pub mod metrics;
pub mod microversion;
pub mod pagination;
pub mod request_id;
pub mod window;

pub use error::{ApiError, ApiResult, ErrorStyle};
pub use json::{wrapped, ApiJson};

use axum::Router;

/// Wraps a service's router in the shared layers: request context (id, span, metrics),
/// error rendering in the service's style, the body size limit, and `/metrics`.
pub fn service_router(service: &'static str, style: ErrorStyle, max_body_bytes: usize, routes: Router) -> Router {
    routes
        .route("/metrics", axum::routing::get(metrics::metrics_handler))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(style, error::render_errors))
        .layer(axum::middleware::from_fn_with_state(service, request_id::request_context))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
