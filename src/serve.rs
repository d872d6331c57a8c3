//! The listeners' HTTP/1.1 connections: a small front for plain requests, hyper for the rest.
//!
//! Why not `axum::serve`: hyper keeps its read and write buffers (8 KiB each) in every
//! connection for as long as it is open, and a long poll holds its connection for up to a
//! minute. Under `axum::serve`, 10,000 waiters cost 17 KiB each before the router did any work,
//! which alone broke issue 11's memory target (BENCHMARKS.md, "Long poll"). This front parses
//! a request's head, builds the `http::Request` with the header values and the target sharing
//! the bytes read, frees the read buffer while an answer waits, and writes the answer in one
//! write, so a waiting connection holds its socket and its handler's future and little else.
//!
//! It serves only what is plain: HTTP/1.1, an origin-form target, no body or a
//! `Content-Length` body within the router's body limit, and no `Transfer-Encoding`, `Expect`
//! or `Upgrade`. Anything else, and anything `httparse` rejects, goes with the bytes already
//! read to hyper's HTTP/1 server for the rest of that connection, so unusual framing is judged
//! by hyper and never guessed at here. Both call the same router.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use axum::Router;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::routes::MAX_BODY_BYTES;

/// A longer head goes to hyper, whose own limit is larger.
const MAX_HEAD: usize = 16 * 1024;
/// More headers go to hyper, whose own limit is 100.
const MAX_HEADERS: usize = 64;
/// What one read asks for: a whole head of a usual request.
const READ_CHUNK: usize = 512;
/// A request that has begun must be complete (head and body) within this, so a client cannot
/// hold a connection by sending a byte at a time (hyper's default header-read timeout).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop` resolves; then answers what is in flight, closes
/// idle connections, and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stopping_tx, stopping) = watch::channel(false);
    // Every connection holds a receiver; `closed()` resolves when the last one is gone.
    let (open_tx, open) = watch::channel(());
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
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
        let (app, stopping, open) = (app.clone(), stopping.clone(), open.clone());
        tokio::spawn(async move {
            connection(stream, peer, app, stopping).await;
            drop(open);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    drop(open);
    open_tx.closed().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection's requests, in order, until the client leaves or asks to close.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    mut app: Router,
    stopping: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::new();
    // Resolves at shutdown. Made once per connection: one made for each request would join
    // and leave the channel's list of waiters every time.
    let mut stop = stopping.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopped);
    loop {
        // Reading and writing are boxed, and nothing of a request is kept in a local across
        // an await: the connection's own future lives as long as the connection, and so for a
        // long poll's whole wait; with both inline it was 1.5 KiB.
        let next = next_request(&mut stream, &mut buf, peer, &mut app, stopped.as_mut());
        let (answer, close) = match Box::pin(next).await {
            Next::Plain { answer, close } => (answer, close),
            Next::Closed => return,
            Next::Other => return Box::pin(hand_to_hyper(stream, buf, peer, app, stopping)).await,
        };
        let Some(response) = watched(answer, &mut stream, &mut buf).await else {
            return;
        };
        let close = close || *stopping.borrow();
        match Box::pin(write_response(&mut stream, response, close)).await {
            Ok(Written::KeepAlive) => {}
            Ok(Written::Closing) | Err(_) => return,
        }
    }
}

