//! End-to-end tests of the real `claude-auth-router` binary: start-up from the committed
//! configuration, SIGTERM and SIGKILL, start-up errors, and what reaches the log.

use std::fs;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use claude_auth_router::startup::GENERATED_ADMIN_TOKEN_LINE;
use fake_upstream::{BrowserMode, FakeUpstream, Options};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

mod connections;

const ADMIN: &str = "binary-test-admin-token-4242-abcdefghij";
const CLIENT_SECRET: &str = "binary-test-client-secret-77";

/// A free loopback port. Another process could take it before the router binds it; on a
/// test machine that is rare enough, and the router would then fail loudly, not silently.
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Router {
    child: Child,
    base: String,
    log: PathBuf,
}

/// `serve`, with the environment cleared of any `AUTH_ROUTER_*` from the caller's shell.
fn command(dir: &Path, env: &[(&str, String)]) -> Command {
    cli(dir, &["serve"], env)
}

/// Any subcommand, likewise.
fn cli(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-auth-router"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTH_ROUTER_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The fake provider and control browser, requiring the client secret the router is given.
async fn fake() -> FakeUpstream {
    let options = Options {
        client_secret: Some(CLIENT_SECRET.into()),
        ..Options::default()
    };
    FakeUpstream::start(options).await
}

/// The environment for a router on `port` against `fake`, with its database in `dir`.
fn router_env(port: u16, fake: &FakeUpstream, dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}")),
        (
            "AUTH_ROUTER_DATABASE_URL",
            format!("sqlite://{}", dir.join("router.db").display()),
        ),
        ("AUTH_ROUTER_OAUTH__CLIENT_ID", "binary-test".into()),
        ("AUTH_ROUTER_OAUTH__CLIENT_SECRET", CLIENT_SECRET.into()),
        ("AUTH_ROUTER_OAUTH__AUTH_URL", fake.auth_url()),
        ("AUTH_ROUTER_OAUTH__TOKEN_URL", fake.token_url()),
        (
            "AUTH_ROUTER_OAUTH__REDIRECT_URI",
            format!("http://127.0.0.1:{port}/oauth/callback"),
        ),
        ("AUTH_ROUTER_CONTROL_BROWSER__BASE_URL", fake.base_url()),
        ("AUTH_ROUTER_ADMIN__TOKEN", ADMIN.into()),
    ]
}

