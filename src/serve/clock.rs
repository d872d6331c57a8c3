//! One connection's deadlines, kept beside hyper rather than inside it.
//!
//! hyper's own header-read timer starts when it begins waiting for a head, so it would also
//! close a keep-alive connection that is merely idle, and it has no idle or write deadline at
//! all. The [`Clock`] tracks the three phases a connection can be in and gives the one
//! deadline that applies:
//! - no request in progress and no byte of the next one: closed `idle_timeout` after the last
//!   answer (or after the accept);
//! - the first bytes of a head read: the head is due `header_read_timeout` after them;
//! - an answer whose write makes no progress: closed `write_timeout` after it stalled, so a
//!   client that pipelines and never reads cannot hold the connection.
//!
//! While a request is being handled, the handler's own deadline (`limits.request_timeout_secs`,
//! in the edge layer) applies instead.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The connection-level limits, from `limits.*`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub header_read: Duration,
    pub write: Duration,
}

/// Shared by the connection's stream (which sees bytes) and its service (which sees requests).
pub struct Clock {
    timeouts: Timeouts,
    state: Mutex<Phase>,
}

#[derive(Debug)]
struct Phase {
    /// Requests handed to the router whose answer is not ready yet.
    in_flight: u32,
    /// When the connection last had nothing to do.
    idle_since: Instant,
    /// When the first byte of the next head was read, if one was.
    head_since: Option<Instant>,
    /// When a write last found the socket full, if it still is.
    stalled_since: Option<Instant>,
}

impl Clock {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            timeouts,
            state: Mutex::new(Phase {
                in_flight: 0,
                idle_since: Instant::now(),
                head_since: None,
                stalled_since: None,
            }),
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection must be closed if nothing changes; `None` while a request is
    /// being handled and its answer flows.
    pub fn deadline(&self) -> Option<Instant> {
        let phase = self.phase();
        let stalled = phase.stalled_since.map(|t| t + self.timeouts.write);
        let waiting = (phase.in_flight == 0).then(|| match phase.head_since {
            Some(t) => t + self.timeouts.header_read,
            None => phase.idle_since + self.timeouts.idle,
        });
        match (stalled, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A whole head arrived and went to the router; the guard marks its answer ready.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.head_since = None;
        InFlight(self.clone())
    }

    fn read(&self) {
        let mut phase = self.phase();
        if phase.in_flight == 0 && phase.head_since.is_none() {
            phase.head_since = Some(Instant::now());
        }
    }

    fn wrote(&self, progressed: bool) {
        let mut phase = self.phase();
        if progressed {
            phase.stalled_since = None;
        } else if phase.stalled_since.is_none() {
            phase.stalled_since = Some(Instant::now());
        }
    }
}

/// A request being handled; dropped when its answer is ready (or the request is abandoned).
pub struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.in_flight -= 1;
        if phase.in_flight == 0 {
            phase.idle_since = Instant::now();
        }
    }
}

/// A stream that tells its [`Clock`] when bytes arrive and when writes stall.
pub struct Clocked<S> {
    stream: S,
    clock: Arc<Clock>,
}

impl<S> Clocked<S> {
    pub fn new(stream: S, clock: Arc<Clock>) -> Self {
        Self { stream, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Clocked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> Clocked<S> {
    fn track<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.clock.wrote(polled.is_ready());
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Clocked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.track(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, data);
        self.track(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        idle: Duration::from_secs(60),
        header_read: Duration::from_secs(30),
        write: Duration::from_secs(20),
    };

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_due_after_the_idle_timeout_and_a_started_head_after_the_header_timeout(
    ) {
        let clock = Clock::new(T);
        let opened = Instant::now();
        assert_eq!(clock.deadline(), Some(opened + T.idle));

        tokio::time::advance(Duration::from_secs(50)).await;
        clock.read();
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.read();
        assert_eq!(
            clock.deadline(),
            Some(opened + Duration::from_secs(50) + T.header_read),
            "the head's deadline runs from its first byte, not from each read"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_has_no_deadline_until_its_answer_stalls() {
        let clock = Clock::new(T);
        clock.read();
        let request = clock.request_started();
        assert_eq!(clock.deadline(), None);

        clock.wrote(false);
        let stalled = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.wrote(false);
        assert_eq!(clock.deadline(), Some(stalled + T.write));

        clock.wrote(true);
        drop(request);
        assert_eq!(clock.deadline(), Some(Instant::now() + T.idle));
    }
}
