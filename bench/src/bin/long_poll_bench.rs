//! The long-poll benchmark (run it with `bench/long_poll.sh`, which builds in release).
//!
//! Against the real release binary on a temporary database, over loopback:
//! - the floors: a bare axum server, hyper's HTTP/1 server alone, and the router's own
//!   transport with one bare route, each holding 10,000 requests, for what the connections
//!   cost by themselves;
//! - 10,000 long-poll waiters (`?wait=60`) on 10,000 requests: the router's peak memory;
//! - 1,000 of them (logins already open in the control browser) approved in a burst, as the
//!   provider's redirects arrive: the time from each approval's commit (its audit row's
//!   time) to its waiter's answer, p50 and p99;
//! - 1,000 clients for 30 s, long-polling back to back (`wait=25`) versus polling every 5 s:
//!   the polls per second the router serves, the load long-poll saves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, FakeUpstream, Options};
use futures::future::join_all;
use serde_json::{json, Value};

/// Waiters held at once: `LONG_POLL_WAITERS`, default 10,000 (docs/performance.md also
/// reports 1,000).
fn waiters() -> usize {
    std::env::var("LONG_POLL_WAITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
const BURST: usize = 1_000;
const CLIENTS: usize = 1_000;
const STEADY: Duration = Duration::from_secs(30);
const ADMIN: &str = "bench-admin-token-0123456789abcdefghij";

struct Created {
    id: String,
    poll: String,
}

fn main() {
    raise_open_files();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("baseline") {
        return baseline(&args[2]);
    }
    if args.get(1).map(String::as_str) == Some("hyper") {
        return bare_hyper(&args[2]);
    }
    if args.get(1).map(String::as_str) == Some("front") {
        return front(&args[2]);
    }
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

/// The floor: a bare axum server whose only route holds every answer 60 s, on the same
/// runtime defaults as the router, to show what 10,000 held connections cost by themselves.
fn baseline(addr: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, held_60_s()).await.unwrap();
    });
}

/// The floors' one route: every answer held 60 s.
fn held_60_s() -> axum::Router {
    axum::Router::new().route(
        "/wait",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "ok"
        }),
    )
}

/// The floor under the floor: hyper's HTTP/1 server alone, no axum, no protocol detection.
fn bare_hyper(addr: &str) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// The router's own listeners (hyper with the connection limits, `serve::Listeners`) with
/// the same one-route app as the axum floor: what 10,000 held connections cost it.
fn front(addr: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let limits = claude_auth_router::config::LimitsConfig {
            max_connections: 20_000,
            max_connections_per_ip: 0,
            ..Default::default()
        };
        let metrics = std::sync::Arc::new(claude_auth_router::metrics::Metrics::default());
        claude_auth_router::serve::Listeners::new(&limits, metrics)
            .serve(listener, held_60_s(), std::future::pending())
            .await
            .unwrap();
    });
}

