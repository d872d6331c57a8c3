//! What every answer gets on its way out, in one layer: a request id, the trace span, the
//! request timeout, the metrics and the security headers.
//!
//! These were nine stacked layers (tower-http's request-id, trace and set-header layers,
//! tower's timeout behind an error handler, and a `from_fn` middleware for the metrics).
//! Axum boxes every layer added with `Router::layer` around every route, and `from_fn`
//! clones the rest of the stack per request, so on the status poll, the hot path, the stack
//! cost as much CPU as the handler itself. One hand-written
//! service does the same work with no allocation of its own beyond the request id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{header, HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};
use tracing::Span;

use crate::error::Error;
use crate::metrics::{Metrics, RouteLabel};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// For every answer that does not set its own (the console's assets do): nothing may load,
/// run or frame. The callback's page is plain HTML and needs none of it.
const STRICT_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
pub struct EdgeLayer {
    pub metrics: Arc<Metrics>,
    /// `limits.request_timeout_secs`: every request is bounded, answered as the API's 503.
    pub timeout: Duration,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S> Service<Request<Body>> for Edge<S>
where
    S: Service<Request<Body>, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        // A caller's own id is kept, so one id can follow a request across services.
        let request_id = match request.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        // Route patterns only, never the raw path: it would carry request ids and grow the
        // metrics without bound. The pattern is shared, not copied.
        let route = RouteLabel::new(request.extensions().get::<MatchedPath>().cloned());
        let method = crate::metrics::method_label(request.method());
        // The span names the method, the path and the request id only: the callback's query
        // carries the code and the state, which must never reach a log. Its fields are
        // formatted only when the span is enabled. Every value is a string field, which text
        // logs quote, so a path or a request id cannot forge another field.
        let span = tracing::info_span!(
            "http",
            method = request.method().as_str(),
            path = request.uri().path(),
            request_id = request_id.to_str().unwrap_or("-"),
        );
        let inner = {
            let _entered = span.enter();
            tracing::debug!("started processing request");
            self.inner.call(request)
        };
        EdgeFuture {
            inner,
            deadline: tokio::time::sleep(self.layer.timeout),
            finish: Some(Finish {
                metrics: self.layer.metrics.clone(),
                started,
                request_id,
                route,
                method,
            }),
            span,
        }
    }
}

/// A request id: a UUID from the fast RNG (ids are not secrets).
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

struct Finish {
    metrics: Arc<Metrics>,
    started: Instant,
    request_id: HeaderValue,
    route: RouteLabel,
    method: &'static str,
}

impl Finish {
    fn apply(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, self.request_id);
        for (name, value) in [
            (header::CONTENT_SECURITY_POLICY, STRICT_CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ] {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        }
        let latency = self.started.elapsed();
        let status = response.status();
        self.metrics
            .http(self.method, self.route, status.as_u16(), latency);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), ?latency, "response failed");
        } else {
            tracing::debug!(
                status = status.as_u16(),
                ?latency,
                "finished processing request"
            );
        }
        response
    }
}

pin_project_lite::pin_project! {
    pub struct EdgeFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        deadline: tokio::time::Sleep,
        finish: Option<Finish>,
        span: Span,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => Error::Timeout.into_response(),
                Poll::Pending => return Poll::Pending,
            },
        };
        let finish = this.finish.take().expect("polled after completion");
        Poll::Ready(Ok(finish.apply(response)))
    }
}
