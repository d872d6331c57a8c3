//! Configuration: built-in defaults, then a TOML file, then `AUTH_ROUTER_*` environment
//! variables (`__` between nested keys), validated as a whole before anything binds.
//!
//! Every error names the key at fault, because the person reading it is an admin at a
//! terminal who needs to know which line to fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

pub mod claude;
pub mod paths;
mod proxy;
mod validate;

pub use proxy::ProxyUrl;

/// The prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "AUTH_ROUTER_";

/// Variables with our prefix that belong to the client commands, not to the server. The
/// loader skips them so that one shell can run the service and the CLI side by side.
const CLIENT_ENV_KEYS: &[&str] = &["url", "admin_token", "client_key"];

/// The longest retention a key may ask for: 100 years, far inside what dates can hold.
pub const MAX_RETENTION_SECS: u64 = 100 * 365 * 24 * 3600;

/// The longest lifetime a long-lived token may be given: ten years.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// The shortest configured admin token: it guards every token the router holds, and the
/// console sign-in is reachable by anyone who reaches the port.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The router's own `User-Agent`: webhooks, the control browser, and the provider unless
/// `oauth.user_agent` says otherwise.
pub const ROUTER_USER_AGENT: &str = concat!("claude-auth-router/", env!("CARGO_PKG_VERSION"));

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bind_addr: SocketAddr,
    /// Its password, when it has one, is a secret: `Debug`, `Display` and `check-config` show
    /// the URL with the password redacted.
    pub database_url: DatabaseUrl,
    pub requests: RequestsConfig,
    pub reaper: ReaperConfig,
    pub oauth: OAuthConfig,
    pub control_browser: ControlBrowserConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub notify: NotifyConfig,
    pub policy: PolicyConfig,
    /// The team's provider accounts. When non-empty, select-account refuses other ids.
    pub accounts: Vec<Account>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestsConfig {
    /// A request's lifetime from creation.
    pub ttl_secs: u64,
    /// The interval told to polling clients.
    pub poll_interval_secs: u64,
    /// Hand out the refresh token in status and refresh answers. Off by default: providers
    /// that rotate refresh tokens (Claude does) let any client that refreshes on its own
    /// kill the router's copy, and only an access token should leave the router.
    pub share_refresh_token: bool,
    /// The longest a status poll may hold its answer (`?wait=N`), waiting for a change.
    pub max_wait_secs: u64,
    /// Refuse a create without an enrolled client's key (401).
    pub require_client_key: bool,
    /// The longest lifetime a create may ask for (`lifetime_secs`, a long-lived token with
    /// nothing to refresh); 0: none may. Each enrolled client has its own maximum too.
    pub max_token_lifetime_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaperConfig {
    pub interval_secs: u64,
    /// Finished requests (and their tokens) older than this are deleted.
    pub retain_terminal_secs: u64,
    /// Audit rows older than this are deleted.
    pub retain_audit_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Base64 of 32 random bytes; empty means tokens are stored in plaintext.
    #[serde(serialize_with = "redacted")]
    pub encryption_key: SecretString,
    /// A file holding the key, as an alternative to `encryption_key`.
    pub encryption_key_file: Option<PathBuf>,
    /// Keys that may still open older rows after a rotation.
    #[serde(serialize_with = "redacted_list")]
    pub previous_keys: Vec<SecretString>,
    /// Refuse stored values that are not sealed. Unset means: on whenever a key is set, so
    /// that someone who can write the file cannot plant a plaintext token.
    pub require_sealed: Option<bool>,
    /// PostgreSQL: how often each router re-checks the requests its long polls wait on, in
    /// case a change notification from another router was lost (a dropped connection).
    pub fallback_poll_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            encryption_key: SecretString::default(),
            encryption_key_file: None,
            previous_keys: Vec::new(),
            require_sealed: None,
            fallback_poll_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Token requests one client IP may create per minute; 0 turns the limit off.
    pub creates_per_minute_per_ip: u32,
    /// Open requests one enrolled client (or, for an unverified request, one hostname) may
    /// have at once; 0 turns the limit off. Its old name is still read, for a release.
    #[serde(alias = "max_open_requests_per_hostname")]
    pub max_open_requests_per_client: u32,
    /// The longest any HTTP request may take before the router answers 503.
    pub request_timeout_secs: u64,
    /// HTTP requests served at once; more are refused with 503 at once.
    pub max_concurrent_requests: usize,
    /// Failed console sign-ins one client IP may make per minute; past it, sign-ins from
    /// that address answer 429 until the budget refills. 0 turns the limit off.
    pub failed_sign_ins_per_minute_per_ip: u32,
    /// Long-poll waiters at once; past it, a wait is answered at once as if `wait=0`.
    pub max_waiters: usize,
    /// Reverse proxies (CIDR blocks) whose `X-Forwarded-For` is believed; empty: none.
    pub trusted_proxies: Vec<String>,
    /// Open connections at once, on all listeners; past it a new one is closed unanswered.
    pub max_connections: usize,
    /// Open connections from one TCP peer address (IPv6: one /64); 0 turns the limit off.
    /// The socket's own address, never `X-Forwarded-For`: a header cannot open sockets.
    pub max_connections_per_ip: usize,
    /// A connection with no request in progress for this long is closed, including the
    /// time before its first byte: an idle socket costs a descriptor and memory.
    pub idle_timeout_secs: u64,
    /// A request's head must arrive whole within this, from its first byte.
    pub header_read_timeout_secs: u64,
    /// At SIGTERM, how long requests in flight may take to finish before what is left is
    /// closed. Keep systemd's `TimeoutStopSec` above it.
    pub shutdown_grace_secs: u64,
    /// Long polls waiting on one request at once; more are answered at once, so one poll
    /// token cannot take every waiter slot.
    pub max_waiters_per_request: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// A preset for the keys below; see [`claude`].
    pub provider: Provider,
    pub client_id: String,
    /// Empty means a public client: only `client_id` is sent, in the body.
    #[serde(serialize_with = "redacted")]
    pub client_secret: SecretString,
    pub auth_url: String,
    pub token_url: String,
    /// The callback is served at this URL's path.
    pub redirect_uri: String,
    pub default_scopes: Vec<String>,
    /// Empty means any scope is allowed.
    pub allowed_scopes: Vec<String>,
    /// Extra query pairs for the authorize URL.
    pub extra_auth_params: BTreeMap<String, String>,
    pub token_request_format: TokenRequestFormat,
    pub timeout_secs: u64,
    /// RFC 7009 revocation endpoint; when set, revoke also withdraws the tokens there.
    pub revocation_url: String,
    /// Accept a pasted code without its `#state` part. Weaker: without the state, a code
    /// from any login of the right account (or a planted one) is taken for this request's.
    pub allow_code_without_state: bool,
    /// Also send the login's `state` in the code exchange body (Anthropic wants it).
    pub state_in_token_request: bool,
    /// A second listener that serves only the callback path (empty: none), for providers
    /// that accept only a `http://localhost:<port>/callback` redirect.
    pub callback_bind_addr: String,
    /// The egress proxy of token endpoint calls, unless the account has its own.
    pub proxy: ProxyUrl,
    /// The `User-Agent` of every call to the provider (exchange, refresh, revocation).
    /// Anthropic's token endpoint answers 429 to clients it does not recognise, so the
    /// `claude` preset sends Claude Code's own.
    pub user_agent: String,
    /// How long a refresh token lives from the login when the token response does not say
    /// (`refresh_token_expires_in`); 0: unknown. The claude preset: 29 days.
    pub refresh_token_lifetime_secs: u64,
    /// The scopes a long-lived token may carry; every scope it asks must be one of these.
    /// The claude preset: the inference-only ones `claude setup-token` asks for.
    pub long_lived_scopes: Vec<String>,
    /// The provider's usage endpoint, read with each account's access token to learn how
    /// full its usage windows are; empty: off. The claude preset sets Anthropic's.
    pub usage_url: String,
    /// How often each account's usage is read (±20% jitter).
    pub usage_poll_secs: u64,
}

/// Which provider the `[oauth]` keys describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Nothing preset: every key as written.
    #[default]
    Generic,
    /// Anthropic's OAuth server: [`claude::preset`] fills the keys left unset.
    Claude,
}

