//! `spawn_app()`: the real router on 127.0.0.1:0 with a fresh SQLite file and the shared
//! fake upstream, plus typed helpers for every endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use claude_auth_router::config::Account;
use claude_auth_router::db::Db;
use claude_auth_router::{Application, Config};
use fake_upstream::{BrowserMode, FakeUpstream, Options, Provider};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789-abcdefghij";

pub struct TestApp {
    pub addr: SocketAddr,
    /// The callback listener's address, for apps that have one.
    pub callback_addr: Option<SocketAddr>,
    pub base: String,
    pub http: reqwest::Client,
    pub fake: FakeUpstream,
    pub config: Config,
    _dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The running app's own database handle (its cache included).
    app_db: Option<Db>,
}

/// A created request, as the client sees it.
pub struct Created {
    pub id: String,
    pub poll_token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app after `customize` has adjusted the test configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_options(Options::default(), customize).await
}

pub async fn spawn_app_with_options(
    options: Options,
    customize: impl FnOnce(&mut Config),
) -> TestApp {
    let fake = FakeUpstream::start(options).await;
    fake.set_browser_mode(BrowserMode::Record);
    let dir = TempDir::new().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut config = Config::default();
    test_settings(&mut config, &dir, addr, &fake);
    config.oauth.client_id = "router-test-client".into();
    config.oauth.auth_url = fake.auth_url();
    config.oauth.token_url = fake.token_url();
    config.oauth.redirect_uri = format!("http://{addr}/oauth/callback");
    config.oauth.timeout_secs = 2;
    customize(&mut config);
    config.validate().expect("test config is valid");
    launch(fake, config, dir, listener, None).await
}

/// An app with only `provider = "claude"` and the test's URL overrides for `[oauth]`, the
/// way an operator configures it, against the fake playing Anthropic's server. Its callback
/// listener is on a port of its own; `redirect_uri` is `http://localhost:<that port>/callback`.
pub async fn spawn_claude_app_with(
    options: Options,
    customize: impl FnOnce(&mut Config),
) -> TestApp {
    let fake = FakeUpstream::start(Options {
        provider: Provider::Claude,
        ..options
    })
    .await;
    fake.set_browser_mode(BrowserMode::Record);
    let dir = TempDir::new().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let callback = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (addr, callback_addr) = (
        listener.local_addr().unwrap(),
        callback.local_addr().unwrap(),
    );
    let oauth = format!(
        "[oauth]\nprovider = \"claude\"\nauth_url = \"{}\"\ntoken_url = \"{}\"\n\
         redirect_uri = \"http://localhost:{}/callback\"\ncallback_bind_addr = \"{callback_addr}\"\n\
         usage_url = \"{}\"\ntimeout_secs = 2\n",
        fake.auth_url(),
        fake.token_url(),
        callback_addr.port(),
        fake.usage_url(),
    );
    let mut config = Config::from_figment(figment::Figment::from(
        <figment::providers::Toml as figment::providers::Format>::string(&oauth),
    ))
    .expect("the claude preset with URL overrides is valid");
    test_settings(&mut config, &dir, addr, &fake);
    customize(&mut config);
    config.validate().expect("test config is valid");
    launch(fake, config, dir, listener, Some(callback)).await
}

/// What every test app shares: its own database, the admin token, and pacing and limits
/// off (tests poll and create fast) unless a test is about them.
fn test_settings(config: &mut Config, dir: &TempDir, addr: SocketAddr, fake: &FakeUpstream) {
    config.bind_addr = addr;
    config.database_url = format!("sqlite://{}", dir.path().join("router.db").display()).into();
    config.control_browser.base_url = fake.base_url();
    config.control_browser.timeout_secs = 2;
    config.admin.token = SecretString::from(ADMIN_TOKEN);
    config.reaper.interval_secs = 3600;
    config.requests.poll_interval_secs = 0;
    config.limits.creates_per_minute_per_ip = 0;
    config.limits.max_open_requests_per_client = 0;
}

/// The store the suite runs on: SQLite, or PostgreSQL with `TEST_STORE=postgres` (`.ci/run`
/// runs the suite both ways; the tests about SQLite's own files are SQLite-only).
pub fn on_postgres() -> bool {
    std::env::var("TEST_STORE").is_ok_and(|s| s == "postgres")
}

async fn launch(
    fake: FakeUpstream,
    mut config: Config,
    dir: TempDir,
    listener: TcpListener,
    callback: Option<TcpListener>,
) -> TestApp {
    let default_file = format!("sqlite://{}", dir.path().join("router.db").display());
    if on_postgres() && config.database_url.expose() == default_file {
        let url = claude_auth_router_postgres::testing::scratch_database_url().await;
        config.database_url = url.into();
    }
    let addr = listener.local_addr().unwrap();
    let mut app = TestApp {
        addr,
        callback_addr: callback.as_ref().map(|c| c.local_addr().unwrap()),
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        fake,
        config,
        _dir: Arc::new(dir),
        stop: None,
        task: None,
        app_db: None,
    };
    app.start(listener, callback).await.expect("the app builds");
    app
}

