//! Validation of what serde cannot check: ranges, URLs, scopes and clashes between keys.
//! Every error names the key at fault.

use std::collections::HashSet;

use url::Url;

use super::{
    Config, ConfigError, MAX_RETENTION_SECS, MAX_TOKEN_LIFETIME_SECS, MIN_ADMIN_TOKEN_CHARS,
};
use crate::domain::scopes::validate_scope;

impl Config {
    /// Checks what serde cannot: ranges, URLs, scopes and clashes between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.into(),
        };
        if !self.database_url.starts_with("sqlite:") && !crate::db::is_postgres(&self.database_url)
        {
            return Err(invalid(
                "database_url",
                "must start with `sqlite:` (a file) or `postgres://` (a PostgreSQL server)",
            ));
        }
        self.validate_durations()?;
        if self.oauth.client_id.trim().is_empty() {
            return Err(invalid("oauth.client_id", "must be set"));
        }
        http_url("oauth.auth_url", &self.oauth.auth_url)?;
        http_url("oauth.token_url", &self.oauth.token_url)?;
        if !self.oauth.usage_url.is_empty() {
            http_url("oauth.usage_url", &self.oauth.usage_url)?;
        }
        for scope in &self.oauth.long_lived_scopes {
            crate::domain::scopes::validate_scope(scope)
                .map_err(|m| invalid("oauth.long_lived_scopes", &m))?;
        }
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
        if super::paths::is_reserved_path(path) {
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
        let agent = &self.oauth.user_agent;
        if agent.trim().is_empty() || http::HeaderValue::from_str(agent).is_err() {
            return Err(invalid(
                "oauth.user_agent",
                "must be a non-empty header value (visible ASCII and spaces)",
            ));
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
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if self.limits.max_connections_per_ip > self.limits.max_connections {
            return Err(invalid(
                "limits.max_connections_per_ip",
                "must not exceed limits.max_connections (0 turns it off)",
            ));
        }
        if self.limits.max_waiters_per_request == 0 {
            return Err(invalid(
                "limits.max_waiters_per_request",
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
        let bind = self.oauth.callback_bind_addr.trim();
        if !bind.is_empty() && bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "oauth.callback_bind_addr",
                "must be an address and port, such as 127.0.0.1:54545, or empty",
            ));
        }
        self.oauth
            .proxy
            .check()
            .map_err(|m| invalid("oauth.proxy", &m))?;
        for account in &self.accounts {
            if !super::ACCOUNT_KINDS.contains(&account.kind.as_str()) {
                return Err(invalid(
                    "accounts.kind",
                    &format!(
                        "of account {} is {:?}; it must be one of {}",
                        account.id,
                        account.kind,
                        super::ACCOUNT_KINDS.join(", ")
                    ),
                ));
            }
            if let Some(url) = &account.auth_url {
                http_url("accounts.auth_url", url)?;
            }
            if crate::domain::text::has_hidden_chars(&account.label) {
                return Err(invalid(
                    "accounts.label",
                    &format!(
                        "of account {} must not contain control or format characters (such as bidi overrides)",
                        account.id
                    ),
                ));
            }
            account.proxy.check().map_err(|m| {
                invalid("accounts.proxy", &format!("of account {}: {m}", account.id))
            })?;
            if let Some(email) = &account.email {
                if !email.contains('@') || email.trim() != email {
                    return Err(invalid(
                        "accounts.email",
                        &format!("of account {} must be an email address", account.id),
                    ));
                }
            }
        }
        if self.limits.request_timeout_secs <= self.requests.max_wait_secs {
            return Err(invalid(
                "limits.request_timeout_secs",
                "must exceed requests.max_wait_secs, or the timeout would cut a legitimate long poll",
            ));
        }
        if !self.admin.public_url.is_empty() {
            http_url("admin.public_url", &self.admin.public_url)?;
        }
        for hook in &self.notify.webhooks {
            use secrecy::ExposeSecret;
            // The URL is a secret: the message says what is wrong, never what it is.
            let url = Url::parse(hook.url.expose_secret()).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
                return Err(invalid("notify.webhooks.url", "must be an http(s) URL"));
            }
            for event in &hook.events {
                if !crate::domain::event::EventType::is_configurable(event) {
                    return Err(invalid(
                        "notify.webhooks.events",
                        &format!(
                            "has {event:?}; the events are {}",
                            crate::domain::event::EventType::CONFIGURABLE.join(", ")
                        ),
                    ));
                }
            }
        }
        for block in &self.limits.trusted_proxies {
            block
                .parse::<crate::domain::peer::Cidr>()
                .map_err(|m| invalid("limits.trusted_proxies", &m))?;
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
        let ranges: [(&'static str, u64, u64, u64); 20] = [
            (
                "storage.fallback_poll_secs",
                self.storage.fallback_poll_secs,
                1,
                3600,
            ),
            (
                "policy.unhealthy_cooldown_secs",
                self.policy.unhealthy_cooldown_secs,
                0,
                7 * DAY,
            ),
            ("requests.max_wait_secs", self.requests.max_wait_secs, 0, 60),
            ("notify.timeout_secs", self.notify.timeout_secs, 1, 60),
            (
                "notify.max_attempts",
                u64::from(self.notify.max_attempts),
                1,
                100,
            ),
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
            (
                "oauth.refresh_token_lifetime_secs",
                self.oauth.refresh_token_lifetime_secs,
                0,
                MAX_RETENTION_SECS,
            ),
            (
                "limits.idle_timeout_secs",
                self.limits.idle_timeout_secs,
                1,
                3600,
            ),
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
                1,
                3600,
            ),
            (
                "requests.max_token_lifetime_secs",
                self.requests.max_token_lifetime_secs,
                0,
                MAX_TOKEN_LIFETIME_SECS,
            ),
            ("oauth.usage_poll_secs", self.oauth.usage_poll_secs, 1, DAY),
            (
                "notify.relogin_warning_secs",
                self.notify.relogin_warning_secs,
                0,
                90 * DAY,
            ),
            (
                "limits.shutdown_grace_secs",
                self.limits.shutdown_grace_secs,
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
        for (key, value) in [
            ("policy.max_utilization", self.policy.max_utilization),
            (
                "notify.quota_warning_percent",
                self.notify.quota_warning_percent,
            ),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("must be a percentage above 0 and at most 100, not {value}"),
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
}

pub(super) fn http_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
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
