//! The connection-level limits of the real binary, spoken to over raw sockets: the caps on
//! open connections, the idle and header-read deadlines, and a shutdown that does not wait
//! for clients that never finish.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::*;

/// A router on the fake with `limits` (pairs of `limits.*` key and value) set.
async fn router_with_limits(dir: &Path, limits: &[(&str, &str)]) -> (Router, FakeUpstream) {
    let fake = fake().await;
    let port = free_port();
    let mut env = router_env(port, &fake, dir);
    let keys: Vec<(String, String)> = limits
        .iter()
        .map(|(k, v)| {
            (
                format!("AUTH_ROUTER_LIMITS__{}", k.to_uppercase()),
                v.to_string(),
            )
        })
        .collect();
    let keys: Vec<(&'static str, String)> = keys
        .into_iter()
        .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v))
        .collect();
    env.extend(keys);
    let router = Router::start(dir, port, &env, "router.log").await;
    (router, fake)
}

fn addr(router: &Router) -> SocketAddr {
    router.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection from `from` (a loopback address) to `to`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// How long until the router closes `stream` (reads see the end), at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// The router's answer to a metrics scrape, for its connection counters.
async fn metric(router: &Router, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", router.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn three_thousand_idle_sockets_from_one_address_leave_healthz_answering_for_another() {
    let dir = TempDir::new().unwrap();
    let (router, _fake) = router_with_limits(
        dir.path(),
        &[
            ("max_connections_per_ip", "100"),
            ("idle_timeout_secs", "60"),
        ],
    )
    .await;
    let to = addr(&router);

    let mut idle = Vec::new();
    for _ in 0..3000 {
        if let Ok(stream) = connect_from([127, 0, 0, 2], to).await {
            idle.push(stream);
        }
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        reqwest::get(format!("{}/healthz", router.base)),
    )
    .await;

    assert!(
        answer.is_ok_and(|r| r.is_ok_and(|r| r.status() == StatusCode::OK)),
        "healthz did not answer within 1 s ({:?})",
        started.elapsed()
    );
    assert!(
        metric(
            &router,
            "auth_router_connections_refused_total{reason=\"per_ip\"}"
        )
        .await
            >= 2900.0
    );
    let open = metric(&router, "auth_router_open_connections").await;
    assert!((100.0..=103.0).contains(&open), "open connections: {open}");
    drop(idle);
}

#[tokio::test]
async fn past_max_connections_a_new_connection_is_closed_without_a_reply() {
    let dir = TempDir::new().unwrap();
    let (router, _fake) = router_with_limits(
        dir.path(),
        &[("max_connections", "5"), ("max_connections_per_ip", "0")],
    )
    .await;
    let to = addr(&router);
    // Five connections, each shown to be open by an answer. (One may be refused while the
    // start-up health check's own connection is still closing: it is simply retried.)
    let mut held = Vec::new();
    for _ in 0..50 {
        if held.len() == 5 {
            break;
        }
        let mut stream = connect_from([127, 0, 0, 3], to).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head)).await {
            Ok(Ok(_)) if &head == b"HTTP/1.1 200" => held.push(stream),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(held.len(), 5, "five connections admitted");

    let mut sixth = connect_from([127, 0, 0, 4], to).await.unwrap();
    let _ = sixth
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sixth.read_to_end(&mut answer)).await;

    assert!(read.is_ok(), "the sixth connection was closed");
    assert!(answer.is_empty(), "unanswered: {answer:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        metric(
            &router,
            "auth_router_connections_refused_total{reason=\"max_connections\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn an_idle_socket_is_closed_after_the_idle_timeout() {
    let dir = TempDir::new().unwrap();
    let (router, _fake) = router_with_limits(dir.path(), &[("idle_timeout_secs", "2")]).await;
    let mut before_any_byte = connect_from([127, 0, 0, 1], addr(&router)).await.unwrap();
    let mut after_an_answer = connect_from([127, 0, 0, 1], addr(&router)).await.unwrap();
    after_an_answer
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();

    let first = closed_within(&mut before_any_byte, Duration::from_secs(6)).await;
    let second = closed_within(&mut after_an_answer, Duration::from_secs(6)).await;

    let first = first.expect("an idle socket was closed");
    assert!(
        first >= Duration::from_millis(1500),
        "not before the timeout: {first:?}"
    );
    assert!(
        second.is_some(),
        "a keep-alive socket idle after its answer was closed"
    );
}

#[tokio::test]
async fn a_head_sent_a_byte_a_second_after_a_head_request_is_cut_at_the_header_timeout() {
    let dir = TempDir::new().unwrap();
    let (router, _fake) = router_with_limits(
        dir.path(),
        &[
            ("header_read_timeout_secs", "3"),
            ("idle_timeout_secs", "60"),
        ],
    )
    .await;
    let mut stream = connect_from([127, 0, 0, 1], addr(&router)).await.unwrap();
    stream
        .write_all(b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Drain the rest of the HEAD answer's head.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rest = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut rest)).await;

    let started = Instant::now();
    let mut cut = None;
    for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaa\r\n" {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut probe)).await
        {
            cut = Some(started.elapsed());
            break;
        }
    }

    let cut = cut.expect("the slow head was cut off");
    assert!(
        cut >= Duration::from_millis(2500) && cut <= Duration::from_secs(6),
        "cut after {cut:?}"
    );
}

#[tokio::test]
async fn sigterm_with_a_slow_client_and_a_client_that_never_reads_exits_zero_within_the_grace() {
    let dir = TempDir::new().unwrap();
    let (mut router, _fake) = router_with_limits(
        dir.path(),
        &[
            ("shutdown_grace_secs", "2"),
            ("header_read_timeout_secs", "60"),
            ("idle_timeout_secs", "60"),
        ],
    )
    .await;
    let to = addr(&router);
    // A head that never ends.
    let mut slow = connect_from([127, 0, 0, 1], to).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Pipelined requests whose answers are never read: the router's writes fill the socket.
    let greedy = connect_from([127, 0, 0, 1], to).await.unwrap();
    greedy.set_nodelay(true).unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(200);
    let writer = tokio::spawn(async move {
        let mut greedy = greedy;
        for _ in 0..200 {
            if tokio::time::timeout(Duration::from_secs(1), greedy.write_all(&request))
                .await
                .is_err()
            {
                break;
            }
        }
        greedy
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    router.signal(libc::SIGTERM);
    let status = router.wait_exit().await;

    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", router.log());
    assert!(took <= Duration::from_secs(4), "exited after {took:?}");
    drop(slow);
    drop(writer);
}
