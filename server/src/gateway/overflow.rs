//! Connections past the limit: answered cheaply and closed, so a client
//! learns why (503 with `Retry-After`) and a health check still gets its
//! answer while the gateway is full. A few at a time; past that, new
//! connections are closed at once.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::IntoResponse;
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::web::errors::overloaded;

/// Connections over the limit that are answered at once.
pub(super) const OVERFLOW_CONNECTIONS: usize = 64;

/// The most time an over-the-limit connection is given in all.
const OVERFLOW_DEADLINE: Duration = Duration::from_secs(5);

/// Answers the one request of `stream`: `/healthz` as usual, anything else
/// 503; then closes it.
pub(super) async fn answer(stream: TcpStream, limit: usize, permit: OwnedSemaphorePermit) {
    let _permit = permit;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
        let response = if request.uri().path() == "/healthz" {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                r#"{"status":"ok"}"#,
            )
                .into_response()
        } else {
            overloaded(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the gateway is serving its limit of {limit} connections; retry later"),
            )
            .into_response()
        };
        Ok::<_, Infallible>(response)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_DEADLINE / 2)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(OVERFLOW_DEADLINE, conn).await;
}
