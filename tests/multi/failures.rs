//! Routers die, the database goes away: nothing acknowledged is lost, and the others carry on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{eventually, free_port, Cluster};

/// One pass at a time (an advisory lock per pass): each due request expires once, with one
/// audit row, and when the router running the passes dies the other takes over.
#[tokio::test]
async fn one_router_at_a_time_reaps_and_another_takes_over_when_it_dies() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let fast = [
        ("AUTH_ROUTER_REAPER__INTERVAL_SECS", "1"),
        ("AUTH_ROUTER_REQUESTS__TTL_SECS", "2"),
    ];
    let mut a = cluster.start("a", a_port, a_port, "", &fast).await;
    let b = cluster.start("b", b_port, b_port, "", &fast).await;

    let mut requests = Vec::new();
    for i in 0..6 {
        requests.push(
            cluster
                .create(if i % 2 == 0 { &a } else { &b }, "laptop")
                .await,
        );
    }
    let expired = eventually(Duration::from_secs(15), || async {
        let all = cluster
            .admin_get(&b, "/v1/token-requests?status=expired")
            .await;
        (all["requests"].as_array().unwrap().len() == 6).then_some(())
    })
    .await;
    assert!(expired.is_some(), "both routers' requests expired");
    a.kill();
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(cluster.create(&b, "laptop").await);
    }
    let taken_over = eventually(Duration::from_secs(15), || async {
        let all = cluster
            .admin_get(&b, "/v1/token-requests?status=expired")
            .await;
        (all["requests"].as_array().unwrap().len() == 9).then_some(())
    })
    .await;
    assert!(taken_over.is_some(), "B expires once A is gone");

    for (id, _) in requests.iter().chain(&later) {
        let expiries = cluster
            .audit(&b, id)
            .await
            .into_iter()
            .filter(|e| e["action"] == "expire")
            .count();
        assert_eq!(expiries, 1, "{id} expired once");
    }
}

/// A receiver that records every delivery, and can hold its answers back.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, String)>>>,
    hold: Arc<AtomicBool>,
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// (delivery id, event type) of every delivery that reached the receiver.
    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.received.lock().unwrap().push((
        header("x-auth-router-delivery"),
        header("x-auth-router-event"),
    ));
    while r.hold.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    StatusCode::OK
}

fn webhook(url: &str) -> String {
    format!(
        "[notify]\ntimeout_secs = 30\n[[notify.webhooks]]\nurl = \"{url}\"\nevents = [\"request.pending\"]\n"
    )
}

#[tokio::test]
async fn each_event_is_delivered_by_exactly_one_router() {
    let cluster = Cluster::new().await;
    let receiver = Receiver::default();
    let hook = webhook(&receiver.start().await);
    let (a_port, b_port) = (free_port(), free_port());
    let a = cluster.start("a", a_port, a_port, &hook, &[]).await;
    let b = cluster.start("b", b_port, b_port, &hook, &[]).await;

    for i in 0..20 {
        cluster
            .create(if i % 2 == 0 { &a } else { &b }, "laptop")
            .await;
    }

    let all = eventually(Duration::from_secs(15), || async {
        let received = receiver.received();
        (received.len() >= 20).then_some(received)
    })
    .await
    .expect("every event delivered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    let mut ids: Vec<_> = received.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (received.len(), ids.len()),
        (20, 20),
        "twenty events, each delivered once: {all:?}"
    );
}

