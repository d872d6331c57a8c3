//! Configuration: built-in defaults, then a TOML file, then `AUTH_ROUTER_*` environment
//! variables (`__` between nested keys), validated as a whole before anything binds.
//!
//! Every error names the key at fault, because the person reading it is an admin at a
//! terminal who needs to know which line to fix.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use crate::domain::scopes::validate_scope;

/// The prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "AUTH_ROUTER_";

/// Variables with our prefix that belong to the client commands, not to the server. The
/// loader skips them so that one shell can run the service and the CLI side by side.
const CLIENT_ENV_KEYS: &[&str] = &["url", "admin_token"];

/// The longest retention a key may ask for: 100 years, far inside what dates can hold.
pub const MAX_RETENTION_SECS: u64 = 100 * 365 * 24 * 3600;

/// The shortest configured admin token: it guards every token the router holds, and the
/// console sign-in is reachable by anyone who reaches the port.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub requests: RequestsConfig,
    pub reaper: ReaperConfig,
    pub oauth: OAuthConfig,
    pub control_browser: ControlBrowserConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Token requests one client IP may create per minute; 0 turns the limit off.
    pub creates_per_minute_per_ip: u32,
    /// Open requests one hostname may have at once; 0 turns the limit off.
    pub max_open_requests_per_hostname: u32,
    /// The longest any HTTP request may take before the router answers 503.
    pub request_timeout_secs: u64,
    /// HTTP requests served at once; more are refused with 503 at once.
    pub max_concurrent_requests: usize,
    /// Failed console sign-ins one client IP may make per minute; past it, sign-ins from
    /// that address answer 429 until the budget refills. 0 turns the limit off.
    pub failed_sign_ins_per_minute_per_ip: u32,
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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Empty means: generate one at startup and print it once.
    #[serde(serialize_with = "redacted")]
    pub token: SecretString,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: u32,
    #[serde(default)]
    pub label: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            database_url: "sqlite://auth-router.db".into(),
            requests: RequestsConfig::default(),
            reaper: ReaperConfig::default(),
            oauth: OAuthConfig::default(),
            control_browser: ControlBrowserConfig::default(),
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            accounts: Vec::new(),
        }
    }
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 600,
            poll_interval_secs: 5,
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
            max_open_requests_per_hostname: 10,
            request_timeout_secs: 30,
            max_concurrent_requests: 512,
            failed_sign_ins_per_minute_per_ip: 10,
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
        }
    }
}

