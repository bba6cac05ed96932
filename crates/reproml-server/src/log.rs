//! One structured log line per request (`tracing`): request id, method,
//! route, status and latency (µs; a split stream's until its headers). The id is sent back as `x-request-id`, so a
//! user who reports a problem can point at its log line; internal errors
//! are logged inside the request's span with the same id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Request ids count up from 1 in each server process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The header that carries a request's id back to the client.
pub const REQUEST_ID: &str = "x-request-id";

pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    // The route template, not the concrete path: identifiers stay out of
    // the log's cardinality, and the log says which handler answered.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!("request", id);
    let start = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(%method, route, status, latency_us, "answered");
        } else {
            tracing::info!(%method, route, status, latency_us, "answered");
        }
    });
    response
        .headers_mut()
        .insert(REQUEST_ID, HeaderValue::from(id));
    response
}
