//! A fake OAuth provider and control browser on one port, for the router's tests and for
//! the README walkthrough. It is strict where a real provider is strict (PKCE, single-use
//! codes, redirect_uri and client checks), so a router bug shows up as a failed exchange
//! here rather than in production.
//!
//! - `GET /authorize`: validates the request and redirects to `redirect_uri` with a code
//!   (or `error=access_denied` when the control browser was told to deny).
//! - `POST /token`: `authorization_code` and `refresh_token` grants, form or JSON bodies,
//!   client authentication by Basic header or body.
//! - `POST /revoke`: RFC 7009 token revocation, with the token endpoint's client checks.
//! - `GET /open-auth?account_id=&auth_url=`: the control browser. It records the call and,
//!   in the default [`BrowserMode::AutoApprove`], follows the authorize URL to the router's
//!   callback *before* answering, like a provider that remembers consent.

mod provider;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

/// What the fake control browser does with `/open-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserMode {
    /// Follow the authorize URL and then the redirect to the callback, then answer 200.
    AutoApprove,
    /// The same, but the "person" clicks deny: the callback gets `error=access_denied`.
    AutoDeny,
    /// Only record the call and answer 200; the test drives the rest.
    Record,
    /// Answer 500.
    Fail,
    /// Answer after this long, to exercise the router's timeout.
    Hang(Duration),
}

/// Faults the token endpoint can be told to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// 500 with a JSON error body.
    ServerError,
    /// 200 with a body that is not JSON.
    NotJson,
    /// Wait this long before answering normally.
    Delay(Duration),
}

/// One `/open-auth` call the control browser received.
#[derive(Debug, Clone)]
pub struct OpenAuth {
    pub account_id: u32,
    pub auth_url: String,
    /// The status the router's callback answered, in the auto modes.
    pub callback_status: Option<u16>,
}

/// Every secret the fake handed out or saw, so tests can check none of them leaks.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub codes: Vec<String>,
    pub states: Vec<String>,
    pub verifiers: Vec<String>,
    pub access_tokens: Vec<String>,
    pub refresh_tokens: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// When set, the token endpoint requires this client secret.
    pub client_secret: Option<String>,
    /// `expires_in` of issued access tokens (default 3600).
    pub expires_in: Option<u64>,
    /// Refresh tokens stay valid and refresh answers carry none, as some providers do.
    /// Default: rotation, each refresh token works once.
    pub no_rotation: bool,
}

pub(crate) struct Issued {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    account: u32,
    used: bool,
}

pub(crate) struct RefreshGrant {
    client_id: String,
    scope: String,
    account: u32,
    revoked: bool,
}

pub(crate) struct State {
    options: Options,
    mode: BrowserMode,
    token_fault: Option<TokenFault>,
    codes: HashMap<String, Issued>,
    refresh: HashMap<String, RefreshGrant>,
    opened: Vec<OpenAuth>,
    token_calls: usize,
    secrets: Secrets,
    /// Tokens the revocation endpoint was asked to revoke, in order.
    revoked: Vec<String>,
    revocation_calls: usize,
    /// The revocation endpoint answers 503.
    revocation_fails: bool,
}

#[derive(Clone)]
pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeUpstream {
    /// Serves on `listener` in a background task for the life of the runtime.
    pub fn spawn(listener: TcpListener, options: Options) -> Self {
        let addr = listener.local_addr().expect("bound listener");
        let state = Arc::new(Mutex::new(State {
            options,
            mode: BrowserMode::AutoApprove,
            token_fault: None,
            codes: HashMap::new(),
            refresh: HashMap::new(),
            opened: Vec::new(),
            token_calls: 0,
            secrets: Secrets::default(),
            revoked: Vec::new(),
            revocation_calls: 0,
            revocation_fails: false,
        }));
        let fake = FakeUpstream { addr, state };
        let app = Router::new()
            .route("/authorize", get(provider::authorize))
            .route("/token", post(provider::token))
            .route("/revoke", post(provider::revoke))
            .route("/open-auth", get(provider::open_auth))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// Binds 127.0.0.1 on a free port and serves there.
    pub async fn start(options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::spawn(listener, options)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the control browser's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn auth_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    /// Tokens revoked through the revocation endpoint so far, oldest first.
    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.clone()
    }

    /// How many requests reached the revocation endpoint.
    pub fn revocation_calls(&self) -> usize {
        self.lock().revocation_calls
    }

    /// Makes the revocation endpoint answer 503 (or work again).
    pub fn set_revocation_fails(&self, fails: bool) {
        self.lock().revocation_fails = fails;
    }

    pub fn set_browser_mode(&self, mode: BrowserMode) {
        self.lock().mode = mode;
    }

    pub fn set_token_fault(&self, fault: Option<TokenFault>) {
        self.lock().token_fault = fault;
    }

    /// The `/open-auth` calls so far, oldest first.
    pub fn opened(&self) -> Vec<OpenAuth> {
        self.lock().opened.clone()
    }

    /// How many requests reached the token endpoint.
    pub fn token_calls(&self) -> usize {
        self.lock().token_calls
    }

    /// Makes every refresh token issued so far invalid, as a provider does when a user
    /// revokes access.
    pub fn revoke_refresh_tokens(&self) {
        for grant in self.lock().refresh.values_mut() {
            grant.revoked = true;
        }
    }

    pub fn secrets(&self) -> Secrets {
        self.lock().secrets.clone()
    }

    /// Plays the person in the browser for `auth_url`: calls the authorize endpoint as
    /// `account` and returns the callback URL it redirects to, without calling it.
    pub async fn authorize(&self, auth_url: &str, account: u32, deny: bool) -> String {
        provider::authorize_redirect(auth_url, account, deny)
            .await
            .expect("authorize redirect")
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