impl Router {
    async fn start(dir: &Path, port: u16, env: &[(&str, String)], log_name: &str) -> Router {
        let log = dir.join(log_name);
        let mut cmd = command(dir, env);
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("start the binary");
        let router = Router {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        router.wait_healthy().await;
        router
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.base)).await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "router did not become healthy; log:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has no memory effects on this process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "router did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Client {
            http,
            base: base.to_owned(),
        }
    }

    /// Creates a request; returns (id, poll token).
    async fn create(&self) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/v1/token-requests", self.base))
            .json(&json!({"client_name": "bin", "hostname": "box"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        (
            body["request_id"].as_str().unwrap().into(),
            body["poll_token"].as_str().unwrap().into(),
        )
    }

    async fn status(&self, id: &str, token: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}/v1/token-requests/{id}/status", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn select(&self, id: &str, account: u32, admin: &str) -> StatusCode {
        self.http
            .post(format!(
                "{}/v1/token-requests/{id}/select-account",
                self.base
            ))
            .bearer_auth(admin)
            .json(&json!({"account_id": account}))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn get(&self, url: &str) -> StatusCode {
        self.http.get(url).send().await.unwrap().status()
    }
}

#[tokio::test]
async fn the_binary_runs_the_flow_and_exits_zero_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let mut router = Router::start(
        dir.path(),
        port,
        &router_env(port, &fake, dir.path()),
        "router.log",
    )
    .await;
    let client = Client::new(&router.base);
    let (id, poll) = client.create().await;

    assert_eq!(client.select(&id, 2, ADMIN).await, StatusCode::OK);
    let (code, body) = client.status(&id, &poll).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "approved");
    assert_eq!(
        body["token"]["access_token"],
        fake.secrets().access_tokens[0].as_str()
    );

    router.signal(libc::SIGTERM);
    let status = router.wait_exit().await;

    assert_eq!(status.code(), Some(0), "{}", router.log());
    let log = router.log();
    assert!(
        log.contains("reaper stopped") && log.contains("claude-auth-router stopped"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_before_the_process_exits() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    fake.set_browser_mode(BrowserMode::Hang(Duration::from_millis(1500)));
    let port = free_port();
    let mut router = Router::start(
        dir.path(),
        port,
        &router_env(port, &fake, dir.path()),
        "router.log",
    )
    .await;
    let client = Client::new(&router.base);
    let (id, poll) = client.create().await;

    let selected = id.clone();
    let in_flight = tokio::spawn(async move { client.select(&selected, 1, ADMIN).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    router.signal(libc::SIGTERM);
    let answered = in_flight.await.unwrap();
    let status = router.wait_exit().await;

    assert_eq!(
        answered,
        StatusCode::OK,
        "the select finished after SIGTERM"
    );
    assert_eq!(status.code(), Some(0));
    let restarted = Router::start(
        dir.path(),
        port,
        &router_env(port, &fake, dir.path()),
        "again.log",
    )
    .await;
    let (_, body) = Client::new(&restarted.base).status(&id, &poll).await;
    assert_eq!(body["status"], "in_progress", "{body}");
}

#[tokio::test]
async fn a_router_killed_mid_flow_finishes_the_flow_after_it_restarts() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    fake.set_browser_mode(BrowserMode::Record);
    let port = free_port();
    let env = router_env(port, &fake, dir.path());
    let mut router = Router::start(dir.path(), port, &env, "first.log").await;
    let client = Client::new(&router.base);
    let (id, poll) = client.create().await;
    assert_eq!(client.select(&id, 5, ADMIN).await, StatusCode::OK);
    let callback = fake.authorize(&fake.opened()[0].auth_url, 5, false).await;

    router.signal(libc::SIGKILL);
    router.wait_exit().await;
    let _restarted = Router::start(dir.path(), port, &env, "second.log").await;

    assert_eq!(client.get(&callback).await, StatusCode::OK);
    let (_, body) = client.status(&id, &poll).await;
    assert_eq!(body["status"], "approved");
    assert_eq!(body["account_id"], 5);
    assert!(body["token"]["access_token"]
        .as_str()
        .unwrap()
        .starts_with("fake-at-5-"));
}

#[tokio::test]
async fn a_second_serve_on_one_database_is_refused_and_a_kill_9_frees_the_database_at_once() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let env = router_env(port, &fake, dir.path());
    let mut first = Router::start(dir.path(), port, &env, "first.log").await;
    let mut second_env = env.clone();
    second_env[0] = (
        "AUTH_ROUTER_BIND_ADDR",
        format!("127.0.0.1:{}", free_port()),
    );

    let second = command(dir.path(), &second_env).output().unwrap();

    assert!(!second.status.success(), "a second serve must not start");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("router.db") && stderr.contains(&format!("pid {}", first.child.id())),
        "names the database and the holder: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    first.signal(libc::SIGKILL);
    first.wait_exit().await;
    let restarted = Router::start(dir.path(), port, &env, "third.log").await;
    assert_eq!(
        reqwest::get(format!("{}/healthz", restarted.base))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// A webhook receiver that records the bodies it gets, on `listener`.
fn receiver(listener: tokio::net::TcpListener) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    got
}

#[tokio::test]
async fn an_event_committed_before_a_kill_9_is_delivered_after_the_restart() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let receiver_port = free_port();
    fs::write(
        dir.path().join("config.toml"),
        format!(
            "[[notify.webhooks]]\nurl = \"http://127.0.0.1:{receiver_port}/hook\"\n\
             events = [\"request.pending\"]\n"
        ),
    )
    .unwrap();
    let env = router_env(port, &fake, dir.path());
    let mut router = Router::start(dir.path(), port, &env, "first.log").await;
    let (id, _) = Client::new(&router.base).create().await;
    // The receiver is down: the event waits in the outbox.
    tokio::time::sleep(Duration::from_millis(300)).await;

    router.signal(libc::SIGKILL);
    router.wait_exit().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .unwrap();
    let got = receiver(listener);
    let _restarted = Router::start(dir.path(), port, &env, "second.log").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "never delivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = got.lock().unwrap().clone();
    let event: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(event["type"], "request.pending");
    assert_eq!(event["request"]["request_id"], id.as_str());
}

#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let mut env = router_env(port, &fake, dir.path());
    env.push(("RUST_LOG", "trace".into()));
    let mut router = Router::start(dir.path(), port, &env, "trace.log").await;
    let client = Client::new(&router.base);
    let mut poll_tokens = Vec::new();

    // Approved through the auto-approving control browser.
    let (id, poll) = client.create().await;
    client.select(&id, 1, ADMIN).await;
    assert_eq!(client.status(&id, &poll).await.1["status"], "approved");
    poll_tokens.push(poll);
    // Approved by hand, then the callback replayed, and a poll with a wrong token.
    fake.set_browser_mode(BrowserMode::Record);
    let (id, poll) = client.create().await;
    client.select(&id, 2, ADMIN).await;
    let callback = fake
        .authorize(&fake.opened().last().unwrap().auth_url, 2, false)
        .await;
    assert_eq!(client.get(&callback).await, StatusCode::OK);
    assert_eq!(client.get(&callback).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        client.status(&id, "wrong-token").await.0,
        StatusCode::UNAUTHORIZED
    );
    poll_tokens.push(poll);
    // Denied by the provider.
    fake.set_browser_mode(BrowserMode::AutoDeny);
    let (id, poll) = client.create().await;
    client.select(&id, 3, ADMIN).await;
    assert_eq!(client.status(&id, &poll).await.1["status"], "denied");
    poll_tokens.push(poll);
    router.signal(libc::SIGTERM);
    router.wait_exit().await;

    let log = router.log();
    assert!(
        log.contains("token request approved"),
        "the log was captured"
    );
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace level was on"
    );
    let s = fake.secrets();
    let all = [
        s.codes,
        s.states,
        s.verifiers,
        s.access_tokens,
        s.refresh_tokens,
        poll_tokens,
    ]
    .concat();
    assert!(all.len() >= 12, "secrets were collected: {}", all.len());
    for secret in all
        .iter()
        .chain([&ADMIN.to_owned(), &CLIENT_SECRET.to_owned()])
    {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log: {secret}"
        );
    }
}

