//! Notifications: durable, signed webhooks that tell operators about what needs them.
//!
//! An event is written to the `webhook_deliveries` outbox in the same transaction as the
//! change it reports ([`crate::db::commit`]), one row per subscribed webhook, with its body
//! already rendered. [`sender`] delivers the rows, in order per webhook, with retries, off
//! the request path; [`sign`] makes the `X-Auth-Router-Signature` header.
//!
//! A body never carries a token, a poll token, a state, a code or a verifier: it is built
//! from the request's public fields only.

pub mod sender;
pub mod sign;
pub mod webhook_schema;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{Config, WebhookFormat};
use crate::domain::secret;

pub use crate::domain::event::{EventType, RequestSnapshot};

/// One configured webhook, as the outbox and the sender need it.
#[derive(Debug)]
pub struct Hook {
    /// Its index in `[[notify.webhooks]]`, the name metrics and listings use.
    pub index: u32,
    /// SHA-256 of its URL, stored with each row so a row only ever goes to the URL it was
    /// queued for, even if the configuration is reordered.
    pub key: Vec<u8>,
    pub url: SecretString,
    pub format: WebhookFormat,
    pub secret: Option<SecretString>,
    /// Empty: every event.
    events: Vec<String>,
}

impl Hook {
    fn wants(&self, event: EventType) -> bool {
        event == EventType::Test
            || self.events.is_empty()
            || self.events.iter().any(|e| e == event.as_str())
    }
}

/// The configured webhooks, and the signal that tells the sender there is work.
#[derive(Debug, Default)]
pub struct Outbox {
    pub hooks: Vec<Hook>,
    console_url: Option<String>,
    /// Raised after a commit that queued deliveries.
    pub work: Notify,
}

impl Outbox {
    pub fn from_config(config: &Config) -> Self {
        let hooks = config
            .notify
            .webhooks
            .iter()
            .enumerate()
            .map(|(index, hook)| Hook {
                index: index as u32,
                key: secret::hash(hook.url.expose_secret()),
                url: hook.url.clone(),
                format: hook.format,
                secret: Some(hook.secret.clone()).filter(|s| !s.expose_secret().is_empty()),
                events: hook.events.clone(),
            })
            .collect();
        let console_url = Some(config.admin.public_url.trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(|u| format!("{u}/admin"));
        Self {
            hooks,
            console_url,
            work: Notify::new(),
        }
    }

    /// The webhooks that get `event`.
    pub fn targets(&self, event: EventType) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.wants(event))
    }

    /// Whether any webhook gets `event`, so that nothing is read when none does.
    pub fn wants(&self, event: EventType) -> bool {
        self.targets(event).next().is_some()
    }

    pub fn hook(&self, index: u32) -> Option<&Hook> {
        self.hooks.get(index as usize)
    }

    /// The body `hook` gets for an event: the event's own fields (`detail`) sit beside
    /// `id`, `type`, `at` and `request`.
    pub fn render(
        &self,
        hook: &Hook,
        id: Uuid,
        event: EventType,
        at: DateTime<Utc>,
        request: Option<&RequestSnapshot>,
        detail: Option<&Value>,
    ) -> String {
        match hook.format {
            WebhookFormat::Json => {
                let mut body = json!({
                    "id": id,
                    "type": event.as_str(),
                    "at": at,
                    "request": request,
                    "console_url": self.console_url,
                });
                if let (Some(Value::Object(fields)), Value::Object(out)) = (detail, &mut body) {
                    for (key, value) in fields {
                        out.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
                body.to_string()
            }
            WebhookFormat::Slack => {
                json!({ "text": self.slack_text(event, request, detail) }).to_string()
            }
        }
    }

    fn slack_text(
        &self,
        event: EventType,
        request: Option<&RequestSnapshot>,
        detail: Option<&Value>,
    ) -> String {
        let field = |key: &str| {
            detail
                .and_then(|d| d.get(key))
                .map(|v| match v {
                    Value::String(s) => slack_escape(s),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "?".into())
        };
        let mut text = match (event, request) {
            (EventType::QuotaHigh, _) => format!(
                "claude-auth-router: account {} ({}) has used {}% of its {} window, which resets at {}",
                field("account_id"),
                field("account_label"),
                field("utilization"),
                field("window"),
                field("resets_at"),
            ),
            (EventType::ReloginDue, Some(r)) => format!(
                "claude-auth-router: the tokens of {} on {} (request {}, account {}) stop refreshing at {}: log in again before then",
                slack_escape(&r.client_name),
                slack_escape(&r.hostname),
                r.request_id,
                field("account_id"),
                field("refresh_expires_at"),
            ),
            (EventType::Test, _) | (_, None) => {
                "claude-auth-router: a test notification".to_owned()
            }
            (_, Some(r)) => {
                let scopes = if r.scopes.is_empty() {
                    "the default scopes".to_owned()
                } else {
                    slack_escape(&r.scopes.join(" "))
                };
                let mut line = format!(
                    "claude-auth-router: {} — {} on {} asks for {scopes}; request {} is {}",
                    headline(event),
                    slack_escape(&r.client_name),
                    slack_escape(&r.hostname),
                    r.request_id,
                    r.status
                );
                if let Some(account) = r.account_id {
                    line.push_str(&format!(", account {account}"));
                }
                if let Some(error) = &r.error {
                    line.push_str(&format!(" ({})", slack_escape(error)));
                }
                line
            }
        };
        if let Some(url) = &self.console_url {
            text.push_str(&format!(" — <{url}|open the console>"));
        }
        text
    }
}

/// A value a client chose, as Slack's formatting rules want it: `&`, `<` and `>` escaped, so
/// that `<!channel>` or `<https://x|click>` arrives as text, not as a mention or a link.
fn slack_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn headline(event: EventType) -> &'static str {
    match event {
        EventType::RequestPending => "a token request waits for an operator",
        EventType::RequestApproved => "approved",
        EventType::RequestDenied => "denied",
        EventType::RequestCancelled => "cancelled",
        EventType::RequestExpired => "expired without an answer",
        EventType::RequestError => "failed",
        EventType::RequestRevoked => "revoked",
        EventType::RefreshRejected => {
            "the provider refused a refresh token: log that account in again"
        }
        EventType::ControlBrowserFailed => "the control browser did not open the login",
        EventType::ReloginDue => "the refresh token dies soon: log that account in again",
        EventType::QuotaHigh => "an account's usage window is nearly full",
        EventType::Test => "test",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    #[test]
    fn slack_text_escapes_every_value_a_client_chose() {
        let outbox = Outbox::from_config(&Config::default());
        let request = RequestSnapshot {
            request_id: Uuid::nil(),
            client_name: "<!channel>".into(),
            hostname: "<https://x|click>".into(),
            scopes: vec!["a&b".into()],
            status: Status::Error,
            account_id: None,
            error: Some("<@U123>".into()),
        };

        let text = outbox.slack_text(EventType::RequestError, Some(&request), None);

        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        for escaped in [
            "&lt;!channel&gt;",
            "&lt;https://x|click&gt;",
            "a&amp;b",
            "&lt;@U123&gt;",
        ] {
            assert!(text.contains(escaped), "{escaped} in {text}");
        }
    }
}