/// A router killed while sending leaves the row pending (its lock dies with it); another
/// router sends it again, with the same delivery id, and nothing is lost.
#[tokio::test]
async fn a_delivery_interrupted_by_kill_9_is_retried_by_another_router_with_the_same_id() {
    let cluster = Cluster::new().await;
    let receiver = Receiver::default();
    let hook = webhook(&receiver.start().await);
    let (a_port, b_port) = (free_port(), free_port());
    let mut a = cluster.start("a", a_port, a_port, &hook, &[]).await;
    receiver.hold.store(true, Ordering::SeqCst);

    cluster.create(&a, "laptop").await;
    let first = eventually(Duration::from_secs(10), || async {
        receiver.received().first().cloned()
    })
    .await
    .expect("A is sending");
    a.kill();
    receiver.hold.store(false, Ordering::SeqCst);
    let b = cluster.start("b", b_port, b_port, &hook, &[]).await;

    let again = eventually(Duration::from_secs(20), || async {
        let received = receiver.received();
        (received.len() >= 2).then(|| received[1].clone())
    })
    .await
    .expect("B sends it again");
    assert_eq!(again, first, "the same delivery id and event");
    let delivered = eventually(Duration::from_secs(10), || async {
        let body = cluster.admin_get(&b, "/v1/webhooks/deliveries").await;
        let rows = body["deliveries"].as_array().unwrap().clone();
        (rows.len() == 1 && rows[0]["status"] == "delivered").then_some(rows)
    })
    .await;
    assert!(delivered.is_some(), "one row, delivered");
}

/// A TCP proxy to the database that can be cut (every connection dropped, new ones
/// refused) and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, cut) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.notify_waiters();
        }
    }
}

#[tokio::test]
async fn while_the_database_is_unreachable_the_router_answers_503_and_then_recovers() {
    let cluster = Cluster::new().await;
    let url = url::Url::parse(&cluster.database_url).unwrap();
    let proxy = Proxy::start(url.port().unwrap()).await;
    let mut through = url.clone();
    through.set_port(Some(proxy.port)).unwrap();
    let port = free_port();
    let a = cluster
        .start_on("a", port, port, through.as_str(), "", &[])
        .await;
    let (id, poll) = cluster.create(&a, "before").await;

    proxy.set_up(false);
    let ready = cluster
        .http
        .get(format!("{}/readyz", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let create = cluster
        .http
        .post(format!("{}/v1/token-requests", a.base))
        .json(&json!({"client_name": "multi", "hostname": "during"}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = create.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");

    proxy.set_up(true);
    let recovered = eventually(Duration::from_secs(20), || async {
        let r = cluster
            .http
            .get(format!("{}/readyz", a.base))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "ready again once the database is back");
    assert_eq!(cluster.status(&a, &id, &poll, 0).await["status"], "pending");
    cluster.create(&a, "after").await;
}

/// Clients spread over two routers; A is killed mid-load. Every request either acknowledged
/// is still there on B, and B finishes the ones A left open.
#[tokio::test]
async fn kill_9_of_one_router_under_load_loses_no_acknowledged_request() {
    let cluster = Cluster::new().await;
    let (a_port, b_port) = (free_port(), free_port());
    let mut a = cluster.start("a", a_port, a_port, "", &[]).await;
    let b = cluster.start("b", b_port, b_port, "", &[]).await;
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..4)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let (http, acked, stop) = (cluster.http.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let created = http
                        .post(format!("{base}/v1/token-requests"))
                        .json(&json!({"client_name": "load", "hostname": "load"}))
                        .send()
                        .await;
                    if let Ok(r) = created {
                        if r.status() == StatusCode::CREATED {
                            let body: Value = r.json().await.unwrap();
                            acked.lock().unwrap().insert(
                                body["request_id"].as_str().unwrap().to_owned(),
                                body["poll_token"].as_str().unwrap().to_owned(),
                            );
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 20, "the load was real: {}", acked.len());
    for (id, poll) in &acked {
        assert_eq!(
            cluster.status(&b, id, poll, 0).await["status"],
            "pending",
            "{id}"
        );
    }
    // B finishes a flow A's clients started.
    let (id, poll) = acked.iter().next().unwrap();
    assert_eq!(cluster.select(&b, id).await, StatusCode::OK);
    assert_eq!(cluster.status(&b, id, poll, 10).await["status"], "approved");
}