/// The router's answer, or `None` if the client left first. Watching the socket while the
/// answer is pending is how a client that leaves frees its long poll at once: dropping
/// `answer` drops its waiter. What a pipelining client sends meanwhile is kept in `buf` for
/// the next request.
async fn watched(
    mut answer: Answer,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Option<Response<Body>> {
    // Most answers are ready at once, and the buffer then serves the next request. One that
    // waits (a long poll) frees it, if nothing else is in it, for as long as it waits.
    let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
    if let Poll::Ready(response) = first {
        return Some(response.unwrap_or_else(|e| match e {}));
    }
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    loop {
        tokio::select! {
            biased;
            response = &mut answer => return Some(response.unwrap_or_else(|e| match e {})),
            read = stream.read_buf(buf), if buf.len() < MAX_HEAD => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

/// The router's answer to a request, under way.
type Answer = Pin<Box<axum::routing::future::RouteFuture<std::convert::Infallible>>>;

enum Next {
    Plain {
        answer: Answer,
        /// The client asked to close after this answer.
        close: bool,
    },
    /// Not for this front: hyper takes the connection, with what was read.
    Other,
    Closed,
}

/// Reads until a whole request (head and body) is in `buf`, and takes it out.
async fn next_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
    app: &mut Router,
    mut stopped: Pin<&mut impl Future<Output = ()>>,
) -> Next {
    // Set when a request's first bytes are in: the whole request is due by then.
    let mut due = None;
    loop {
        if !buf.is_empty() {
            let due = *due.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
            match take_head(buf) {
                Parsed::Partial if buf.len() < MAX_HEAD => {}
                Parsed::Partial | Parsed::Other => return Next::Other,
                Parsed::Head(head) => return read_body(stream, buf, head, peer, app, due).await,
            }
        }
        buf.reserve(READ_CHUNK);
        let read = match due {
            // Idle between requests: a shutdown closes the connection here.
            None => tokio::select! {
                read = stream.read_buf(buf) => read,
                () = &mut stopped => return Next::Closed,
            },
            Some(due) => match tokio::time::timeout_at(due, stream.read_buf(buf)).await {
                Ok(read) => read,
                Err(_) => return Next::Closed,
            },
        };
        match read {
            Ok(0) | Err(_) => return Next::Closed,
            Ok(_) => {}
        }
    }
}

async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    head: Head,
    peer: SocketAddr,
    app: &mut Router,
    due: Instant,
) -> Next {
    while buf.len() < head.body_len {
        buf.reserve(head.body_len - buf.len());
        match tokio::time::timeout_at(due, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Next::Closed,
        }
    }
    let body = match head.body_len {
        0 => Body::empty(),
        n => Body::from(buf.split_to(n).freeze()),
    };
    let mut request = Request::new(body);
    *request.method_mut() = head.method;
    *request.uri_mut() = head.uri;
    *request.headers_mut() = head.headers;
    request.extensions_mut().insert(ConnectInfo(peer));
    // No `poll_ready` first: axum's `Router` is always ready.
    Next::Plain {
        answer: Box::pin(tower::Service::call(app, request)),
        close: head.close,
    }
}

// Returned once per request and matched at once, never kept: boxing would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Partial,
    Other,
    Head(Head),
}

struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body_len: usize,
    close: bool,
}

/// Parses the request head at the start of `buf`. A head plain enough for this front is taken
/// out of `buf`, its target and header values sharing the bytes read rather than copying them;
/// any other leaves `buf` as it was.
fn take_head(buf: &mut BytesMut) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    // HTTP/1.0's keep-alive rules, HEAD's bodiless answers and CONNECT's tunnels are hyper's.
    let method = match parsed.method.map(|m| Method::from_bytes(m.as_bytes())) {
        Some(Ok(m)) if m != Method::HEAD && m != Method::CONNECT => m,
        _ => return Parsed::Other,
    };
    let path = parsed.path.unwrap_or_default();
    if parsed.version != Some(1) || !path.starts_with('/') {
        return Parsed::Other;
    }
    // Where each part lies in `buf` (the head is under `MAX_HEAD`, so a u16 holds it).
    let start = buf.as_ptr() as usize;
    let span = |part: &[u8]| {
        let at = part.as_ptr() as usize - start;
        (at as u16, (at + part.len()) as u16)
    };
    let target = span(path.as_bytes());
    let mut fields = [((0, 0), (0, 0)); MAX_HEADERS];
    let (mut body_len, mut close) = (None, false);
    for (field, slot) in fields.iter_mut().zip(parsed.headers.iter()) {
        let name = slot.name.as_bytes();
        let is = |other: &HeaderName| name.eq_ignore_ascii_case(other.as_str().as_bytes());
        if is(&header::TRANSFER_ENCODING) || is(&header::EXPECT) || is(&header::UPGRADE) {
            return Parsed::Other;
        }
        if is(&header::CONTENT_LENGTH) {
            match (body_len, content_length(slot.value)) {
                (None, Some(n)) if n <= MAX_BODY_BYTES => body_len = Some(n),
                // Repeated, malformed or over the limit: hyper answers it.
                _ => return Parsed::Other,
            }
        }
        if is(&header::CONNECTION) && has_token(slot.value, "close") {
            close = true;
        }
        *field = (span(name), span(slot.value));
    }
    let fields = &fields[..parsed.headers.len()];
    let head = buf.split_to(len).freeze();
    let part = |(from, to): (u16, u16)| head.slice(usize::from(from)..usize::from(to));
    let Ok(uri) = Uri::from_maybe_shared(part(target)) else {
        return put_back(buf, &head);
    };
    // One slot spare for the request id the edge layer adds when the client sent none.
    let mut headers = HeaderMap::with_capacity(fields.len() + 1);
    for &(name, value) in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&part(name)),
            HeaderValue::from_maybe_shared(part(value)),
        ) else {
            return put_back(buf, &head);
        };
        headers.append(name, value);
    }
    Parsed::Head(Head {
        method,
        uri,
        headers,
        body_len: body_len.unwrap_or(0),
        close,
    })
}