/// The admin token a router printed on its own line of stderr, and that line's log.
fn generated_admin_token(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(GENERATED_ADMIN_TOKEN_LINE))
        .collect();
    assert_eq!(lines.len(), 1, "printed once, as a plain line: {log}");
    lines[0][GENERATED_ADMIN_TOKEN_LINE.len()..]
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_committed_config_starts_the_service_and_prints_a_generated_admin_token() {
    let dir = TempDir::new().unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        dir.path().join("config.toml"),
    )
    .unwrap();
    let port = free_port();
    // Only the port moves, so that parallel tests and other services cannot collide.
    let env = [("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"))];
    let router = Router::start(dir.path(), port, &env, "router.log").await;

    assert!(
        dir.path().join("auth-router.db").exists(),
        "the default database file was created"
    );
    let log = router.log();
    let token = generated_admin_token(&log);
    assert_eq!(log.matches(token.as_str()).count(), 1, "{log}");
    assert!(log.contains("WARN"), "{log}");
    let list = reqwest::Client::new()
        .get(format!("{}/v1/token-requests", router.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_json_logs_the_generated_admin_token_is_a_plain_stderr_line_and_in_no_log_record() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let mut env: Vec<_> = router_env(port, &fake, dir.path())
        .into_iter()
        .filter(|(k, _)| *k != "AUTH_ROUTER_ADMIN__TOKEN")
        .collect();
    env.push(("AUTH_ROUTER_LOG__FORMAT", "json".into()));
    let mut router = Router::start(dir.path(), port, &env, "router.log").await;
    router.signal(libc::SIGTERM);
    router.wait_exit().await;

    let log = router.log();
    let token = generated_admin_token(&log);
    for line in log
        .lines()
        .filter(|l| !l.starts_with(GENERATED_ADMIN_TOKEN_LINE))
    {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            !line.contains(token.as_str()),
            "the token is in a log record: {record}"
        );
    }
}

