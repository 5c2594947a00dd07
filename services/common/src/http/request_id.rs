//! `x-openstack-request-id` on every response and in every log span, plus request
//! metrics.

use super::metrics::METRICS;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// The id of the request being served, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives each request an id, runs it inside a span carrying that id, logs one line when
/// it ends and records it in the metrics under the service's name.
pub async fn request_context(State(service): State<&'static str>, mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, service, %method, path = %req.uri().path());
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request served");
    });
    METRICS.record_request(service, method.as_str(), &route, status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        // Nova also answers with the id under its own name, which its clients read.
        if service == "compute" {
            resp.headers_mut().insert("x-compute-request-id", v.clone());
        }
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}