/// A head `httparse` accepted but `http` did not: back in front of what followed it, for
/// hyper to answer.
fn put_back(buf: &mut BytesMut, head: &[u8]) -> Parsed {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(head);
    whole.extend_from_slice(buf);
    *buf = whole;
    Parsed::Other
}

/// Digits only: no sign, no spaces, no list.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The answer as hyper would write it: status line, the router's headers, `date`, and the
/// length of the body, in one write.
async fn write_response(
    stream: &mut TcpStream,
    response: Response<Body>,
    close: bool,
) -> io::Result<Written> {
    let (parts, body) = response.into_parts();
    let body = whole_body(body).await?;
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == axum::http::StatusCode::NO_CONTENT
        || status == axum::http::StatusCode::NOT_MODIFIED;
    // Sized once: the status line, the headers, the three this function adds, the body.
    let head_len: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(128 + head_len + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let (mut close, mut dated) = (close, false);
    for (name, value) in &parts.headers {
        // Framing is this function's to write, from the body it holds.
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONNECTION {
            close |= has_token(value.as_bytes(), "close");
            continue;
        }
        dated |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        with_date(|date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    if !bodiless {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless {
        out.extend_from_slice(&body);
    }
    stream.write_all(&out).await?;
    Ok(if close {
        Written::Closing
    } else {
        Written::KeepAlive
    })
}

/// The body in one piece. The router's bodies are whole already (one frame), so this takes
/// that frame as it is; a body of several frames is joined.
async fn whole_body(mut body: Body) -> io::Result<Bytes> {
    let mut whole: Option<Bytes> = None;
    let mut joined = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: HTTP/1.1 without chunking cannot carry them
        };
        match whole.take() {
            None if joined.is_empty() => whole = Some(data),
            first => {
                joined.extend_from_slice(&first.unwrap_or_default());
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(whole.unwrap_or_else(|| Bytes::from(joined)))
}

/// Whether the connection stays open after an answer.
enum Written {
    KeepAlive,
    Closing,
}

/// The `date` header's value, formatted once a second per thread, as hyper does.
fn with_date(write: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        write(text.as_bytes());
    });
}

/// The rest of a connection, served by hyper's HTTP/1 server, starting with what the front
/// already read.
async fn hand_to_hyper(
    stream: TcpStream,
    read: BytesMut,
    peer: SocketAddr,
    app: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let io = hyper_util::rt::TokioIo::new(Rewind {
        read: read.freeze(),
        stream,
    });
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stopping| *stopping) => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// A stream that first gives back the bytes already read from it.
struct Rewind {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(out.remaining());
            out.put_slice(&self.read.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, data)
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

    fn kind(head: &[u8]) -> &'static str {
        let mut buf = BytesMut::from(head);
        match take_head(&mut buf) {
            Parsed::Partial => "partial",
            Parsed::Other => "hyper",
            Parsed::Head(_) => "front",
        }
    }

    #[test]
    fn plain_requests_are_the_fronts_and_every_unusual_one_is_hyper_s() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"GET /v1/x/status?wait=25 HTTP/1.1\r\nhost: a\r\n\r\n",
                "front",
            ),
            (
                b"POST /v1/token-requests HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
                "front",
            ),
            (b"GET /healthz HTTP/1.1\r\nhost: a\r\n", "partial"),
            (b"GET /healthz HTTP/1.0\r\n\r\n", "hyper"),
            (b"HEAD /healthz HTTP/1.1\r\n\r\n", "hyper"),
            (b"GET http://a/healthz HTTP/1.1\r\n\r\n", "hyper"),
            (
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
                "hyper",
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
                "hyper",
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
                "hyper",
            ),
            (b"POST / HTTP/1.1\r\ncontent-length: +2\r\n\r\n", "hyper"),
            (b"POST / HTTP/1.1\r\ncontent-length: 70000\r\n\r\n", "hyper"),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n",
                "hyper",
            ),
            (
                b"GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
                "hyper",
            ),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "hyper"),
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", "hyper"),
        ];
        for (head, expected) in cases {
            assert_eq!(kind(head), *expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_head_http_refuses_after_httparse_took_it_is_put_back_byte_for_byte() {
        // httparse takes `<` in a target; `http::Uri` does not.
        let request: &[u8] = b"GET /a<b HTTP/1.1\r\nhost: a\r\n\r\nGET /next HTTP/1.1\r\n";
        let mut buf = BytesMut::from(request);

        assert!(matches!(take_head(&mut buf), Parsed::Other));
        assert_eq!(&buf[..], request, "hyper gets every byte, in order");
    }

    #[test]
    fn a_plain_head_is_taken_whole_with_its_framing() {
        let request: &[u8] = b"POST /v1/token-requests?x=1 HTTP/1.1\r\nHost: a\r\n\
              Content-Length: 2\r\nConnection: keep-alive, Close\r\n\r\n{}";
        let mut buf = BytesMut::from(request);
        let Parsed::Head(head) = take_head(&mut buf) else {
            panic!("a plain head");
        };
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri, "/v1/token-requests?x=1");
        assert_eq!(head.headers["host"], "a");
        assert_eq!((head.body_len, head.close), (2, true));
        assert_eq!(&buf[..], b"{}", "the head is taken, the body left");
    }

    /// The deadline runs from a request's first byte, not from each read, or a byte every
    /// 29 s would hold a connection for ever.
    #[tokio::test(start_paused = true)]
    async fn a_request_sent_a_byte_at_a_time_is_cut_off_30_s_after_it_began() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stopping) = watch::channel(false);
        let server = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            connection(stream, peer, Router::new(), stopping).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();

        for byte in b"GET /healthz HTTP/1.1\r\nhost: a\r\n" {
            if server.is_finished() || client.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        server.await.unwrap();

        let held = started.elapsed();
        assert!(
            held >= HEAD_TIMEOUT && held <= HEAD_TIMEOUT + Duration::from_secs(10),
            "held {held:?}"
        );
    }

    /// The connection's own future lives as long as the connection, so a long poll holds it
    /// for its whole wait: 10,000 waiters pay for every byte of it (BENCHMARKS.md, "Long
    /// poll"). With its phases inline it was 1.5 to 2.3 KiB; it is 656 bytes in a debug
    /// build.
    #[tokio::test]
    async fn a_connections_own_future_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let (_stop, stopping) = watch::channel(false);

        let future = connection(stream, peer, Router::new(), stopping);

        let size = std::mem::size_of_val(&future);
        assert!(size <= 768, "the connection's future is {size} bytes");
    }
}
