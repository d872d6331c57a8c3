//! Crash safety under load. Ignored in the default run (it wants the release binary and takes
//! about half a minute); `.ci/run` runs it with `cargo test --release --test crash -- --ignored`.
//!
//! Several clients create, select, deny and cancel requests against the real binary and
//! record every answer the router acknowledged. The router is killed with SIGKILL at random
//! moments and restarted; after every restart each acknowledged request must exist with a
//! status at least as far along as acknowledged, every acknowledged token must be intact, and
//! SQLite's integrity check must pass.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_upstream::{FakeUpstream, Options};
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};

const ADMIN: &str = "crash-test-admin-token-0123456789abcdef";
const KILLS: usize = 12;
const CLIENTS: usize = 6;

/// What the router acknowledged about one request, in order of progress.
#[derive(Debug, Clone, PartialEq)]
enum Ack {
    Pending,
    InProgress,
    Approved { access_token: String },
    Denied,
    Cancelled,
}

impl Ack {
    fn rank(&self) -> u8 {
        match self {
            Ack::Pending => 0,
            Ack::InProgress => 1,
            _ => 2,
        }
    }
}

type Acks = Arc<Mutex<HashMap<String, (String, Ack)>>>;

fn record(acks: &Acks, id: &str, poll: &str, ack: Ack) {
    let mut acks = acks.lock().unwrap();
    let entry = acks
        .entry(id.to_owned())
        .or_insert((poll.to_owned(), Ack::Pending));
    if ack.rank() >= entry.1.rank() {
        entry.1 = ack;
    }
}

fn start(dir: &Path, port: u16, fake: &FakeUpstream, round: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("router-{round}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-auth-router"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTH_ROUTER_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("serve")
        .current_dir(dir)
        .env("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "AUTH_ROUTER_DATABASE_URL",
            format!("sqlite://{}", dir.join("crash.db").display()),
        )
        .env("AUTH_ROUTER_OAUTH__CLIENT_ID", "crash-test")
        .env("AUTH_ROUTER_OAUTH__AUTH_URL", fake.auth_url())
        .env("AUTH_ROUTER_OAUTH__TOKEN_URL", fake.token_url())
        .env(
            "AUTH_ROUTER_OAUTH__REDIRECT_URI",
            format!("http://127.0.0.1:{port}/oauth/callback"),
        )
        .env("AUTH_ROUTER_CONTROL_BROWSER__BASE_URL", fake.base_url())
        .env("AUTH_ROUTER_ADMIN__TOKEN", ADMIN)
        .env(
            "AUTH_ROUTER_STORAGE__ENCRYPTION_KEY",
            "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=",
        )
        .env("AUTH_ROUTER_REQUESTS__POLL_INTERVAL_SECS", "0")
        .env("AUTH_ROUTER_LIMITS__CREATES_PER_MINUTE_PER_IP", "0")
        .env("AUTH_ROUTER_LIMITS__MAX_OPEN_REQUESTS_PER_HOSTNAME", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn().expect("start the router")
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the router did not come back");
}

/// One client: a stream of requests, each taken a random way, recording every acknowledgement.
async fn client(http: reqwest::Client, base: String, acks: Acks, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let _ = one_request(&http, &base, &acks).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn one_request(
    http: &reqwest::Client,
    base: &str,
    acks: &Acks,
) -> Result<(), reqwest::Error> {
    let body = json!({"client_name": "crash", "hostname": "load"});
    let created = http
        .post(format!("{base}/v1/token-requests"))
        .json(&body)
        .send()
        .await?;
    if created.status() != StatusCode::CREATED {
        return Ok(());
    }
    let created: Value = created.json().await?;
    let (id, poll) = (
        created["request_id"].as_str().unwrap().to_owned(),
        created["poll_token"].as_str().unwrap().to_owned(),
    );
    record(acks, &id, &poll, Ack::Pending);
    let choice = rand::thread_rng().gen_range(0..100);
    let admin = |path: &str| {
        http.post(format!("{base}/v1/token-requests/{id}/{path}"))
            .bearer_auth(ADMIN)
    };
    if choice < 60 {
        let selected = admin("select-account")
            .json(&json!({"account_id": 1}))
            .send()
            .await?;
        if selected.status() != StatusCode::OK {
            return Ok(());
        }
        record(acks, &id, &poll, Ack::InProgress);
        let status: Value = http
            .get(format!("{base}/v1/token-requests/{id}/status"))
            .bearer_auth(&poll)
            .send()
            .await?
            .json()
            .await?;
        if status["status"] == "approved" {
            let access_token = status["token"]["access_token"].as_str().unwrap().to_owned();
            record(acks, &id, &poll, Ack::Approved { access_token });
        }
    } else if choice < 75 {
        if admin("deny").send().await?.status() == StatusCode::OK {
            record(acks, &id, &poll, Ack::Denied);
        }
    } else if choice < 90 {
        let cancelled = http
            .post(format!("{base}/v1/token-requests/{id}/cancel"))
            .bearer_auth(&poll)
            .send()
            .await?;
        if cancelled.status() == StatusCode::OK {
            record(acks, &id, &poll, Ack::Cancelled);
        }
    }
    Ok(())
}

/// Every acknowledged request, as the restarted router reports it.
async fn verify(http: &reqwest::Client, base: &str, acks: &Acks) -> usize {
    let snapshot: Vec<(String, (String, Ack))> = acks.lock().unwrap().clone().into_iter().collect();
    for (id, (poll, ack)) in &snapshot {
        let response = http
            .get(format!("{base}/v1/token-requests/{id}/status"))
            .bearer_auth(poll)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "acknowledged request {id} is gone"
        );
        let body: Value = response.json().await.unwrap();
        let status = body["status"].as_str().unwrap();
        match ack {
            Ack::Pending => {}
            Ack::InProgress => assert_ne!(status, "pending", "{id} went back to pending"),
            Ack::Approved { access_token } => {
                assert_eq!(status, "approved", "{id}");
                assert_eq!(
                    body["token"]["access_token"].as_str(),
                    Some(access_token.as_str()),
                    "{id}'s token changed"
                );
            }
            Ack::Denied => assert_eq!(status, "denied", "{id}"),
            Ack::Cancelled => assert_eq!(status, "cancelled", "{id}"),
        }
    }
    snapshot.len()
}

async fn integrity_check(db: &Path) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "wants the release binary and half a minute; .ci/run runs it"]
async fn acknowledged_requests_and_tokens_survive_sigkill_under_load() {
    let dir = tempfile::TempDir::new().unwrap();
    let fake = FakeUpstream::start(Options::default()).await;
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut router = start(dir.path(), port, &fake, 0);
    wait_healthy(&http, &base).await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                http.clone(),
                base.clone(),
                acks.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut checked = 0;
    for round in 1..=KILLS {
        let pause = rand::thread_rng().gen_range(300..900);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        router.kill().unwrap(); // SIGKILL
        router.wait().unwrap();
        router = start(dir.path(), port, &fake, round);
        wait_healthy(&http, &base).await;
        checked = verify(&http, &base, &acks).await;
        integrity_check(&dir.path().join("crash.db")).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    router.kill().unwrap();
    router.wait().unwrap();

    let acks = acks.lock().unwrap();
    let approved = acks
        .values()
        .filter(|(_, a)| matches!(a, Ack::Approved { .. }))
        .count();
    eprintln!(
        "{KILLS} kills; {} acknowledged requests checked after the last, {approved} approved",
        checked
    );
    assert!(
        checked >= 100 && approved >= 20,
        "the load was real: {checked} acknowledged, {approved} approved"
    );
}
