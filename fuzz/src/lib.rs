//! The harness both fuzz targets share: one real router (a temporary SQLite file, the
//! committed defaults, an unreachable upstream) driven in-process through its `Router`, no
//! socket needed. Every answer must be a success or a 4xx: a 5xx or a panic is a finding.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::ConnectInfo;
use axum::Router;
use claude_auth_router::{Application, Config};
use http::Request;
use tower::ServiceExt;

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

/// The shared router, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let router = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut config = Config {
                database_url: format!("sqlite://{}", dir.path().join("fuzz.db").display()).into(),
                ..Config::default()
            };
            config.oauth.client_id = "fuzz".into();
            config.oauth.auth_url = "http://127.0.0.1:9/authorize".into();
            config.oauth.token_url = "http://127.0.0.1:9/token".into();
            config.admin.token = secrecy::SecretString::from("fuzz-admin-token-0123456789abcdefghij");
            config.requests.poll_interval_secs = 0;
            config.limits.creates_per_minute_per_ip = 0;
            config.limits.max_open_requests_per_client = 0;
            Application::build_with_listener(config, listener)
                .await
                .unwrap()
                .router()
        });
        Harness {
            runtime,
            router,
            _dir: dir,
        }
    })
}

impl Harness {
    /// Sends one request and panics (a fuzzer finding) on a 5xx.
    pub fn send(&self, mut request: Request<axum::body::Body>) {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = self
            .runtime
            .block_on(self.router.clone().oneshot(request))
            .unwrap();
        assert!(
            !response.status().is_server_error(),
            "answered {}",
            response.status()
        );
    }
}