/// How the token endpoint wants its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRequestFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 says.
    Form,
    /// The same fields as a JSON object, for providers that want that.
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlBrowserConfig {
    pub base_url: String,
    pub timeout_secs: u64,
    /// A bearer token the control browser may use for the two code endpoints only (empty:
    /// off), so it can submit a code its provider page showed without admin rights.
    #[serde(serialize_with = "redacted")]
    pub submit_token: SecretString,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Empty means: generate one at startup and print it once.
    #[serde(serialize_with = "redacted")]
    pub token: SecretString,
    /// The console's external address (`https://auth-router.example.com`), for links in
    /// notifications. Empty: no links.
    pub public_url: String,
}

/// The approval policy for enrolled clients with `auto_approve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// An account whose last login failed less than this long ago is skipped.
    pub unhealthy_cooldown_secs: u64,
    pub account_strategy: AccountStrategy,
    /// Every strategy skips an account whose usage is at or over this percentage in either
    /// window; when every eligible account is, the request waits for an operator.
    pub max_utilization: f64,
}

/// How the policy picks among the eligible accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStrategy {
    /// The account whose last approval is oldest (never approved first).
    #[default]
    LeastRecentlyUsed,
    /// The account with the fewest live tokens.
    FewestLiveTokens,
    /// The account with the most room left in its fuller usage window (no reading yet
    /// counts as empty); ties go to the least recently used.
    MostHeadroom,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            unhealthy_cooldown_secs: 300,
            account_strategy: AccountStrategy::LeastRecentlyUsed,
            max_utilization: 95.0,
        }
    }
}