#[tokio::test]
async fn bad_configuration_fails_before_binding_with_a_message_naming_the_key() {
    let dir = TempDir::new().unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        dir.path().join("config.toml"),
    )
    .unwrap();
    let port = free_port();
    let bind = ("AUTH_ROUTER_BIND_ADDR", format!("127.0.0.1:{port}"));
    let cases: [(Vec<(&str, String)>, &str); 3] = [
        (
            vec![
                bind.clone(),
                ("AUTH_ROUTER_REQUESTS__TTL_SECS", "ten".into()),
            ],
            "requests.ttl_secs",
        ),
        (
            vec![
                bind.clone(),
                ("AUTH_ROUTER_OAUTH__TOKEN_URL", "nope".into()),
            ],
            "oauth.token_url",
        ),
        (
            vec![
                bind.clone(),
                ("AUTH_ROUTER_CONTROL_BROWSER__TIMEOUT_SECS", "0".into()),
            ],
            "control_browser.timeout_secs",
        ),
    ];
    for (env, key) in cases {
        let output = command(dir.path(), &env).output().unwrap();

        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("auth-router.db").exists(),
            "nothing was created"
        );
    }
    let output = command(dir.path(), &[])
        .args(["--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml does not exist"));
}

#[tokio::test]
async fn check_config_prints_the_effective_configuration_with_every_secret_redacted() {
    let dir = TempDir::new().unwrap();
    let key = "qX8m2k3H0ZrW9lq7vT1sY5cB6nD4fG8jK2mP0rS3tU4=";
    let env = [
        ("AUTH_ROUTER_OAUTH__CLIENT_ID", "c".to_owned()),
        (
            "AUTH_ROUTER_OAUTH__AUTH_URL",
            "http://p.example/a".to_owned(),
        ),
        (
            "AUTH_ROUTER_OAUTH__TOKEN_URL",
            "http://p.example/t".to_owned(),
        ),
        ("AUTH_ROUTER_OAUTH__CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("AUTH_ROUTER_ADMIN__TOKEN", ADMIN.to_owned()),
        ("AUTH_ROUTER_STORAGE__ENCRYPTION_KEY", key.to_owned()),
        ("AUTH_ROUTER_STORAGE__PREVIOUS_KEYS", format!("[\"{key}\"]")),
        ("AUTH_ROUTER_REQUESTS__TTL_SECS", "120".to_owned()),
    ];
    fs::write(dir.path().join("empty.toml"), "").unwrap();
    let output = cli(
        dir.path(),
        &["check-config", "--config", "empty.toml"],
        &env,
    )
    .output()
    .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("ttl_secs = 120"), "{printed}");
    assert_eq!(printed.matches("\"[redacted]\"").count(), 4, "{printed}");
    for secret in [CLIENT_SECRET, ADMIN, key] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
    assert!(String::from_utf8_lossy(&output.stderr).contains("configuration is valid"));
}

