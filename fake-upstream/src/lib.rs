//! A fake OAuth provider and control browser on one port, for the router's tests and for
//! the README walkthrough. It is strict where a real provider is strict (PKCE, single-use
//! codes, redirect_uri and client checks), so a router bug shows up as a failed exchange
//! here rather than in production.
//!
//! - `GET /authorize`: validates the request and redirects to `redirect_uri` with a code
//!   (or `error=access_denied` when the control browser was told to deny).
//!
//! With [`Provider::Claude`] (`--provider claude`) it is as strict as Anthropic's server, as
//! the tools that log in to it document: the authorize request must carry `code=true` and a
//! redirect to `http://localhost:<port>/callback` or the code page; the token endpoint takes
//! JSON only, wants the authorize `state` in the body, and answers 429 to any `User-Agent`
//! that does not start with `claude-cli/`; answers carry
//! `expires_in: 28800`, `token_type: "Bearer"`, the `account` (with the email the test gave
//! the account id) and its `organization`.
//! - `POST /token`: `authorization_code` and `refresh_token` grants, form or JSON bodies,
//!   client authentication by Basic header or body.
//! - `POST /revoke`: RFC 7009 token revocation, with the token endpoint's client checks.
//! - `GET /api/oauth/usage` (claude only): the account's usage windows, for a live access
//!   token it issued; [`FakeUpstream::set_usage`] (or `POST /control/usage`) sets them.
//! - `GET /open-auth?account_id=&auth_url=`: the control browser. It records the call and,
//!   in the default [`BrowserMode::AutoApprove`], follows the authorize URL to the router's
//!   callback *before* answering, like a provider that remembers consent.

mod provider;
mod usage;

pub use provider::{CLAUDE_REFRESH_TOKEN_LIFETIME, LONG_LIVED_SCOPES, MAX_LIFETIME};
pub use usage::{UsageAnswer, UsageCall, USAGE_BETA};

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

/// Which provider the fake plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Provider {
    /// A plain RFC 6749 provider: form or JSON bodies, no extras.
    #[default]
    Generic,
    /// Anthropic's server, with its quirks (see the crate docs).
    Claude,
}

/// The page Anthropic shows `code#state` on, instead of redirecting to a local callback.
pub const CLAUDE_CODE_PAGE: &str = "https://platform.claude.com/oauth/code/callback";

/// Faults the token endpoint can be told to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// 429, with `Retry-After: N` when given.
    RateLimited(Option<u64>),
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
    /// The router's request id, which newer routers send for the control browser's logs.
    pub request_id: Option<String>,
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
    /// Which provider to play.
    pub provider: Provider,
    /// The email of each account id, as the Claude token response names it (default
    /// `account-<id>@fake.example`).
    pub emails: HashMap<u32, String>,
    /// The `refresh_token_expires_in` of Claude answers (default
    /// [`CLAUDE_REFRESH_TOKEN_LIFETIME`]).
    pub refresh_token_expires_in: Option<u64>,
}

