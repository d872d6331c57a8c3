//! Routers as separate processes (the real binary) on one PostgreSQL database, with the fake
//! provider and control browser in this process.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, FakeUpstream, Options};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const ADMIN: &str = "multi-router-admin-token-0123456789abcdef";
const KEY: &str = "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=";

/// One database, one fake, and the routers started on them.
pub struct Cluster {
    pub database_url: String,
    pub fake: FakeUpstream,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// A router process; killed (SIGKILL) when dropped.
pub struct Router {
    pub base: String,
    child: Child,
    log: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    pub async fn new() -> Self {
        let fake = FakeUpstream::start(Options::default()).await;
        fake.set_browser_mode(BrowserMode::AutoApprove);
        Self {
            database_url: claude_auth_router_postgres::testing::scratch_database_url().await,
            fake,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            dir: tempfile::TempDir::new().unwrap(),
        }
    }

    /// Starts a router on `port` whose provider redirects to `callback_port`'s callback (a
    /// load balancer's single public URL, say), with `extra` TOML appended to its config
    /// and `env` (`AUTH_ROUTER_…` overrides) set.
    pub async fn start(
        &self,
        name: &str,
        port: u16,
        callback_port: u16,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Router {
        self.start_on(name, port, callback_port, &self.database_url, extra, env)
            .await
    }

    /// [`Self::start`] with another database URL (a proxy in front of the server).
    pub async fn start_on(
        &self,
        name: &str,
        port: u16,
        callback_port: u16,
        database_url: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Router {
        let config = format!(
            "bind_addr = \"127.0.0.1:{port}\"\n\
             database_url = \"{database_url}\"\n\
             {extra}\n\
             [oauth]\n\
             client_id = \"multi-router-test\"\n\
             auth_url = \"{auth}\"\n\
             token_url = \"{token}\"\n\
             redirect_uri = \"http://127.0.0.1:{callback_port}/oauth/callback\"\n\
             [control_browser]\n\
             base_url = \"{browser}\"\n\
             [admin]\n\
             token = \"{ADMIN}\"\n\
             [storage]\n\
             encryption_key = \"{KEY}\"\n\
             fallback_poll_secs = 30\n\
             [requests]\n\
             poll_interval_secs = 0\n\
             [limits]\n\
             creates_per_minute_per_ip = 0\n\
             max_open_requests_per_client = 0\n",
            auth = self.fake.auth_url(),
            token = self.fake.token_url(),
            browser = self.fake.base_url(),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = self.dir.path().join(format!("{name}-{port}.log"));
        let router = spawn(&log, &path, env);
        let mut router = Router {
            base: format!("http://127.0.0.1:{port}"),
            child: router,
            log,
        };
        wait_ready(&self.http, &mut router).await;
        router
    }

    pub async fn create(&self, router: &Router, hostname: &str) -> (String, String) {
        let answer = self
            .http
            .post(format!("{}/v1/token-requests", router.base))
            .json(&json!({"client_name": "multi", "hostname": hostname}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED, "{}", router.base);
        let body: Value = answer.json().await.unwrap();
        (
            body["request_id"].as_str().unwrap().to_owned(),
            body["poll_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn status(&self, router: &Router, id: &str, poll: &str, wait: u64) -> Value {
        let answer = self
            .http
            .get(format!(
                "{}/v1/token-requests/{id}/status?wait={wait}",
                router.base
            ))
            .bearer_auth(poll)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json().await.unwrap()
    }

    pub async fn admin_post(&self, router: &Router, path: &str, body: Value) -> StatusCode {
        self.http
            .post(format!("{}{path}", router.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn admin_get(&self, router: &Router, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", router.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        answer.json().await.unwrap()
    }

    /// Selects account 1 for request `id` on `router`: the fake control browser approves,
    /// and the provider redirects to whichever router the config names.
    pub async fn select(&self, router: &Router, id: &str) -> StatusCode {
        let path = format!("/v1/token-requests/{id}/select-account");
        self.admin_post(router, &path, json!({"account_id": 1}))
            .await
    }

    /// The request's audit rows, oldest first.
    pub async fn audit(&self, router: &Router, id: &str) -> Vec<Value> {
        let body = self
            .admin_get(router, &format!("/v1/audit?request_id={id}"))
            .await;
        body["events"].as_array().unwrap().clone()
    }
}

impl Router {
    /// SIGKILL: the process dies mid-whatever, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(30).collect();
            eprintln!("--- the log of {} (last lines, newest first)", self.base);
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn(log: &Path, config: &Path, env: &[(&str, &str)]) -> Child {
    let dir = log.parent().unwrap();
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-auth-router"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTH_ROUTER_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn().expect("start a router")
}

async fn wait_ready(http: &reqwest::Client, router: &mut Router) {
    let (deadline, base) = (
        Instant::now() + Duration::from_secs(30),
        router.base.clone(),
    );
    while Instant::now() < deadline {
        if let Ok(Some(status)) = router.child.try_wait() {
            let log = std::fs::read_to_string(&router.log).unwrap_or_default();
            panic!("the router at {base} exited ({status}):\n{log}");
        }
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the router at {base} did not become ready");
}

/// Polls `check` every 50 ms for up to `within`; the last value it gave.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
