//! The listeners: hyper's HTTP/1 server on every accepted connection, with the
//! connection-level limits around it.
//!
//! - [`gate`]: how many connections may be open, overall and per peer address;
//! - [`clock`]: each connection's idle, header-read and write deadlines;
//! - here: the accept loop, and a shutdown that lets requests in flight finish for at most
//!   `limits.shutdown_grace_secs`, then closes whatever is left.

mod clock;
mod gate;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::LimitsConfig;
use crate::metrics::Metrics;

pub use clock::Timeouts;
pub use gate::{Gate, Refusal};

use clock::{Clock, Clocked};

/// The most of a request's head (and of a body chunk) hyper buffers for one connection.
/// hyper's default is about 400 KiB; a head needs a few, and the router's bodies are at most
/// 64 KiB, which the handlers read in pieces.
const MAX_BUFFER: usize = 64 * 1024;

/// What every listener of one process shares: the connection counts and the limits.
#[derive(Clone)]
pub struct Listeners {
    gate: Arc<Gate>,
    timeouts: Timeouts,
    grace: Duration,
}

impl Listeners {
    pub fn new(limits: &LimitsConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            gate: Gate::new(
                limits.max_connections,
                limits.max_connections_per_ip,
                metrics,
            ),
            timeouts: Timeouts {
                idle: Duration::from_secs(limits.idle_timeout_secs),
                header_read: Duration::from_secs(limits.header_read_timeout_secs),
                write: Duration::from_secs(limits.request_timeout_secs),
            },
            grace: Duration::from_secs(limits.shutdown_grace_secs),
        }
    }

    /// Serves `app` on `listener` until `stop` resolves. Then it stops accepting, lets the
    /// requests in flight finish for at most the grace period, closes whatever is left, and
    /// returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        stop: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let (stopping_tx, stopping) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut stop => break,
            };
            // Finished connections leave the set here, so it holds only open ones.
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                // The client gave up before we took it: nothing to do.
                Err(e) if is_connection_error(&e) => continue,
                // Out of descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut stop => break,
                    }
                }
            };
            let Ok(ticket) = self.gate.admit(peer.ip()) else {
                continue; // dropping the stream closes it, unanswered
            };
            let (app, timeouts, stopping) = (app.clone(), self.timeouts, stopping.clone());
            connections.spawn(async move {
                connection(stream, peer, app, timeouts, stopping).await;
                drop(ticket);
            });
        }
        drop(listener);
        let _ = stopping_tx.send(true);
        let all_closed = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace, all_closed).await.is_err() {
            tracing::warn!(
                open = connections.len(),
                "shutdown grace is over; closing the connections still open"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, served by hyper until the client leaves, a deadline passes, or shutdown
/// has let its last request finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    timeouts: Timeouts,
    mut stopping: watch::Receiver<bool>,
) {
    // Answers are written whole; waiting to coalesce them only delays the client.
    let _ = stream.set_nodelay(true);
    let clock = Clock::new(timeouts);
    let service = {
        let clock = clock.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = clock.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = app.clone().oneshot(request);
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        })
    };
    let io = TokioIo::new(Clocked::new(stream, clock.clone()));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper's own timer runs from when it starts waiting for a head, idle time included,
        // so it stays as a backstop behind the clock's exact idle and head deadlines.
        .header_read_timeout(timeouts.idle + timeouts.header_read)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        () = within_deadlines(connection.as_mut(), &clock) => return,
        _ = stopping.wait_for(|stopping| *stopping) => {}
    }
    // Idle now: closes at once. Mid-request: after its answer (the grace bounds it).
    connection.as_mut().graceful_shutdown();
    within_deadlines(connection.as_mut(), &clock).await;
}

/// Drives `connection` until it ends or its clock's deadline passes. The deadline can only
/// change while the connection is polled (its stream and service tell the clock), so it is
/// read again after every poll.
async fn within_deadlines<F: Future>(mut connection: Pin<&mut F>, clock: &Clock) {
    let far = || Instant::now() + Duration::from_secs(24 * 3600);
    let mut armed = clock.deadline();
    let sleep = tokio::time::sleep_until(armed.unwrap_or_else(far));
    tokio::pin!(sleep);
    std::future::poll_fn(|cx| {
        if connection.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let deadline = clock.deadline();
        if deadline != armed {
            armed = deadline;
            sleep.as_mut().reset(deadline.unwrap_or_else(far));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            if armed.is_some() {
                // Dropping the connection closes the socket.
                return Poll::Ready(());
            }
            sleep.as_mut().reset(far());
            let _ = sleep.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}
