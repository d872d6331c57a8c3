//! Reading an account's usage windows from the provider's usage endpoint, with one of its
//! access tokens.

use std::time::Instant;

use reqwest::header;
use secrecy::{ExposeSecret, SecretString};

use super::transport::{read_capped, ReadError};
use super::{describe_reqwest, OAuthClient};
use crate::domain::usage::Reading;
use crate::metrics::{Outcome, Upstream};

/// The largest usage answer read; real ones are well under 1 KiB.
const MAX_USAGE_RESPONSE: usize = 64 * 1024;
/// The header Anthropic's usage endpoint wants, as Claude Code sends it.
pub const USAGE_BETA_HEADER: &str = "anthropic-beta";

/// Why a usage reading failed. The texts never carry the token or the answer's body.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// 401: this token is no good; another live token of the account may be.
    #[error("the provider refused the access token (401)")]
    Unauthorized,
    /// A 429 or a 5xx, or no answer: back off and try later.
    #[error("{0}")]
    Unavailable(String),
    /// An answer that is not a usage reading (another status, or a body that does not parse).
    #[error("{0}")]
    Invalid(String),
}

impl OAuthClient {
    /// `GET oauth.usage_url` with `token`, through `account`'s egress proxy. `None` when no
    /// usage URL is configured.
    pub async fn read_usage(
        &self,
        token: &SecretString,
        account: u32,
    ) -> Option<Result<Reading, UsageError>> {
        let url = self.usage_url.as_ref()?;
        let started = Instant::now();
        let result = self.get_usage(url, token, account).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(UsageError::Unauthorized | UsageError::Invalid(_)) => Outcome::Rejected,
            Err(UsageError::Unavailable(_)) => Outcome::Failed,
        };
        self.metrics
            .upstream(Upstream::UsageEndpoint, outcome, started.elapsed());
        Some(result)
    }

    async fn get_usage(
        &self,
        url: &url::Url,
        token: &SecretString,
        account: u32,
    ) -> Result<Reading, UsageError> {
        let response = self
            .egress
            .for_account(Some(account))
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(USAGE_BETA_HEADER, crate::config::claude::USAGE_BETA)
            .header(header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| UsageError::Unavailable(describe_reqwest(e, "the usage endpoint")))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(UsageError::Unauthorized);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(UsageError::Unavailable(format!(
                "the usage endpoint answered {status} (temporary)"
            )));
        }
        if !status.is_success() {
            return Err(UsageError::Invalid(format!(
                "the usage endpoint answered {status}"
            )));
        }
        let body = read_capped(response, MAX_USAGE_RESPONSE, "the usage endpoint")
            .await
            .map_err(|e| match e {
                ReadError::Failed(reason) => UsageError::Unavailable(reason),
                ReadError::TooLarge => UsageError::Invalid("the usage answer is too large".into()),
            })?;
        Reading::parse(&body).map_err(UsageError::Invalid)
    }
}
