//! What the router keeps from a token response: the tokens, and, when the provider names
//! them (Anthropic does), the account and organization they belong to.

use chrono::{DateTime, Utc};
use oauth2::basic::BasicTokenType;
use oauth2::{ExtraTokenFields, StandardTokenResponse, TokenResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Identity, Scopes, TokenBundle};

/// The fields beyond RFC 6749 that the router reads. They are kept as raw JSON and read
/// leniently, so a generic provider that sends something else under these names still
/// yields its tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<Value>,
    /// Seconds until the refresh token dies for good (Anthropic sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<Value>,
}

impl ExtraTokenFields for ProviderFields {}

pub type ProviderTokenResponse = StandardTokenResponse<ProviderFields, BasicTokenType>;

/// The largest identity field kept: they are the provider's text, shown to operators.
const MAX_FIELD: usize = 256;

impl ProviderFields {
    fn identity(&self) -> Identity {
        let text = |object: &Option<Value>, key: &str| {
            object
                .as_ref()
                .and_then(|o| o.get(key))
                .and_then(Value::as_str)
                .map(|s| {
                    s.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_FIELD)
                        .collect()
                })
                .filter(|s: &String| !s.is_empty())
        };
        Identity {
            account_uuid: text(&self.account, "uuid"),
            account_email: text(&self.account, "email_address"),
            organization_uuid: text(&self.organization, "uuid"),
            organization_name: text(&self.organization, "name"),
        }
    }
}

/// The bundle a token response gives. `refresh_lifetime`: how long a refresh token lives
/// when the response does not say (`oauth.refresh_token_lifetime_secs`; 0 = unknown).
pub(super) fn bundle(
    response: &ProviderTokenResponse,
    requested: &Scopes,
    now: DateTime<Utc>,
    refresh_lifetime: u64,
) -> TokenBundle {
    let scope = match response.scopes() {
        Some(granted) => granted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        // RFC 6749 §5.1: no scope in the answer means the requested ones were granted.
        None => requested.to_db(),
    };
    let expires_at = response
        .expires_in()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| now.checked_add_signed(d));
    let after = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
    };
    let told = response
        .extra_fields()
        .refresh_token_expires_in
        .as_ref()
        .and_then(Value::as_u64);
    let refresh_expires_at = match (response.refresh_token(), told) {
        (None, _) => None,
        (Some(_), Some(secs)) => after(secs),
        (Some(_), None) if refresh_lifetime > 0 => after(refresh_lifetime),
        (Some(_), None) => None,
    };
    TokenBundle {
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        token_type: response.token_type().as_ref().to_owned(),
        scope,
        expires_at,
        obtained_at: now,
        refresh_expires_at,
        identity: response.extra_fields().identity(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_and_organization_are_read_when_present_and_ignored_when_odd() {
        let claude: ProviderTokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": 28800,
            "account": {"uuid": "acc-1", "email_address": "Team@Example.com"},
            "organization": {"uuid": "org-1", "name": "Example Inc"},
        }))
        .unwrap();
        let identity = claude.extra_fields().identity();
        assert_eq!(identity.account_email.as_deref(), Some("Team@Example.com"));
        assert_eq!(identity.organization_name.as_deref(), Some("Example Inc"));
        assert_eq!(identity.account_uuid.as_deref(), Some("acc-1"));

        let odd: ProviderTokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "token_type": "bearer", "account": "not an object",
        }))
        .unwrap();
        assert_eq!(odd.extra_fields().identity(), Identity::default());
    }
}
