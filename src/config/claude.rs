//! The `claude` provider preset: what every tool that logs in to Claude accounts sends
//! (claude-relay-service, better-ccflare, CLIProxyAPI, ccbroker), as the lowest layer under
//! the file and the environment, so any key set explicitly wins. The hosts have moved
//! before, so every value stays overridable.

use figment::providers::Serialized;
use serde_json::json;

/// Claude Code's public OAuth client: no secret, PKCE only.
pub const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// Where claude.ai accounts authorize now. The old `claude.ai/oauth/authorize` still
/// renders, but submitting it fails.
pub const AUTH_URL: &str = "https://claude.com/cai/oauth/authorize";
/// Where Console accounts authorize (`[[accounts]] kind = "console"`).
pub const CONSOLE_AUTH_URL: &str = "https://platform.claude.com/oauth/authorize";
pub const TOKEN_URL: &str = "https://platform.claude.com/v1/oauth/token";
/// The only redirects Anthropic accepts for this client are a localhost callback and its
/// own code page; this is the localhost one, served by the callback listener.
pub const REDIRECT_URI: &str = "http://localhost:54545/callback";
pub const CALLBACK_BIND_ADDR: &str = "127.0.0.1:54545";
/// The page that shows `code#state` instead of redirecting, for the manual mode.
pub const CODE_PAGE: &str = "https://platform.claude.com/oauth/code/callback";
/// What Claude Code itself sends: the token endpoint is reported to answer 429 to any
/// `User-Agent` that does not start with `claude-cli/`.
pub const USER_AGENT: &str = "claude-cli/2.0.0 (external, cli)";
/// A refresh token's fixed life from the login, when an answer does not say: 29 days.
pub const REFRESH_TOKEN_LIFETIME_SECS: u64 = 29 * 24 * 3600;
/// `org:create_api_key` is left out: recent servers are reported to reject it.
pub const DEFAULT_SCOPES: &[&str] = &[
    "user:profile",
    "user:inference",
    "user:sessions:claude_code",
    "user:mcp_servers",
    "user:file_upload",
];

/// What a long-lived token may carry: the inference-only scopes `claude setup-token` asks
/// for. Anthropic refuses a custom `expires_in` for any other.
pub const LONG_LIVED_SCOPES: &[&str] = &["user:inference", "user:profile", "user:file_upload"];
/// Where an account's usage windows are read, with its access token.
pub const USAGE_URL: &str = "https://api.anthropic.com/api/oauth/usage";
/// The beta header the usage endpoint wants.
pub const USAGE_BETA: &str = "oauth-2025-04-20";

/// The preset as a figment layer.
pub fn preset() -> Serialized<serde_json::Value> {
    Serialized::defaults(json!({
        "oauth": {
            "client_id": CLIENT_ID,
            "auth_url": AUTH_URL,
            "token_url": TOKEN_URL,
            "default_scopes": DEFAULT_SCOPES,
            "extra_auth_params": { "code": "true" },
            "token_request_format": "json",
            "state_in_token_request": true,
            "redirect_uri": REDIRECT_URI,
            "callback_bind_addr": CALLBACK_BIND_ADDR,
            "user_agent": USER_AGENT,
            "refresh_token_lifetime_secs": REFRESH_TOKEN_LIFETIME_SECS,
            "long_lived_scopes": LONG_LIVED_SCOPES,
            "usage_url": USAGE_URL,
        }
    }))
}
