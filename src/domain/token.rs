//! The tokens a successful exchange yields.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

/// What the provider gave for one approved request. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct TokenBundle {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    /// The granted scopes, space-separated; the requested ones when the provider said none.
    pub scope: String,
    /// When the access token stops working, from the provider's `expires_in`.
    pub expires_at: Option<DateTime<Utc>>,
    pub obtained_at: DateTime<Utc>,
    /// When the refresh token stops working for good, whatever refreshes happen: from the
    /// provider's `refresh_token_expires_in` at the exchange, else from
    /// `oauth.refresh_token_lifetime_secs`; `None` when unknown.
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// Whose tokens these are, when the provider said.
    pub identity: Identity,
}

/// The provider's account and organization behind a bundle, when its token response names
/// them (Anthropic's does). Not secrets, but kept out of the logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub account_uuid: Option<String>,
    pub account_email: Option<String>,
    pub organization_uuid: Option<String>,
    pub organization_name: Option<String>,
}
