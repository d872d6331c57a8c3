//! The PostgreSQL benchmark (run it with `bench/pg.sh`): status polls/s, creates/s and
//! approval-to-answer p99, for one router on SQLite, one on PostgreSQL, and two on one
//! PostgreSQL database with the load split between them, all in the same run, so the
//! figures compare as ratios. PostgreSQL is a throwaway cluster on this machine
//! (`TEST_POSTGRES_URL`, or one started from the installed PostgreSQL). Loopback only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, FakeUpstream, Options};
use futures::future::join_all;
use futures::StreamExt;
use serde_json::{json, Value};

#[path = "../shared.rs"]
mod shared;
use shared::{free_port, release_dir, script, wrk, Load};

const ADMIN: &str = "bench-admin-token-0123456789abcdefghij";
const CONNECTIONS: u32 = 64;
const POLLED: usize = 1000;
const APPROVALS: usize = 200;

struct Router {
    child: Child,
    base: String,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &Path, name: &str, database_url: &str, fake: &FakeUpstream) -> Router {
    let port = free_port();
    let child = Command::new(release_dir().join("claude-auth-router"))
        .arg("serve")
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_ROUTER_DATABASE_URL", database_url)
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
            "AUTH_ROUTER_STORAGE__ENCRYPTION_KEY",
            "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=",
        )
        .env("AUTH_ROUTER_REQUESTS__POLL_INTERVAL_SECS", "0")
        .env("AUTH_ROUTER_REQUESTS__TTL_SECS", "3600")
        .env("AUTH_ROUTER_LIMITS__CREATES_PER_MINUTE_PER_IP", "0")
        .env("AUTH_ROUTER_LIMITS__MAX_OPEN_REQUESTS_PER_CLIENT", "0")
        .env("AUTH_ROUTER_LIMITS__MAX_CONCURRENT_REQUESTS", "4096")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .expect("run bench/pg.sh: it builds the release binary first");
    // Owned at once, so that any way out of here kills it.
    let router = Router {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{}/readyz", router.base)).send().await {
            if r.status().is_success() {
                return router;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name} did not become ready; see its log in {}",
        dir.display()
    );
}