/// Notifications: webhooks that hear about what needs an operator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    pub webhooks: Vec<WebhookConfig>,
    /// Each delivery attempt's timeout.
    pub timeout_secs: u64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// `token.relogin_due` goes out when a bundle's refresh token dies sooner than this.
    pub relogin_warning_secs: u64,
    /// `account.quota_high` goes out when a usage window reaches this percentage.
    pub quota_warning_percent: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed. A secret: chat webhook URLs carry their credential.
    #[serde(serialize_with = "redacted")]
    pub url: SecretString,
    /// The event types this webhook gets; empty: every event.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The HMAC-SHA256 key of the `X-Auth-Router-Signature` header; empty: unsigned.
    #[serde(default = "empty_secret", serialize_with = "redacted")]
    pub secret: SecretString,
}

/// How a webhook's body looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON: `{"id", "type", "at", "request", "console_url"}`.
    #[default]
    Json,
    /// `{"text": "…"}`, for Slack's (and compatible chats') incoming webhooks.
    Slack,
}

fn empty_secret() -> SecretString {
    SecretString::from("")
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: u32,
    #[serde(default)]
    pub label: String,
    /// The address the provider must name for this account's logins; a token for another
    /// account is discarded. Unset: not checked.
    #[serde(default)]
    pub email: Option<String>,
    /// This account's egress proxy for token endpoint calls; wins over `oauth.proxy`.
    #[serde(default)]
    pub proxy: ProxyUrl,
    /// This account's authorize URL; wins over `kind` and `oauth.auth_url`. The token URL
    /// stays shared.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// `claude.ai` (the default) or `console`: with the `claude` preset, a Console account
    /// authorizes at [`claude::CONSOLE_AUTH_URL`].
    #[serde(default = "default_account_kind")]
    pub kind: String,
}

/// The accounts' `kind` values.
pub const ACCOUNT_KINDS: &[&str] = &["claude.ai", "console"];

fn default_account_kind() -> String {
    ACCOUNT_KINDS[0].into()
}

impl Default for Account {
    fn default() -> Self {
        Self {
            id: 0,
            label: String::new(),
            email: None,
            proxy: ProxyUrl::default(),
            auth_url: None,
            kind: default_account_kind(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            database_url: DatabaseUrl("sqlite://auth-router.db".into()),
            requests: RequestsConfig::default(),
            reaper: ReaperConfig::default(),
            oauth: OAuthConfig::default(),
            control_browser: ControlBrowserConfig::default(),
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            notify: NotifyConfig::default(),
            policy: PolicyConfig::default(),
            accounts: Vec::new(),
        }
    }
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 600,
            poll_interval_secs: 5,
            share_refresh_token: false,
            max_wait_secs: 25,
            require_client_key: false,
            max_token_lifetime_secs: 0,
        }
    }
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            retain_terminal_secs: 30 * 24 * 3600,
            retain_audit_secs: 365 * 24 * 3600,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            creates_per_minute_per_ip: 60,
            max_open_requests_per_client: 10,
            request_timeout_secs: 30,
            max_concurrent_requests: 512,
            failed_sign_ins_per_minute_per_ip: 10,
            max_waiters: 10_000,
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_connections_per_ip: 256,
            idle_timeout_secs: 60,
            header_read_timeout_secs: 30,
            shutdown_grace_secs: 10,
            max_waiters_per_request: 4,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
        }
    }
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: SecretString::from(""),
            auth_url: String::new(),
            token_url: String::new(),
            redirect_uri: "http://127.0.0.1:7777/oauth/callback".into(),
            default_scopes: Vec::new(),
            allowed_scopes: Vec::new(),
            extra_auth_params: BTreeMap::new(),
            token_request_format: TokenRequestFormat::Form,
            timeout_secs: 10,
            revocation_url: String::new(),
            allow_code_without_state: false,
            provider: Provider::Generic,
            state_in_token_request: false,
            callback_bind_addr: String::new(),
            proxy: ProxyUrl::default(),
            user_agent: ROUTER_USER_AGENT.into(),
            refresh_token_lifetime_secs: 0,
            long_lived_scopes: Vec::new(),
            usage_url: String::new(),
            usage_poll_secs: 600,
        }
    }
}