#[tokio::test]
async fn check_config_names_the_claude_preset_and_hides_proxy_credentials() {
    let dir = TempDir::new().unwrap();
    fs::write(
        dir.path().join("claude.toml"),
        "[oauth]\nprovider = \"claude\"\n\n[[accounts]]\nid = 1\nemail = \"team@example.com\"\n\
         proxy = \"socks5h://acct:account-proxy-secret@10.0.0.9:1080\"\n\n\
         [[accounts]]\nid = 2\nkind = \"console\"\n\n\
         [[accounts]]\nid = 3\nauth_url = \"https://sso.example/authorize\"\n",
    )
    .unwrap();
    let env = [
        (
            "AUTH_ROUTER_OAUTH__PROXY",
            "http://team:global-proxy-secret@127.0.0.1:3128".to_owned(),
        ),
        (
            "AUTH_ROUTER_CONTROL_BROWSER__SUBMIT_TOKEN",
            "submit-token-secret-0123456789".to_owned(),
        ),
    ];

    let output = cli(
        dir.path(),
        &["check-config", "--config", "claude.toml"],
        &env,
    )
    .output()
    .unwrap();

    let (printed, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("provider preset: claude"), "{stderr}");
    for account in [
        "account 1: authorizes at https://claude.com/cai/oauth/authorize",
        "account 2: authorizes at https://platform.claude.com/oauth/authorize",
        "account 3: authorizes at https://sso.example/authorize",
    ] {
        assert!(stderr.contains(account), "missing {account}\n{stderr}");
    }
    for line in [
        "provider = \"claude\"",
        "auth_url = \"https://claude.com/cai/oauth/authorize\"",
        "token_url = \"https://platform.claude.com/v1/oauth/token\"",
        "token_request_format = \"json\"",
        "state_in_token_request = true",
        "callback_bind_addr = \"127.0.0.1:54545\"",
    ] {
        assert!(printed.contains(line), "missing {line}\n{printed}");
    }
    for secret in [
        "account-proxy-secret",
        "global-proxy-secret",
        "submit-token-secret-0123456789",
    ] {
        assert!(
            !printed.contains(secret) && !stderr.contains(secret),
            "{secret}"
        );
    }
    assert!(
        printed.contains("127.0.0.1:3128"),
        "the proxy's host is shown: {printed}"
    );
}

#[tokio::test]
async fn sigterm_closes_the_callback_listener_and_the_api_listener() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let (port, callback_port) = (free_port(), free_port());
    let mut env = router_env(port, &fake, dir.path());
    env.push((
        "AUTH_ROUTER_OAUTH__CALLBACK_BIND_ADDR",
        format!("127.0.0.1:{callback_port}"),
    ));
    let mut router = Router::start(dir.path(), port, &env, "router.log").await;
    let callback = format!("http://127.0.0.1:{callback_port}");
    let client = Client::new(&router.base);
    assert_eq!(
        client.get(&format!("{callback}/healthz")).await,
        StatusCode::NOT_FOUND,
        "the callback listener serves the callback only"
    );
    assert_eq!(
        client
            .get(&format!("{callback}/oauth/callback?code=c"))
            .await,
        StatusCode::BAD_REQUEST,
        "a callback without a state"
    );

    router.signal(libc::SIGTERM);
    let status = router.wait_exit().await;

    assert!(status.success(), "{status:?}\n{}", router.log());
    for port in [port, callback_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let mut env = router_env(port, &fake, dir.path());
    env.push(("AUTH_ROUTER_LOG__FORMAT", "json".into()));
    let mut router = Router::start(dir.path(), port, &env, "router.log").await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/token-requests", router.base))
        .header("x-request-id", "req-abc-123")
        .json(&json!({"client_name": "j", "hostname": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    router.signal(libc::SIGTERM);
    router.wait_exit().await;

    let log = router.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let created = lines
        .iter()
        .find(|l| l["fields"]["message"] == "token request created")
        .expect("the create is logged");
    assert_eq!(created["span"]["request_id"], "req-abc-123", "{created}");
    assert_eq!(created["level"], "INFO");
}

#[tokio::test]
async fn the_rekey_command_reseals_plaintext_rows_with_the_new_key() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let env = router_env(port, &fake, dir.path());
    let mut router = Router::start(dir.path(), port, &env, "first.log").await;
    let client = Client::new(&router.base);
    let (id, poll) = client.create().await;
    client.select(&id, 1, ADMIN).await;
    router.signal(libc::SIGTERM);
    router.wait_exit().await;
    let key = "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=";
    let mut keyed = env.clone();
    keyed.push(("AUTH_ROUTER_STORAGE__ENCRYPTION_KEY", key.to_owned()));

    let output = cli(dir.path(), &["rekey"], &keyed).output().unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("re-sealed 2 values"),
        "access and refresh token: {stdout}"
    );
    let _restarted = Router::start(dir.path(), port, &keyed, "second.log").await;
    let (_, body) = Client::new(&format!("http://127.0.0.1:{port}"))
        .status(&id, &poll)
        .await;
    assert_eq!(
        body["token"]["access_token"],
        fake.secrets().access_tokens[0].as_str()
    );
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("router.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT access_token FROM token_bundles UNION ALL SELECT refresh_token FROM token_bundles",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|v| v.starts_with("enc:v1:")),
        "{stored:?}"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify_without_a_warning() {
    let analyze = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(analyze).exists(),
        "{analyze} is missing: install Debian's systemd (.ci/run does)"
    );
    let dir = TempDir::new().unwrap();
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/claude-auth-router.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/claude-auth-router serve"));
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = unit.replace(
        "/usr/local/bin/claude-auth-router",
        env!("CARGO_BIN_EXE_claude-auth-router"),
    );
    let path = dir.path().join("claude-auth-router.service");
    fs::write(&path, unit).unwrap();

    let output = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_sample_production_config_is_valid() {
    let dir = TempDir::new().unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/config.production.toml"
    );
    let key_file = dir.path().join("encryption.key");
    fs::write(&key_file, "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=\n").unwrap();
    let env = [(
        "AUTH_ROUTER_STORAGE__ENCRYPTION_KEY_FILE",
        key_file.display().to_string(),
    )];

    let output = cli(dir.path(), &["check-config", "--config", config], &env)
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tokens encrypted with key id"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("format = \"json\""));
}