async fn create(http: &reqwest::Client, base: &str, n: usize) -> Vec<(String, String)> {
    let creates = (0..n).map(|i| async move {
        let body: Value = http
            .post(format!("{base}/v1/token-requests"))
            .json(&json!({"client_name": "bench", "hostname": format!("host-{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            body["request_id"].as_str().unwrap().to_owned(),
            body["poll_token"].as_str().unwrap().to_owned(),
        )
    });
    // At most 32 at once: the router's per-address connection limit refuses a flood.
    futures::stream::iter(creates)
        .buffer_unordered(32)
        .collect()
        .await
}

/// `wrk` against each router at once, with the connections split between them: requests per
/// second summed, the worst p99.
fn split(routers: &[&Router], scripts: &[PathBuf], secs: u64) -> Load {
    let per = CONNECTIONS / routers.len() as u32;
    let loads: Vec<Load> = std::thread::scope(|s| {
        let runs: Vec<_> = routers
            .iter()
            .zip(scripts)
            .map(|(router, script)| s.spawn(move || wrk(&router.base, Some(script), secs, per)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    Load {
        rps: loads.iter().map(|l| l.rps).sum(),
        p50_ms: loads.iter().map(|l| l.p50_ms).fold(0.0, f64::max),
        p99_ms: loads.iter().map(|l| l.p99_ms).fold(0.0, f64::max),
        max_ms: loads.iter().map(|l| l.max_ms).fold(0.0, f64::max),
        errors: loads.iter().map(|l| l.errors).sum(),
    }
}

/// Approval to answer: logins opened on `approver` (select-account; the fake control
/// browser only records them), a long poll on `waiter` for each, then the provider's
/// redirects arrive at `approver`, 16 at a time. The time from each callback's answer (the
/// approval is committed before it answers) to its poll's answer, p99 over [`APPROVALS`].
async fn approvals(fake: &FakeUpstream, waiter: &Router, approver: &Router) -> f64 {
    fake.set_browser_mode(BrowserMode::Record);
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for _ in 0..APPROVALS / 16 {
        let created = create(&http, &approver.base, 16).await;
        for (id, _) in &created {
            let r = http
                .post(format!(
                    "{}/v1/token-requests/{id}/select-account",
                    approver.base
                ))
                .bearer_auth(ADMIN)
                .json(&json!({"account_id": 1}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
        let opened: std::collections::HashMap<String, String> = fake
            .opened()
            .into_iter()
            .filter_map(|o| Some((o.request_id?, o.auth_url)))
            .collect();
        let mut callbacks = Vec::new();
        for (id, _) in &created {
            callbacks.push(fake.authorize(&opened[id], 1, false).await);
        }
        let rounds = created.iter().zip(callbacks).map(|((id, poll), callback)| {
            let http = http.clone();
            async move {
                let wait = async {
                    let r = http
                        .get(format!(
                            "{}/v1/token-requests/{id}/status?wait=20",
                            waiter.base
                        ))
                        .bearer_auth(poll)
                        .send()
                        .await
                        .unwrap();
                    let at = Instant::now();
                    let body: Value = r.json().await.unwrap();
                    (at, body)
                };
                let approve = async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let r = http.get(&callback).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    Instant::now()
                };
                let ((answered, body), approved) = tokio::join!(wait, approve);
                assert_eq!(body["status"], "approved", "{body}");
                answered.saturating_duration_since(approved)
            }
        });
        latencies.extend(join_all(rounds).await);
    }
    fake.set_browser_mode(BrowserMode::AutoApprove);
    latencies.sort();
    latencies[latencies.len() * 99 / 100].as_secs_f64() * 1000.0
}

struct Row {
    setup: &'static str,
    polls: Load,
    creates: Load,
    approval_p99_ms: f64,
}

async fn measure(
    setup: &'static str,
    fake: &FakeUpstream,
    routers: &[&Router],
    dir: &Path,
    secs: u64,
) -> Row {
    let http = reqwest::Client::new();
    let mut poll_scripts = Vec::new();
    let mut create_scripts = Vec::new();
    for (i, router) in routers.iter().enumerate() {
        let requests = create(&http, &router.base, POLLED / routers.len()).await;
        poll_scripts.push(script(
            dir,
            &format!("{setup}-polls-{i}.lua"),
            &requests,
            0,
            None,
        ));
        create_scripts.push(script(
            dir,
            &format!("{setup}-creates-{i}.lua"),
            &requests,
            1,
            None,
        ));
    }
    let polls = split(routers, &poll_scripts, secs);
    let creates = split(routers, &create_scripts, secs);
    let approval_p99_ms = approvals(fake, routers[0], routers[routers.len() - 1]).await;
    Row {
        setup,
        polls,
        creates,
        approval_p99_ms,
    }
}

async fn run(secs: u64) {
    let dir = tempfile::TempDir::new().unwrap();
    let fake = FakeUpstream::start(Options::default()).await;
    fake.set_browser_mode(BrowserMode::AutoApprove);
    let mut rows = Vec::new();
    {
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let router = start(dir.path(), "sqlite", &sqlite, &fake).await;
        rows.push(measure("one router, SQLite", &fake, &[&router], dir.path(), secs).await);
    }
    {
        let url = claude_auth_router_postgres::testing::scratch_database_url().await;
        let router = start(dir.path(), "pg-one", &url, &fake).await;
        rows.push(
            measure(
                "one router, PostgreSQL",
                &fake,
                &[&router],
                dir.path(),
                secs,
            )
            .await,
        );
    }
    {
        let url = claude_auth_router_postgres::testing::scratch_database_url().await;
        let a = start(dir.path(), "pg-a", &url, &fake).await;
        let b = start(dir.path(), "pg-b", &url, &fake).await;
        rows.push(
            measure(
                "two routers, PostgreSQL (load split; approval on B, poll on A)",
                &fake,
                &[&a, &b],
                dir.path(),
                secs,
            )
            .await,
        );
    }
    let sqlite_polls = rows[0].polls.rps;
    println!("| setup | status polls/s (of SQLite) | poll p99 | creates/s | approval to answer p99 | errors |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.0} ({:.0}%) | {:.2} ms | {:.0} | {:.1} ms | {} |",
            row.setup,
            row.polls.rps,
            100.0 * row.polls.rps / sqlite_polls,
            row.polls.p99_ms,
            row.creates.rps,
            row.approval_p99_ms,
            row.polls.errors + row.creates.errors,
        );
    }
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    tokio::runtime::Runtime::new().unwrap().block_on(run(secs));
}