pub(crate) struct Issued {
    client_id: String,
    state: String,
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
    /// The `User-Agent` of each token endpoint call, in order.
    token_user_agents: Vec<String>,
    secrets: Secrets,
    /// Tokens the revocation endpoint was asked to revoke, in order.
    revoked: Vec<String>,
    revocation_calls: usize,
    /// The revocation endpoint answers 503.
    revocation_fails: bool,
    /// The account of each access token issued and not revoked.
    access: HashMap<String, u32>,
    /// What the usage endpoint answers, per account (default: both windows at 0%).
    usage: HashMap<u32, UsageAnswer>,
    usage_calls: Vec<UsageCall>,
    /// When the fake started: its usage windows reset 5 hours and 7 days after.
    started: chrono::DateTime<chrono::Utc>,
    /// Where the control browser submits a code its code page showed: the router's base URL
    /// and the submit token.
    code_submitter: Option<(String, String)>,
    /// Texts the code page showed (`code#state`), oldest first.
    shown_codes: Vec<String>,
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
            token_user_agents: Vec::new(),
            secrets: Secrets::default(),
            revoked: Vec::new(),
            revocation_calls: 0,
            revocation_fails: false,
            code_submitter: None,
            shown_codes: Vec::new(),
            access: HashMap::new(),
            usage: HashMap::new(),
            usage_calls: Vec::new(),
            started: chrono::Utc::now(),
        }));
        let fake = FakeUpstream { addr, state };
        let app = Router::new()
            .route("/authorize", get(provider::authorize))
            .route("/token", post(provider::token))
            .route("/revoke", post(provider::revoke))
            .route("/open-auth", get(provider::open_auth))
            .route("/api/oauth/usage", get(usage::usage))
            .route("/control/usage", post(control_usage))
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

    /// `http://127.0.0.1:PORT/api/oauth/usage`, the claude provider's usage endpoint.
    pub fn usage_url(&self) -> String {
        format!("{}/api/oauth/usage", self.base_url())
    }

    /// Account `id`'s usage windows from now on, with resets fixed for the fake's life.
    pub fn set_usage(&self, id: u32, five_hour: f64, seven_day: f64) {
        let mut s = self.lock();
        let body = s.reading(five_hour, seven_day);
        s.usage.insert(id, UsageAnswer::Body(body));
    }

    /// What the usage endpoint answers for account `id` from now on.
    pub fn set_usage_answer(&self, id: u32, answer: UsageAnswer) {
        self.lock().usage.insert(id, answer);
    }

    /// The `refresh_token_expires_in` of Claude answers from now on (`None`: the default).
    pub fn set_refresh_token_expires_in(&self, secs: Option<u64>) {
        self.lock().options.refresh_token_expires_in = secs;
    }

    /// Makes an access token it issued unknown, as if the provider had withdrawn it: the
    /// usage endpoint then answers 401 to it.
    pub fn forget_access_token(&self, token: &str) {
        self.lock().access.remove(token);
    }

    /// The usage endpoint's calls so far, oldest first.
    pub fn usage_calls(&self) -> Vec<UsageCall> {
        self.lock().usage_calls.clone()
    }

    /// Tokens revoked through the revocation endpoint so far, oldest first.
    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.clone()
    }

    /// How many requests reached the revocation endpoint.
    pub fn revocation_calls(&self) -> usize {
        self.lock().revocation_calls
    }

    /// Gives account `id` the email the Claude token response names.
    pub fn set_account_email(&self, id: u32, email: &str) {
        self.lock().options.emails.insert(id, email.to_owned());
    }

    /// In the auto modes, a login that lands on the code page is submitted to the router's
    /// `POST /v1/codes` with this submit token, as the Electron app does.
    pub fn set_code_submitter(&self, router_base: &str, submit_token: &str) {
        self.lock().code_submitter = Some((router_base.to_owned(), submit_token.to_owned()));
    }

    /// What the code page showed so far (`code#state`), oldest first.
    pub fn shown_codes(&self) -> Vec<String> {
        self.lock().shown_codes.clone()
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
    /// The `User-Agent` each token endpoint call carried, oldest first.
    pub fn token_user_agents(&self) -> Vec<String> {
        self.lock().token_user_agents.clone()
    }

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

/// `POST /control/usage` `{"account_id", "five_hour", "seven_day"}`: sets an account's usage
/// windows, for the README walkthrough (tests call [`FakeUpstream::set_usage`]).
async fn control_usage(
    axum::extract::State(fake): axum::extract::State<FakeUpstream>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::http::StatusCode {
    let number = |k: &str| body.get(k).and_then(serde_json::Value::as_f64);
    let id = body
        .get("account_id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| u32::try_from(id).ok());
    match (id, number("five_hour"), number("seven_day")) {
        (Some(id), Some(five), Some(seven)) => {
            fake.set_usage(id, five, seven);
            axum::http::StatusCode::NO_CONTENT
        }
        _ => axum::http::StatusCode::BAD_REQUEST,
    }
}