impl Default for ControlBrowserConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:7780".into(),
            timeout_secs: 10,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: SecretString::from(""),
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

    /// Extracts and validates from any figment; tests use it with their own providers.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges, URLs, scopes and clashes between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.into(),
        };
        if !self.database_url.starts_with("sqlite:") {
            return Err(invalid("database_url", "must start with `sqlite:`"));
        }
        self.validate_durations()?;
        if self.oauth.client_id.trim().is_empty() {
            return Err(invalid("oauth.client_id", "must be set"));
        }
        http_url("oauth.auth_url", &self.oauth.auth_url)?;
        http_url("oauth.token_url", &self.oauth.token_url)?;
        if !self.oauth.revocation_url.is_empty() {
            let url = http_url("oauth.revocation_url", &self.oauth.revocation_url)?;
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if url.scheme() != "https" && !loopback {
                return Err(invalid(
                    "oauth.revocation_url",
                    "must be https (RFC 7009), except on a loopback host",
                ));
            }
        }
        let redirect = http_url("oauth.redirect_uri", &self.oauth.redirect_uri)?;
        let path = redirect.path();
        if crate::routes::is_reserved_path(path) {
            return Err(invalid(
                "oauth.redirect_uri",
                &format!(
                    "has the path {path}, which the router already serves; give the callback a path of its own, such as /oauth/callback"
                ),
            ));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.~".contains(c);
        if !path.chars().all(plain) {
            return Err(invalid(
                "oauth.redirect_uri",
                "path may only use letters, digits and / - _ . ~",
            ));
        }
        if redirect.query().is_some() || redirect.fragment().is_some() {
            return Err(invalid(
                "oauth.redirect_uri",
                "must not have a query or a fragment",
            ));
        }
        for scope in &self.oauth.default_scopes {
            validate_scope(scope).map_err(|m| invalid("oauth.default_scopes", &m))?;
            let allowed = &self.oauth.allowed_scopes;
            if !allowed.is_empty() && !allowed.contains(scope) {
                return Err(invalid(
                    "oauth.default_scopes",
                    &format!("contains {scope:?}, which is not in oauth.allowed_scopes"),
                ));
            }
        }
        for scope in &self.oauth.allowed_scopes {
            validate_scope(scope).map_err(|m| invalid("oauth.allowed_scopes", &m))?;
        }
        http_url("control_browser.base_url", &self.control_browser.base_url)?;
        let slowest_upstream = self
            .oauth
            .timeout_secs
            .max(self.control_browser.timeout_secs);
        if self.limits.request_timeout_secs <= slowest_upstream {
            return Err(invalid(
                "limits.request_timeout_secs",
                "must exceed oauth.timeout_secs and control_browser.timeout_secs, or a slow upstream call would be cut off mid-flow",
            ));
        }
        if self.limits.max_concurrent_requests == 0 {
            return Err(invalid(
                "limits.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if let Some(token) = self.admin_token() {
            if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(invalid(
                    "admin.token",
                    &format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters (for example: openssl rand -hex 32), or empty to generate one per start"
                    ),
                ));
            }
        }
        let mut ids = HashSet::new();
        if let Some(dup) = self.accounts.iter().find(|a| !ids.insert(a.id)) {
            return Err(invalid("accounts", &format!("lists id {} twice", dup.id)));
        }
        Ok(())
    }

    /// Every duration key within a range that is sane for the service and that the date and
    /// timer arithmetic can hold: a huge retention once overflowed and killed the reaper.
    fn validate_durations(&self) -> Result<(), ConfigError> {
        const DAY: u64 = 24 * 3600;
        let ranges: [(&'static str, u64, u64, u64); 8] = [
            ("requests.ttl_secs", self.requests.ttl_secs, 1, 7 * DAY),
            (
                "requests.poll_interval_secs",
                self.requests.poll_interval_secs,
                0,
                3600,
            ),
            ("reaper.interval_secs", self.reaper.interval_secs, 1, DAY),
            (
                "reaper.retain_terminal_secs",
                self.reaper.retain_terminal_secs,
                1,
                MAX_RETENTION_SECS,
            ),
            (
                "reaper.retain_audit_secs",
                self.reaper.retain_audit_secs,
                1,
                MAX_RETENTION_SECS,
            ),
            ("oauth.timeout_secs", self.oauth.timeout_secs, 1, 300),
            (
                "control_browser.timeout_secs",
                self.control_browser.timeout_secs,
                1,
                300,
            ),
            (
                "limits.request_timeout_secs",
                self.limits.request_timeout_secs,
                1,
                3600,
            ),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("must be between {min} and {max} (seconds), not {value}"),
                });
            }
        }
        if self.requests.poll_interval_secs > self.requests.ttl_secs {
            return Err(ConfigError::Invalid {
                key: "requests.poll_interval_secs",
                message: "must not exceed requests.ttl_secs".into(),
            });
        }
        Ok(())
    }

    /// The path the callback route is served at.
    pub fn callback_path(&self) -> String {
        Url::parse(&self.oauth.redirect_uri)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "/oauth/callback".into())
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

impl Config {
    /// The effective configuration as TOML, with every secret replaced by `[redacted]`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

fn http_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        key,
        message: if value.is_empty() {
            "must be set".into()
        } else {
            format!("is not a URL: {e}")
        },
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            key,
            message: "must be an http(s) URL".into(),
        });
    }
    Ok(url)
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
