//! One tracing span per request: its method, the route it matched (never the path:
//! paths may carry numbers), the status it got and how long it took. What a handler
//! logs (an accepted message's id) is inside it.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

/// `App::new().wrap(actix_web::middleware::from_fn(hermod_api::request_span))`.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        ms = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    if let Ok(r) = &res {
        span.record(
            "route",
            r.request().match_pattern().as_deref().unwrap_or("unrouted"),
        );
        span.record("status", r.status().as_u16());
    }
    span.record("ms", started.elapsed().as_millis() as u64);
    span.in_scope(|| tracing::debug!("answered"));
    res
}
