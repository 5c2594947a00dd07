//! Structured logs with `tracing`. Every request runs in a span carrying its request id
//! (see `http::request_id`). Tokens and passwords are never logged: handlers never log
//! request bodies or headers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` wins over the configured level.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