impl TestApp {
    async fn start(
        &mut self,
        listener: TcpListener,
        callback: Option<TcpListener>,
    ) -> anyhow::Result<()> {
        let app =
            Application::build_with_listeners(self.config.clone(), listener, callback).await?;
        self.app_db = Some(app.db());
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(app.run_until(async {
            let _ = rx.await;
        })));
        Ok(())
    }

    /// Stops the app as SIGTERM would, and waits until it has closed the database.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stopped cleanly");
        }
    }

    /// Stops (if running) and starts the app again on the same port and database file.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await.expect("the app restarts");
    }

    /// Restarts with a changed configuration; the error when the app refuses to start.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Config)) -> anyhow::Result<()> {
        self.stop().await;
        change(&mut self.config);
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        let callback = match self.callback_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.expect("rebind the same port")),
            None => None,
        };
        self.start(listener, callback).await
    }

    /// The raw bytes of the database file, its WAL and its shared-memory index, as a thief
    /// would copy them.
    pub fn database_bytes(&self) -> Vec<u8> {
        let path = self.config.database_url.trim_start_matches("sqlite://");
        ["", "-wal", "-shm"]
            .iter()
            .flat_map(|suffix| std::fs::read(format!("{path}{suffix}")).unwrap_or_default())
            .collect()
    }

    /// The running app's own database handle: the reaper through it behaves as the
    /// service's own reaper does.
    pub fn app_db(&self) -> Db {
        self.app_db.clone().expect("the app is running")
    }

    /// A second handle on the database file, as an admin's tool would have.
    pub async fn db(&self) -> Db {
        Db::connect(&self.config.database_url)
            .await
            .expect("open db")
    }

    /// A second handle with the app's keys, for maintenance commands such as rekey.
    pub async fn db_sealed(&self) -> Db {
        claude_auth_router::startup::open_db(&self.config)
            .await
            .expect("open db with keys")
    }

    /// What an admin's open write transaction in `sqlite3` does: holds SQLite's write lock
    /// until the returned connection runs `ROLLBACK` (or is dropped).
    pub async fn hold_write_lock(&self) -> sqlx::SqliteConnection {
        let mut admin =
            <sqlx::SqliteConnection as sqlx::Connection>::connect(&self.config.database_url)
                .await
                .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut admin)
            .await
            .unwrap();
        admin
    }

    /// Like [`db_sealed`](Self::db_sealed), letting plaintext rows through, as `rekey` does.
    pub async fn db_sealed_to_reseal(&self) -> Db {
        claude_auth_router::startup::open_db_to_reseal(&self.config)
            .await
            .expect("open db with keys")
    }

    pub async fn sql_pool(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&self.config.database_url)
            .await
            .expect("open db")
    }

    /// How SQLite plans `sql` on this app's database: the detail of each step. Its
    /// parameters stay unbound, since the plan does not depend on their values.
    pub async fn query_plan(&self, sql: &str) -> Vec<String> {
        use sqlx::Row as _;
        sqlx::raw_sql(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&self.sql_pool().await)
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create(&self, body: Value) -> Response {
        self.http
            .post(self.url("/v1/token-requests"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Enrolls a client; returns (client_id, client_key).
    pub async fn enroll(&self, body: Value) -> (String, String) {
        let response = self.admin_post("/v1/clients", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["client_id"].as_str().unwrap().to_owned(),
            body["client_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a request as the enrolled client whose key is `key`.
    pub async fn create_as(&self, key: &str, body: Value) -> Response {
        self.http
            .post(self.url("/v1/token-requests"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates `body` as the enrolled client `key` (asserts 201).
    pub async fn create_as_ok(&self, key: &str, body: Value) -> Created {
        let response = self.create_as(key, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        Created {
            id: body["request_id"].as_str().unwrap().to_owned(),
            poll_token: body["poll_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn create_ok(&self) -> Created {
        let response = self
            .create(json!({"client_name": "alice", "hostname": "laptop"}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        Created {
            id: body["request_id"].as_str().unwrap().to_owned(),
            poll_token: body["poll_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn status(&self, id: &str, token: &str) -> Response {
        self.http
            .get(self.url(&format!("/v1/token-requests/{id}/status")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The status body of a request the test created (asserts 200).
    pub async fn status_ok(&self, created: &Created) -> Value {
        let response = self.status(&created.id, &created.poll_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Refreshes the request's tokens with its poll token (asserts 200); the `token` object.
    pub async fn refresh_ok(&self, created: &Created) -> Value {
        let response = self.refresh(&created.id, &created.poll_token).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn select(&self, id: &str, account_id: u32) -> Response {
        self.admin_post(
            &format!("/v1/token-requests/{id}/select-account"),
            json!({ "account_id": account_id }),
        )
        .await
    }

    pub async fn deny(&self, id: &str) -> Response {
        self.admin_post(&format!("/v1/token-requests/{id}/deny"), json!({}))
            .await
    }

    pub async fn revoke(&self, id: &str) -> Response {
        self.admin_post(&format!("/v1/token-requests/{id}/revoke"), json!({}))
            .await
    }

    pub async fn cancel(&self, id: &str, token: &str) -> Response {
        self.http
            .post(self.url(&format!("/v1/token-requests/{id}/cancel")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh(&self, id: &str, token: &str) -> Response {
        self.http
            .post(self.url(&format!("/v1/token-requests/{id}/refresh")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Creates a request and has it approved through the auto-approving control browser.
    pub async fn approved(&self, account: u32) -> Created {
        self.fake
            .set_browser_mode(fake_upstream::BrowserMode::AutoApprove);
        let created = self.create_ok().await;
        assert_eq!(
            self.select(&created.id, account).await.status(),
            StatusCode::OK
        );
        self.fake
            .set_browser_mode(fake_upstream::BrowserMode::Record);
        assert_eq!(self.status_ok(&created).await["status"], "approved");
        created
    }

    /// One request's audit trail, oldest first (asserts 200).
    pub async fn audit_trail(&self, id: &str) -> Vec<Value> {
        let response = self
            .http
            .get(self.url(&format!("/v1/audit?request_id={id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["events"].as_array().unwrap().clone()
    }

    /// The first audit row of `action` in request `id`'s trail.
    pub async fn audit_row(&self, id: &str, action: &str) -> Value {
        self.audit_trail(id)
            .await
            .into_iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} row in {id}'s trail"))
    }

    /// Runs the provider's redirect `callback` in the background; its answer's status.
    pub fn call_later(&self, callback: &str) -> tokio::task::JoinHandle<StatusCode> {
        let (http, callback) = (self.http.clone(), callback.to_owned());
        tokio::spawn(async move { http.get(callback).send().await.unwrap().status() })
    }

    pub async fn list(&self, query: &str) -> Response {
        self.http
            .get(self.url(&format!("/v1/token-requests{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` as an admin; the JSON answer (asserts 200).
    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    /// Selects `account` with the control browser in record mode and returns the authorize
    /// URL it was asked to open.
    pub async fn select_and_capture(&self, id: &str, account: u32) -> String {
        let before = self.fake.opened().len();
        let response = self.select(id, account).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
        let opened = self.fake.opened();
        assert_eq!(
            opened.len(),
            before + 1,
            "the control browser was called once"
        );
        opened.last().unwrap().auth_url.clone()
    }

    /// Runs the provider's side of a login and returns the callback URL, not yet called.
    pub async fn callback_url_for(&self, id: &str, account: u32) -> String {
        let auth_url = self.select_and_capture(id, account).await;
        self.fake.authorize(&auth_url, account, false).await
    }

    /// The stored row's status, read straight from the database.
    pub async fn db_status(&self, id: &str) -> String {
        if on_postgres() {
            let pool = self.pg_pool().await;
            let status: String =
                sqlx::query_scalar("SELECT status FROM auth_requests WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            return status;
        }
        let pool = self.sql_pool().await;
        let status: String = sqlx::query_scalar("SELECT status FROM auth_requests WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        status
    }

    pub async fn count(&self, table: &str) -> i64 {
        let query = format!("SELECT COUNT(*) FROM {table}");
        if on_postgres() {
            let pool = self.pg_pool().await;
            let n: i64 = sqlx::query_scalar(&query).fetch_one(&pool).await.unwrap();
            pool.close().await;
            return n;
        }
        let pool = self.sql_pool().await;
        let n: i64 = sqlx::query_scalar(&query).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    /// A pool on the app's PostgreSQL database (`TEST_STORE=postgres`).
    pub async fn pg_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.config.database_url.expose())
            .await
            .expect("open the PostgreSQL database")
    }
}

/// Asserts the status and the `error` code of an API error answer.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// The accounts used by tests that configure a list.
pub fn two_accounts() -> Vec<Account> {
    vec![
        Account {
            id: 1,
            label: "primary".into(),
            email: None,
            ..Default::default()
        },
        Account {
            id: 2,
            label: "backup".into(),
            email: None,
            ..Default::default()
        },
    ]
}

/// A JSON webhook to `url` for `events` (empty: every event), signed with `secret` (empty:
/// unsigned).
pub fn webhook(
    url: &str,
    events: &[&str],
    secret: &str,
) -> claude_auth_router::config::WebhookConfig {
    claude_auth_router::config::WebhookConfig {
        url: SecretString::from(url.to_owned()),
        events: events.iter().map(|e| e.to_string()).collect(),
        format: Default::default(),
        secret: SecretString::from(secret.to_owned()),
    }
}

/// A time an answer carries (RFC 3339).
pub fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .unwrap()
        .to_utc()
}

/// The value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether `needle` appears anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
