//! A token request: what a client may create, and what the router knows of one.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Scopes, Status};

pub const MAX_CLIENT_NAME: usize = 128;
pub const MAX_HOSTNAME: usize = 253;

/// The body of `POST /v1/token-requests`, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Who is asking, as the operator will see it (ignored for an enrolled client, whose
    /// enrolled name is used); 1 to 128 characters, no control or format characters.
    #[schema(min_length = 1, max_length = 128)]
    pub client_name: String,
    /// From which machine; 1 to 253 characters, no control or format characters.
    #[schema(min_length = 1, max_length = 253)]
    pub hostname: String,
    /// At most 32 scopes without whitespace; missing or empty: `oauth.default_scopes`.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub scopes: Option<Vec<String>>,
    /// A long-lived token: how long it should live, in seconds (see
    /// `requests.max_token_lifetime_secs`).
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
}

/// A validated request, ready to store.
#[derive(Debug, Clone)]
pub struct NewTokenRequest {
    pub client_name: String,
    pub hostname: String,
    pub scopes: Scopes,
    /// The lifetime of a long-lived token, when one is asked for.
    pub lifetime_secs: Option<u64>,
}

impl NewTokenRequest {
    /// `default_scopes` when the body names none; every scope within `allowed_scopes` (empty:
    /// any).
    pub fn parse(
        body: CreateBody,
        default_scopes: &[String],
        allowed_scopes: &[String],
    ) -> Result<Self, String> {
        let client_name = text_field("client_name", body.client_name, MAX_CLIENT_NAME)?;
        let hostname = text_field("hostname", body.hostname, MAX_HOSTNAME)?;
        let scopes = Scopes::parse(body.scopes, default_scopes, allowed_scopes)?;
        let lifetime_secs = match body.lifetime_secs {
            Some(0) => return Err("lifetime_secs must be a positive number of seconds".into()),
            other => other,
        };
        Ok(Self {
            client_name,
            hostname,
            scopes,
            lifetime_secs,
        })
    }
}

/// 1..=max characters and no control characters, which would garble logs and admin queries.
fn text_field(name: &str, value: String, max: usize) -> Result<String, String> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(format!("{name} must be 1 to {max} characters"));
    }
    if super::text::has_hidden_chars(&value) {
        return Err(format!(
            "{name} must not contain control or format characters (such as bidi overrides)"
        ));
    }
    Ok(value)
}

/// A stored request, without its secrets.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub id: Uuid,
    /// The enrolled client that made it (verified), or `None` for an unverified request.
    pub client_id: Option<Uuid>,
    pub client_name: String,
    pub hostname: String,
    pub scopes: Scopes,
    pub status: Status,
    pub account_id: Option<u32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The lifetime of the long-lived token it asks for, if it does.
    pub lifetime_secs: Option<u64>,
}

impl TokenRequest {
    /// The status a client should see; see [`Status::at`].
    pub fn effective_status(&self, now: DateTime<Utc>) -> Status {
        self.status.at(self.expires_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn body(client_name: &str, hostname: &str) -> CreateBody {
        CreateBody {
            client_name: client_name.into(),
            hostname: hostname.into(),
            scopes: None,
            lifetime_secs: None,
        }
    }

    #[test]
    fn names_must_be_non_empty_bounded_and_printable() {
        let none: &[String] = &[];
        assert!(NewTokenRequest::parse(body("cli", "laptop"), none, none).is_ok());
        assert!(NewTokenRequest::parse(body("", "laptop"), none, none).is_err());
        assert!(NewTokenRequest::parse(body("cli", &"h".repeat(254)), none, none).is_err());
        assert!(NewTokenRequest::parse(body("cli", &"h".repeat(253)), none, none).is_ok());
        assert!(NewTokenRequest::parse(body("a\nb", "laptop"), none, none).is_err());
    }

    #[test]
    fn an_open_request_past_its_deadline_reads_as_expired() {
        let now = Utc::now();
        let mut r = TokenRequest {
            id: Uuid::new_v4(),
            client_id: None,
            client_name: "c".into(),
            hostname: "h".into(),
            scopes: Scopes::default(),
            status: Status::Pending,
            account_id: None,
            error: None,
            created_at: now,
            updated_at: now,
            expires_at: now + Duration::seconds(1),
            lifetime_secs: None,
        };
        assert_eq!(r.effective_status(now), Status::Pending);
        assert_eq!(
            r.effective_status(now + Duration::seconds(1)),
            Status::Expired
        );
        r.status = Status::Approved;
        assert_eq!(
            r.effective_status(now + Duration::seconds(5)),
            Status::Approved
        );
    }
}