#[tokio::test]
async fn the_sample_two_router_config_is_valid_on_postgres() {
    let dir = TempDir::new().unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/config.two-routers.toml"
    );
    let database = claude_auth_router_postgres::testing::scratch_database_url().await;
    let env = [
        ("AUTH_ROUTER_DATABASE_URL", database),
        (
            "AUTH_ROUTER_STORAGE__ENCRYPTION_KEY",
            "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=".to_owned(),
        ),
    ];

    let output = cli(dir.path(), &["check-config", "--config", config], &env)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("postgres://postgres@"), "{stdout}");
    assert!(stdout.contains("fallback_poll_secs = 5"), "{stdout}");
}

#[tokio::test]
async fn proxy_variables_in_the_environment_are_ignored_and_the_flow_goes_direct() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    // A proxy nobody listens on: any call sent through it fails.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut env = router_env(port, &fake, dir.path());
    for key in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "all_proxy",
    ] {
        env.push((key, dead.clone()));
    }
    let router = Router::start(dir.path(), port, &env, "router.log").await;
    let client = Client::new(&router.base);
    let (id, poll) = client.create().await;

    assert_eq!(
        client.select(&id, 2, ADMIN).await,
        StatusCode::OK,
        "{}",
        router.log()
    );
    let (_, body) = client.status(&id, &poll).await;
    assert_eq!(body["status"], "approved", "{body}");
}

#[tokio::test]
async fn text_logs_quote_what_a_client_sent_so_it_cannot_forge_a_field() {
    let dir = TempDir::new().unwrap();
    let fake = fake().await;
    let port = free_port();
    let router = Router::start(
        dir.path(),
        port,
        &router_env(port, &fake, dir.path()),
        "router.log",
    )
    .await;
    let created = reqwest::Client::new()
        .post(format!("{}/v1/token-requests", router.base))
        .header("x-request-id", "r1 verified=true")
        .json(&json!({"client_name": "x verified=true", "hostname": "h account=9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = router.log();
    let line = log
        .lines()
        .find(|l| l.contains("token request created"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(r#"client_name="x verified=true""#), "{line}");
    assert!(line.contains(r#"hostname="h account=9""#), "{line}");
    assert!(line.contains(r#"request_id="r1 verified=true""#), "{line}");
    assert!(!line.contains(" verified=true "), "{line}");
}