/// VmHWM of process `pid`, in MiB.
fn peak_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The same 10,000 held requests against a bare server (`mode`: axum, hyper alone, or the
/// router's transport): its peak memory.
async fn baseline_peak(http: &reqwest::Client, mode: &str) -> f64 {
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([mode, &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/wait");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the baseline did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held: Vec<_> = (0..waiters())
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(url).send().await.is_ok() })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = peak_of(child.id());
    for h in held {
        h.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
    peak
}

/// 10,000 sockets on each side need more than the usual 1,024 descriptors; the router
/// inherits the limit from this process.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn release_dir() -> PathBuf {
    // target/release/long_poll_bench -> target/release
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Router {
    child: Child,
    base: String,
    db: PathBuf,
}

impl Router {
    async fn start(dir: &Path, fake: &FakeUpstream, poll_interval: u64) -> Router {
        let port = free_port();
        let db = dir.join(format!("long-poll-{poll_interval}.db"));
        let child = Command::new(release_dir().join("claude-auth-router"))
            .arg("serve")
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "AUTH_ROUTER_DATABASE_URL",
                format!("sqlite://{}", db.display()),
            )
            .env("AUTH_ROUTER_OAUTH__CLIENT_ID", "bench")
            .env("AUTH_ROUTER_OAUTH__AUTH_URL", fake.auth_url())
            .env("AUTH_ROUTER_OAUTH__TOKEN_URL", fake.token_url())
            .env(
                "AUTH_ROUTER_OAUTH__REDIRECT_URI",
                format!("http://127.0.0.1:{port}/oauth/callback"),
            )
            .env("AUTH_ROUTER_CONTROL_BROWSER__BASE_URL", fake.base_url())
            .env("AUTH_ROUTER_ADMIN__TOKEN", ADMIN)
            .env(
                "AUTH_ROUTER_REQUESTS__POLL_INTERVAL_SECS",
                poll_interval.to_string(),
            )
            .env("AUTH_ROUTER_REQUESTS__MAX_WAIT_SECS", "60")
            .env("AUTH_ROUTER_REQUESTS__TTL_SECS", "3600")
            .env("AUTH_ROUTER_LIMITS__REQUEST_TIMEOUT_SECS", "90")
            .env("AUTH_ROUTER_LIMITS__CREATES_PER_MINUTE_PER_IP", "0")
            .env("AUTH_ROUTER_LIMITS__MAX_OPEN_REQUESTS_PER_HOSTNAME", "0")
            .env("AUTH_ROUTER_LIMITS__MAX_CONCURRENT_REQUESTS", "4096")
            .env("AUTH_ROUTER_LIMITS__MAX_WAITERS", "20000")
            // One client address holds every connection here.
            .env("AUTH_ROUTER_LIMITS__MAX_CONNECTIONS", "20000")
            .env("AUTH_ROUTER_LIMITS__MAX_CONNECTIONS_PER_IP", "0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("router.log")).unwrap())
            .spawn()
            .expect("run bench/long_poll.sh: it builds the release binary first");
        let router = Router {
            child,
            base: format!("http://127.0.0.1:{port}"),
            db,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}/healthz", router.base))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the router did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        router
    }

    fn peak_mib(&self) -> f64 {
        peak_of(self.child.id())
    }

    async fn waiters(&self, http: &reqwest::Client) -> u64 {
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("auth_router_long_poll_waiters "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_many(http: &reqwest::Client, base: &str, n: usize) -> Vec<Created> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let created = join_all(chunk.iter().map(|i| async move {
            let body: Value = http
                .post(format!("{base}/v1/token-requests"))
                .json(&json!({"client_name": format!("c{i}"), "hostname": format!("h{i}")}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            Created {
                id: body["request_id"].as_str().unwrap().to_owned(),
                poll: body["poll_token"].as_str().unwrap().to_owned(),
            }
        }))
        .await;
        out.extend(created);
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn run() {
    let n_waiters = waiters();
    let dir = tempfile::TempDir::new().unwrap();
    let fake = FakeUpstream::start(Options::default()).await;
    fake.set_browser_mode(BrowserMode::Record);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    // 0. The floors: what 10,000 held requests cost bare servers.
    let floor = baseline_peak(&http, "baseline").await;
    println!("bare axum holding {n_waiters} requests: peak {floor:.1} MiB");
    let hyper_floor = baseline_peak(&http, "hyper").await;
    println!("bare hyper (HTTP/1 only) holding {n_waiters} requests: peak {hyper_floor:.1} MiB");
    let front_floor = baseline_peak(&http, "front").await;
    println!("the router's transport, one bare route, holding {n_waiters} requests: peak {front_floor:.1} MiB");

    // 1. 10,000 waiters, then 1,000 approvals in a burst.
    let router = Router::start(dir.path(), &fake, 5).await;
    let created = create_many(&http, &router.base, n_waiters).await;
    // The operator selects an account for the first 1,000: their logins are open.
    for chunk in created[..BURST].chunks(50) {
        join_all(chunk.iter().map(|c| {
            let (http, base) = (http.clone(), router.base.clone());
            async move {
                let r = http
                    .post(format!("{base}/v1/token-requests/{}/select-account", c.id))
                    .bearer_auth(ADMIN)
                    .json(&json!({"account_id": 1}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }))
        .await;
    }
    let opened: std::collections::HashMap<String, String> = fake
        .opened()
        .into_iter()
        .map(|o| (o.request_id.unwrap(), o.auth_url))
        .collect();
    let before_waiters = router.peak_mib();
    let started = Instant::now();
    let waiters: Vec<_> = created
        .iter()
        .map(|c| {
            let (http, url, poll) = (
                http.clone(),
                format!("{}/v1/token-requests/{}/status?wait=60", router.base, c.id),
                c.poll.clone(),
            );
            tokio::spawn(async move {
                let Ok(response) = http.get(url).bearer_auth(poll).send().await else {
                    return (String::new(), chrono::Utc::now());
                };
                let answered = chrono::Utc::now();
                let body: Value = response.json().await.unwrap_or_default();
                (body["status"].as_str().unwrap_or("").to_owned(), answered)
            })
        })
        .collect();
    while router.waiters(&http).await < n_waiters as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waiters never all arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle = Instant::now();
    println!(
        "{n_waiters} waiters up in {:.1} s",
        (settle - started).as_secs_f64()
    );
    let peak_waiting = router.peak_mib();

    // The provider's redirects for those logins arrive in a burst.
    let mut callbacks = Vec::new();
    for c in &created[..BURST] {
        callbacks.push(fake.authorize(&opened[&c.id], 1, false).await);
    }
    let burst = Instant::now();
    join_all(callbacks.chunks(50).map(|chunk| {
        let http = http.clone();
        async move {
            for url in chunk {
                let r = http.get(url).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }
    }))
    .await;
    let burst_secs = burst.elapsed().as_secs_f64();
    let answers: Vec<_> = join_all(waiters.into_iter().take(BURST))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", router.db.display()))
        .await
        .unwrap();
    let mut latencies = Vec::new();
    for (c, (status, answered)) in created[..BURST].iter().zip(&answers) {
        assert_eq!(status, "approved");
        let updated: String = sqlx::query_scalar(
            "SELECT at FROM audit_events WHERE request_id = ? AND to_status = 'approved'",
        )
        .bind(&c.id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let committed: chrono::DateTime<chrono::Utc> = updated.parse().unwrap();
        latencies.push((*answered - committed).num_microseconds().unwrap() as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let peak = router.peak_mib();
    println!("peak memory before the waiters: {before_waiters:.1} MiB; with {n_waiters} waiters: {peak_waiting:.1} MiB (after the burst: {peak:.1} MiB)");
    println!(
        "burst of {BURST} approvals in {burst_secs:.2} s; commit to answer: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    drop(router);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Steady state: long polls versus interval polls, 1,000 clients each.
    for (label, wait, pause) in [
        ("long-poll (wait=25)", Some(25u64), Duration::ZERO),
        ("interval (every 5 s)", None, Duration::from_secs(5)),
    ] {
        let router = Router::start(dir.path(), &fake, 5).await;
        let clients = create_many(&http, &router.base, CLIENTS).await;
        let polls = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + STEADY;
        join_all(clients.iter().map(|c| {
            let (http, polls) = (http.clone(), polls.clone());
            let url = match wait {
                Some(w) => format!("{}/v1/token-requests/{}/status?wait={w}", router.base, c.id),
                None => format!("{}/v1/token-requests/{}/status", router.base, c.id),
            };
            let poll = c.poll.clone();
            async move {
                // Clients start spread over one interval, as real ones do.
                tokio::time::sleep(Duration::from_millis(rand_ms(5_000))).await;
                while Instant::now() < until {
                    let left = until.saturating_duration_since(Instant::now());
                    let sent = http.get(&url).bearer_auth(&poll).send();
                    if tokio::time::timeout(left, sent).await.is_err() {
                        break;
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now())))
                        .await;
                }
            }
        }))
        .await;
        let per_sec = polls.load(Ordering::Relaxed) as f64 / STEADY.as_secs_f64();
        println!(
            "{label}: {CLIENTS} clients, {per_sec:.0} polls/s over {} s",
            STEADY.as_secs()
        );
    }
}

fn rand_ms(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(max);
    h.finish() % max
}
