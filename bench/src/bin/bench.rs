//! The load benchmark (run it with `bench/run.sh`, which builds in release and installs wrk).
//!
//! It starts the real release binary on a temporary database over loopback, and in the same
//! run a minimal axum server answering a constant string, measured with the same wrk
//! settings, so each scenario can be reported as a ratio that holds on any machine. The
//! baseline is measured again before each group of loads, and each group is compared with
//! the baseline measured closest to it:
//!
//! - status polling (64 connections, poll pacing off), creation (the per-hostname limit on,
//!   a hostname per create) and a mixed load of 1 create to 20 polls, each on a fresh
//!   database, on 1,000,000 finished rows and on 10,000 open requests of one hostname;
//! - creates for that hostname, each counted up to its limit and refused;
//! - end-to-end approvals per second through the fake upstream;
//! - a reaper pass expiring 1,000,000 rows while polls run (their p99 and max during it);
//! - the router's peak memory (VmHWM).
//!
//! `bench baseline ADDR` is the baseline server itself, run as a child process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, FakeUpstream, Options};
use serde_json::{json, Value};

#[path = "../shared.rs"]
mod shared;
use shared::{free_port, release_dir, script, Load};

const CONNECTIONS: u32 = 64;
const POLLED_REQUESTS: usize = 1000;
const FILLER_ROWS: u64 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("baseline") {
        return baseline(&args[2]);
    }
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    tokio::runtime::Runtime::new().unwrap().block_on(run(secs));
}

/// The baseline: axum's smallest useful server, on the same runtime defaults as the router.
fn baseline(addr: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

/// The router's log file, in each scenario's directory.
const LOG: &str = "router.log";

struct Router {
    child: Child,
    base: String,
    /// Its stderr: logging at `warn`, so empty unless something went wrong.
    log: PathBuf,
}

impl Router {
    async fn start(dir: &Path, fake: &FakeUpstream, reaper_secs: u64) -> Router {
        let port = free_port();
        let log = dir.join(LOG);
        let child = Command::new(release_dir().join("claude-auth-router"))
            .arg("serve")
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "AUTH_ROUTER_DATABASE_URL",
                format!("sqlite://{}", dir.join("bench.db").display()),
            )
            .env("AUTH_ROUTER_OAUTH__CLIENT_ID", "bench")
            .env("AUTH_ROUTER_OAUTH__AUTH_URL", fake.auth_url())
            .env("AUTH_ROUTER_OAUTH__TOKEN_URL", fake.token_url())
            .env(
                "AUTH_ROUTER_OAUTH__REDIRECT_URI",
                format!("http://127.0.0.1:{port}/oauth/callback"),
            )
            .env("AUTH_ROUTER_CONTROL_BROWSER__BASE_URL", fake.base_url())
            .env(
                "AUTH_ROUTER_ADMIN__TOKEN",
                "bench-admin-token-0123456789abcdefghij",
            )
            .env(
                "AUTH_ROUTER_STORAGE__ENCRYPTION_KEY",
                "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=",
            )
            .env("AUTH_ROUTER_REQUESTS__POLL_INTERVAL_SECS", "0")
            .env("AUTH_ROUTER_REQUESTS__TTL_SECS", "3600")
            .env("AUTH_ROUTER_REAPER__INTERVAL_SECS", reaper_secs.to_string())
            .env("AUTH_ROUTER_LIMITS__CREATES_PER_MINUTE_PER_IP", "0")
            .env("AUTH_ROUTER_LIMITS__MAX_CONCURRENT_REQUESTS", "4096")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run bench/run.sh: it builds the release binary first");
        let router = Router {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        wait_up(&format!("{}/healthz", router.base)).await;
        router
    }

    /// Peak resident memory so far, in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// Stops the router, and passes on anything it logged (with the loads, on stderr): the
    /// log lives in the run's temporary directory, gone when the run ends, and a warning is
    /// what explains an outlier in the report.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let logged = std::fs::read_to_string(&self.log).unwrap_or_default();
        for line in logged.lines().filter(|l| !l.trim().is_empty()) {
            eprintln!("router: {line}");
        }
    }
}

async fn wait_up(url: &str) {
    for _ in 0..400 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not come up");
}

/// Status polling of 1,000 requests, creation, and the mixed load against `router`, each a
/// row of the report.
async fn three_loads(
    report: &mut String,
    router: &Router,
    dir: &Path,
    secs: u64,
    baseline: f64,
    suffix: &str,
) -> [Load; 3] {
    let polled = create_requests(&router.base, POLLED_REQUESTS).await;
    let mut loads = Vec::new();
    for (name, file, create_every) in [
        ("status polling", "status.lua", 0),
        ("creation", "create.lua", 1),
        ("mixed, 1 create : 20 polls", "mixed.lua", 21),
    ] {
        let lua = script(dir, file, &polled, create_every, None);
        let load = wrk(&router.base, Some(&lua), secs);
        eprintln!("{name}{suffix}: {load:?}");
        row(report, &format!("{name}{suffix}"), &load, baseline);
        loads.push(load);
    }
    loads.try_into().expect("three loads")
}

