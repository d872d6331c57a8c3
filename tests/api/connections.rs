//! The listener's connections, spoken to over raw TCP: what the front serves itself and what
//! it hands to hyper (chunked bodies, `Expect`, `HEAD`, malformed heads) are answered alike,
//! in order, and with the client's address known to the router.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, TestApp};

/// Sends `bytes` on a new connection and reads until the router closes it.
async fn exchange(app: &TestApp, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the router closed the connection")
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// The status lines of every answer in `text`, in order. (An answer's body is not followed by
/// a line break, so the next status line starts mid-line.)
fn status_lines(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(at, _)| text[at..].lines().next().unwrap())
        .collect()
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap();
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const CREATE_BODY: &str = r#"{"client_name":"raw","hostname":"raw-host"}"#;

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let app = spawn_app().await;

    let text = exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n\
          GET /v1/no-such-thing HTTP/1.1\r\nhost: x\r\n\r\n\
          GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(
        status_lines(&text),
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK"
        ],
        "{text}"
    );
    let last = text.rsplit("HTTP/1.1 ").next().unwrap();
    assert_eq!(header(last, "connection"), Some("close"));
}

#[tokio::test]
async fn an_answer_carries_its_length_a_date_and_a_request_id() {
    let app = spawn_app().await;

    let text = exchange(
        &app,
        b"GET /v1/no-such-thing HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;

    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = header(&text, "content-length").unwrap().parse().unwrap();
    assert_eq!(length, body.len(), "{text}");
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"], "not_found");
    assert!(
        header(&text, "date").is_some_and(|d| d.ends_with(" GMT")),
        "{text}"
    );
    assert!(header(&text, "x-request-id").is_some(), "{text}");
}

#[tokio::test]
async fn a_chunked_create_is_served_through_hyper_with_the_clients_address() {
    let app = spawn_app().await;
    let chunked = format!(
        "POST /v1/token-requests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{CREATE_BODY}\r\n0\r\n\r\n",
        CREATE_BODY.len()
    );

    let text = exchange(&app, chunked.as_bytes()).await;

    assert_eq!(status_lines(&text), ["HTTP/1.1 201 Created"], "{text}");
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["hostname"], "raw-host");
    assert_eq!(listed["requests"][0]["peer_addr"], "127.0.0.1");
}

#[tokio::test]
async fn a_client_that_expects_100_continue_gets_it_and_then_its_answer() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/token-requests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        CREATE_BODY.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut interim))
        .await
        .expect("an interim answer")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(CREATE_BODY.as_bytes()).await.unwrap();

    let text = read_to_close(&mut stream).await;
    assert_eq!(status_lines(&text), ["HTTP/1.1 201 Created"], "{text}");
}

#[tokio::test]
async fn a_head_request_is_answered_without_a_body() {
    let app = spawn_app().await;

    let text = exchange(
        &app,
        b"HEAD /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(status_lines(&text), ["HTTP/1.1 200 OK"], "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after the head: {text:?}"
    );
}

#[tokio::test]
async fn a_malformed_request_is_answered_400_and_creates_nothing() {
    let app = spawn_app().await;

    let text = exchange(
        &app,
        b"POST /v1/token-requests HTTP/1.1\r\nbad header\r\n\r\n",
    )
    .await;

    assert_eq!(status_lines(&text), ["HTTP/1.1 400 Bad Request"], "{text}");
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_413_and_creates_nothing() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let body = format!(r#"{{"client_name":"raw","hostname":"h","pad":"{padding}"}}"#);
    let request = format!(
        "POST /v1/token-requests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );

    let text = exchange(&app, request.as_bytes()).await;

    assert_eq!(
        status_lines(&text),
        ["HTTP/1.1 413 Payload Too Large"],
        "{text}"
    );
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_body_that_arrives_in_pieces_is_read_whole() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/token-requests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        CREATE_BODY.len()
    );
    let (first, second) = CREATE_BODY.split_at(10);
    for piece in [&head[..20], &head[20..], first, second] {
        stream.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let text = read_to_close(&mut stream).await;
    assert_eq!(status_lines(&text), ["HTTP/1.1 201 Created"], "{text}");
}