impl Default for ControlBrowserConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:7780".into(),
            timeout_secs: 10,
            submit_token: SecretString::from(""),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: SecretString::from(""),
            public_url: String::new(),
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            timeout_secs: 5,
            max_attempts: 15,
            relogin_warning_secs: 3 * 24 * 3600,
            quota_warning_percent: 90.0,
        }
    }
}

/// A configuration problem, with the key that caused it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}` {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads from `path` (or `./config.toml` when present) and the environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) if !p.is_file() => return Err(ConfigError::MissingFile(p.to_path_buf())),
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(DEFAULT_CONFIG_FILE),
        };
        let env = Env::prefixed(ENV_PREFIX)
            .split("__")
            .ignore(CLIENT_ENV_KEYS);
        Self::from_figment(Figment::new().merge(Toml::file(file)).merge(env))
    }

    /// Extracts and validates from any figment; tests use it with their own providers. A
    /// provider preset goes under everything the figment sets.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let figment = match figment.extract_inner::<Provider>("oauth.provider") {
            Ok(Provider::Claude) => Figment::from(claude::preset()).merge(figment),
            // Unset is generic; a bad value is reported by the extraction below.
            _ => figment,
        };
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    /// The path the callback route is served at.
    pub fn callback_path(&self) -> String {
        Url::parse(&self.oauth.redirect_uri)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "/oauth/callback".into())
    }

    /// The configured account `id`, if any.
    pub fn account(&self, id: u32) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Where `account` authorizes: its own `auth_url`; else, with the `claude` preset, its
    /// `kind`'s; else `oauth.auth_url`.
    pub fn auth_url_of<'a>(&'a self, account: &'a Account) -> &'a str {
        match &account.auth_url {
            Some(url) => url,
            None if self.oauth.provider == Provider::Claude && account.kind == "console" => {
                claude::CONSOLE_AUTH_URL
            }
            None => &self.oauth.auth_url,
        }
    }

    /// The callback listener's address, when one is configured (validated at load).
    pub fn callback_bind_addr(&self) -> Option<SocketAddr> {
        self.oauth.callback_bind_addr.trim().parse().ok()
    }

    /// `limits.trusted_proxies`, parsed (validated at load).
    pub fn trusted_proxies(&self) -> Vec<crate::domain::peer::Cidr> {
        self.limits
            .trusted_proxies
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }

    /// The control browser's submit token, if one is configured.
    pub fn submit_token(&self) -> Option<&str> {
        Some(self.control_browser.submit_token.expose_secret()).filter(|t| !t.is_empty())
    }

    /// Whether `id` may be chosen for a request.
    pub fn account_allowed(&self, id: u32) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a.id == id)
    }

    /// The admin token, if one was configured (empty means none).
    pub fn admin_token(&self) -> Option<&str> {
        Some(self.admin.token.expose_secret()).filter(|t| !t.is_empty())
    }
}

impl RequestsConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}

/// Shows whether a secret is set, never what it is.
fn redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.expose_secret().is_empty() {
        ""
    } else {
        "[redacted]"
    })
}

fn redacted_list<S: Serializer>(secrets: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(secrets.iter().map(|_| "[redacted]"))
}

/// `database_url`: a `sqlite://` path, or (for several routers) a server URL whose password
/// must not reach a log, an error or `check-config`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as written, password included: for connecting, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password, if any, replaced by `REDACTED`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("REDACTED"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl Config {
    /// The effective configuration as TOML, with every secret replaced by `[redacted]`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// Figment says "for key default.oauth.timeout_secs"; admins know the key without the profile.
fn describe_figment_error(err: figment::Error) -> ConfigError {
    let messages: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("`{key}`: {}{source}", e.kind)
            }
        })
        .collect();
    ConfigError::Parse(messages.join("; "))
}