/// Runs wrk with the benchmark's connections.
fn wrk(url: &str, script: Option<&Path>, secs: u64) -> Load {
    shared::wrk(url, script, secs, CONNECTIONS)
}

async fn create_requests(base: &str, n: usize) -> Vec<(String, String)> {
    let http = reqwest::Client::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body: Value = http
            .post(format!("{base}/v1/token-requests"))
            .json(&json!({"client_name": "bench", "hostname": format!("poller-{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.push((
            body["request_id"].as_str().unwrap().to_owned(),
            body["poll_token"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

/// Fills the database with `rows` requests of `status`, changed just now (so retention leaves
/// them alone) and expiring at `expires_at`, in one statement (the router must not be running).
async fn fill(
    db: &Path,
    rows: u64,
    status: &str,
    expires_at: &str,
    hostname: Option<&str>,
) -> Duration {
    let started = Instant::now();
    let url = format!("sqlite://{}", db.display());
    claude_auth_router::db::Db::connect(&url)
        .await
        .unwrap()
        .close()
        .await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO auth_requests (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at, poll_token_hash)
         SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2)
                || '-a' || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
                'filler', coalesce(?5, 'host-' || (x % 5000)), 'user:inference', ?2, ?3, ?3, ?4,
                randomblob(32)
         FROM n",
    )
    .bind(rows as i64)
    .bind(status)
    .bind(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    .bind(expires_at)
    .bind(hostname)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    started.elapsed()
}

/// Approvals per second end to end: create, select (the fake control browser approves and
/// follows the callback), poll until approved.
async fn approvals(base: &str, secs: u64, concurrency: usize) -> (f64, f64, f64) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers = (0..concurrency).map(|worker| {
        let http = http.clone();
        let base = base.to_owned();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let created: Value = http
                    .post(format!("{base}/v1/token-requests"))
                    .json(&json!({"client_name": "bench", "hostname": format!("e2e-{worker}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["request_id"].as_str().unwrap();
                let poll = created["poll_token"].as_str().unwrap();
                let selected = http
                    .post(format!("{base}/v1/token-requests/{id}/select-account"))
                    .bearer_auth("bench-admin-token-0123456789abcdefghij")
                    .json(&json!({"account_id": 1}))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    selected.status().is_success(),
                    "select answered {}",
                    selected.status()
                );
                let status: Value = http
                    .get(format!("{base}/v1/token-requests/{id}/status"))
                    .bearer_auth(poll)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(status["status"], "approved");
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut all: Vec<Duration> = Vec::new();
    for w in workers.collect::<Vec<_>>() {
        all.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    (all.len() as f64 / elapsed, pct(0.5), pct(0.99))
}

fn row(out: &mut String, name: &str, load: &Load, baseline: f64) {
    let _ = writeln!(
        out,
        "| {name} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {} |",
        load.rps,
        100.0 * load.rps / baseline,
        load.p50_ms,
        load.p99_ms,
        load.max_ms,
        load.errors
    );
}

/// The baseline server measured on its own (nothing else of the bench running).
async fn measure_baseline(secs: u64) -> Load {
    let port = free_port();
    let mut base_server = Command::new(std::env::current_exe().unwrap())
        .args(["baseline", &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    wait_up(&format!("http://127.0.0.1:{port}/")).await;
    let baseline = wrk(&format!("http://127.0.0.1:{port}/"), None, secs);
    let _ = base_server.kill();
    let _ = base_server.wait();
    eprintln!("baseline: {baseline:?}");
    baseline
}

/// The baseline again, right before a group of loads, as a row of the report: each group is
/// compared with the baseline measured closest to it, because this kind of machine drifts by
/// 10–20% within the minutes of one run.
async fn rebaseline(report: &mut String, secs: u64, before: &str) -> f64 {
    let baseline = measure_baseline(secs).await;
    row(
        report,
        &format!("baseline, again before {before}"),
        &baseline,
        baseline.rps,
    );
    baseline.rps
}

async fn run(secs: u64) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut report = String::new();
    let mut peak: f64 = 0.0;

    let baseline = measure_baseline(secs).await;

    let fake = FakeUpstream::start(Options::default()).await;
    fake.set_browser_mode(BrowserMode::AutoApprove);
    let _ = writeln!(
        report,
        "| scenario | req/s | of baseline | p50 ms | p99 ms | max ms | errors |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|");
    row(
        &mut report,
        "baseline: axum constant string",
        &baseline,
        baseline.rps,
    );

    // 1,000 rows: polling, creation, mixed, approvals.
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let router = Router::start(&small, &fake, 3600).await;
    let [status_1k, create_1k, mixed_1k] =
        three_loads(&mut report, &router, &small, secs, baseline.rps, "").await;
    let (approvals_per_sec, ap50, ap99) = approvals(&router.base, secs, 16).await;
    eprintln!("approvals/s: {approvals_per_sec:.0} p50 {ap50:.2} p99 {ap99:.2}");
    peak = peak.max(router.peak_mib());
    router.stop();

    // 1,000,000 finished rows: the same three loads.
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let filled = fill(
        &big.join("bench.db"),
        FILLER_ROWS,
        "approved",
        "2026-01-01T00:00:00.000Z",
        None,
    )
    .await;
    eprintln!("filled {FILLER_ROWS} rows in {filled:?}");
    let base_1m = rebaseline(&mut report, secs, "the 1,000,000-row loads").await;
    let router = Router::start(&big, &fake, 3600).await;
    let [status_1m, create_1m, mixed_1m] = three_loads(
        &mut report,
        &router,
        &big,
        secs,
        base_1m,
        ", 1,000,000 rows",
    )
    .await;
    peak = peak.max(router.peak_mib());
    router.stop();

    // 10,000 open requests on one hostname: the same three loads, then creates for that
    // hostname, each refused at its limit once the count reaches it.
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    let later = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    fill(
        &busy.join("bench.db"),
        10_000,
        "pending",
        &later,
        Some("busy"),
    )
    .await;
    let base_busy = rebaseline(&mut report, secs, "the loads with 10,000 open").await;
    let router = Router::start(&busy, &fake, 3600).await;
    let [status_busy, create_busy, mixed_busy] = three_loads(
        &mut report,
        &router,
        &busy,
        secs,
        base_busy,
        ", 10,000 open on one hostname",
    )
    .await;
    let polled = create_requests(&router.base, 10).await;
    let refused_script = script(&busy, "refused.lua", &polled, 1, Some("busy"));
    let refused = wrk(&router.base, Some(&refused_script), secs);
    eprintln!("refused: {refused:?}");
    row(
        &mut report,
        "creates for that hostname (all refused 429 at the limit of 10)",
        &refused,
        base_busy,
    );
    peak = peak.max(router.peak_mib());
    router.stop();

    // A reaper pass expiring 1,000,000 open rows while polls run.
    let local = rebaseline(&mut report, secs, "the reaper pass").await;
    let reap = dir.path().join("reap");
    std::fs::create_dir_all(&reap).unwrap();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(20))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    fill(&reap.join("bench.db"), FILLER_ROWS, "pending", &soon, None).await;
    let router = Router::start(&reap, &fake, 1).await;
    let polled_reap = create_requests(&router.base, 200).await;
    let reap_script = script(&reap, "status.lua", &polled_reap, 0, None);
    let wait = Duration::from_secs(20).saturating_sub(Duration::from_secs(2));
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(3))).await;
    let reaping = wrk(&router.base, Some(&reap_script), 25);
    eprintln!("during the reaper pass: {reaping:?}");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        reap.join("bench.db").display()
    ))
    .await
    .unwrap();
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM auth_requests WHERE status = 'expired'")
            .fetch_one(&pool)
            .await
            .unwrap();
    row(
        &mut report,
        "status polling during a reaper pass over 1,000,000 rows",
        &reaping,
        local,
    );
    peak = peak.max(router.peak_mib());
    router.stop();

    let _ = writeln!(report);
    let _ = writeln!(report, "End-to-end approvals (create, select, callback through the fake provider, poll), 16 clients: **{approvals_per_sec:.0}/s**, p50 {ap50:.1} ms, p99 {ap99:.1} ms.");
    let _ = writeln!(report, "Reaper pass: {expired} rows expired while polls ran; slowest poll in that window {:.1} ms.", reaping.max_ms);
    let _ = writeln!(
        report,
        "Router peak memory (VmHWM, highest of the runs): **{peak:.1} MiB**."
    );
    // Each group's ratio to its own baseline, against the fresh database's.
    for (name, load) in [
        ("status", [&status_1k, &status_1m, &status_busy]),
        ("creation", [&create_1k, &create_1m, &create_busy]),
        ("mixed", [&mixed_1k, &mixed_1m, &mixed_busy]),
    ] {
        let fresh = load[0].rps / baseline.rps;
        let _ = writeln!(
            report,
            "{name} at 1,000,000 rows vs 1,000: {:.0}%; with 10,000 open on one hostname: {:.0}% (ratios to each group's baseline).",
            100.0 * load[1].rps / base_1m / fresh,
            100.0 * load[2].rps / base_busy / fresh,
        );
    }
    println!("{report}");
}
