//! The provider side of the flow, through the official `oauth2` crate: authorize URLs with
//! PKCE and a fresh state, the code exchange, refresh and revocation.
//!
//! - [`transport`]: how token endpoint requests travel (the account's proxy, JSON bodies,
//!   which answers are temporary).
//! - [`response`]: what is kept from a token response, the provider's account included.
//! - [`revocation`]: RFC 7009.

mod response;
mod revocation;
mod transport;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{Config, TokenRequestFormat};
use crate::domain::{secret, time, Scopes, TokenBundle};
use crate::egress::Egress;
use crate::metrics::{Metrics, Outcome, Upstream};
use response::ProviderTokenResponse;
use revocation::Revocation;
pub use revocation::Revoked;
pub use transport::describe_reqwest;
use transport::{Transport, TransportError};
pub use usage::UsageError;

type ConfiguredClient = Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The OAuth errors that mean a refresh token is dead for good, so the bundle is marked
/// rejected. Anything else (a rate limit, an outage, a misconfigured client) leaves it
/// usable: a passing failure must never permanently kill a login.
pub const DEAD_REFRESH_TOKEN: &[&str] = &["invalid_grant", "invalid_scope", "unauthorized_client"];

pub struct OAuthClient {
    client: ConfiguredClient,
    /// The accounts that authorize elsewhere than `oauth.auth_url` (`[[accounts]] auth_url`
    /// or `kind`), each with the client for its own authorize URL.
    authorize_for: HashMap<u32, ConfiguredClient>,
    revocation: Option<Revocation>,
    egress: Egress,
    format: TokenRequestFormat,
    timeout: Duration,
    extra_params: Vec<(String, String)>,
    state_in_token_request: bool,
    /// `oauth.user_agent`, on every call to the provider.
    user_agent: oauth2::http::HeaderValue,
    /// `oauth.refresh_token_lifetime_secs`: a refresh token's life when the provider does not
    /// say (0: unknown).
    refresh_lifetime: u64,
    /// `oauth.usage_url`, when usage is read.
    usage_url: Option<Url>,
    metrics: Arc<Metrics>,
}

/// A login about to be opened: the URL for the control browser, and the two secrets the
/// callback will need. `Debug` shows neither secret, nor the URL's query, which carries the
/// state.
pub struct LoginStart {
    pub url: Url,
    pub state: SecretString,
    pub pkce_verifier: SecretString,
}

impl std::fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut url = self.url.clone();
        url.set_query(Some("[redacted]"));
        f.debug_struct("LoginStart")
            .field("url", &url.as_str())
            .field("state", &self.state)
            .field("pkce_verifier", &self.pkce_verifier)
            .finish()
    }
}

/// Why a token request failed. The texts are safe to store and show: they never carry the
/// response body, a URL with a query, or a secret.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The provider answered with an OAuth error (`invalid_grant` and the like).
    #[error("the provider refused: {text}")]
    Rejected { code: String, text: String },
    /// No usable answer for now: connection error, timeout, 5xx, 429 or 408.
    #[error("{0}")]
    Unavailable(String),
    /// An answer that is not a token response.
    #[error("the provider's answer was not a token response: {0}")]
    Invalid(String),
}

impl ExchangeError {
    /// Whether the provider said the refresh token itself is dead.
    pub fn kills_refresh_token(&self) -> bool {
        matches!(self, ExchangeError::Rejected { code, .. } if DEAD_REFRESH_TOKEN.contains(&code.as_str()))
    }

    /// Whether trying again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, ExchangeError::Unavailable(_))
    }
}

impl OAuthClient {
    /// The client for `config`'s provider, and each account's own authorize URL.
    pub fn new(config: &Config, egress: Egress, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let cfg = &config.oauth;
        let mut client = Client::new(ClientId::new(cfg.client_id.clone()))
            .set_auth_uri(AuthUrl::new(cfg.auth_url.clone())?)
            .set_token_uri(TokenUrl::new(cfg.token_url.clone())?)
            .set_redirect_uri(RedirectUrl::new(cfg.redirect_uri.clone())?);
        let client_secret =
            Some(cfg.client_secret.clone()).filter(|s| !s.expose_secret().is_empty());
        if let Some(secret) = &client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        let revocation = Some(cfg.revocation_url.as_str())
            .filter(|u| !u.is_empty())
            .map(|u| -> anyhow::Result<Revocation> {
                Ok(Revocation {
                    url: Url::parse(u)?,
                    client_id: cfg.client_id.clone(),
                    client_secret: client_secret.clone(),
                })
            })
            .transpose()?;
        let mut authorize_for = HashMap::new();
        for account in &config.accounts {
            let url = config.auth_url_of(account);
            if url != cfg.auth_url {
                let own = client.clone().set_auth_uri(AuthUrl::new(url.to_owned())?);
                authorize_for.insert(account.id, own);
            }
        }
        Ok(Self {
            client,
            authorize_for,
            revocation,
            egress,
            format: cfg.token_request_format,
            timeout: Duration::from_secs(cfg.timeout_secs),
            extra_params: cfg.extra_auth_params.clone().into_iter().collect(),
            state_in_token_request: cfg.state_in_token_request,
            user_agent: oauth2::http::HeaderValue::from_str(&cfg.user_agent)
                .map_err(|_| anyhow::anyhow!("oauth.user_agent is not a header value"))?,
            refresh_lifetime: cfg.refresh_token_lifetime_secs,
            usage_url: Some(cfg.usage_url.as_str())
                .filter(|u| !u.is_empty())
                .map(Url::parse)
                .transpose()?,
            metrics,
        })
    }

    /// How a token endpoint call for `account` travels: through its proxy, if any.
    fn transport(&self, account: Option<u32>) -> Transport {
        Transport {
            http: self.egress.for_account(account).clone(),
            format: self.format,
            timeout: self.timeout,
            user_agent: self.user_agent.clone(),
        }
    }

    /// A fresh authorize URL: `response_type=code`, a new 256-bit state, an S256 challenge.
    pub fn start_login(&self, scopes: &Scopes, account: u32) -> LoginStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.authorize_for.get(&account).unwrap_or(&self.client);
        let mut request = client
            .authorize_url(|| CsrfToken::new(secret::generate().expose_secret().to_owned()))
            .add_scopes(scopes.as_slice().iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge);
        for (name, value) in &self.extra_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, state) = request.url();
        LoginStart {
            url,
            state: SecretString::from(state.into_secret()),
            pkce_verifier: SecretString::from(verifier.into_secret()),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier and the same redirect_uri),
    /// for `account`. `state` is the state of the login being exchanged, sent along when
    /// `oauth.state_in_token_request` is on. `lifetime_secs` asks for a long-lived token
    /// (`expires_in`, as `claude setup-token` sends it).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        state: Option<&str>,
        requested: &Scopes,
        lifetime_secs: Option<u64>,
        account: Option<u32>,
    ) -> Result<TokenBundle, ExchangeError> {
        let started = Instant::now();
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                pkce_verifier.expose_secret().to_owned(),
            ));
        if self.state_in_token_request {
            if let Some(state) = state {
                request = request.add_extra_param("state", state.to_owned());
            }
        }
        if let Some(secs) = lifetime_secs {
            request = request.add_extra_param(transport::EXPIRES_IN, secs.to_string());
        }
        let response = request
            .request_async(&self.transport(account))
            .await
            .map_err(classify);
        self.record(Upstream::TokenEndpoint, &response, started);
        Ok(response::bundle(
            &response?,
            requested,
            time::now(),
            self.refresh_lifetime,
        ))
    }

    /// Uses the refresh-token grant, with the same client authentication, request format and
    /// proxy as the code exchange of `account`. `scope` is what the current tokens were
    /// granted, kept when the provider's answer names none.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        scope: &str,
        account: Option<u32>,
    ) -> Result<TokenBundle, ExchangeError> {
        let refresh_token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let started = Instant::now();
        let response = self
            .client
            .exchange_refresh_token(&refresh_token)
            .request_async(&self.transport(account))
            .await
            .map_err(classify);
        self.record(Upstream::TokenEndpoint, &response, started);
        // A refresh never moves the refresh token's deadline (the store keeps the login's),
        // so whatever this answer says of it is not read.
        Ok(response::bundle(
            &response?,
            &Scopes::from_db(scope),
            time::now(),
            0,
        ))
    }

    /// Withdraws a bundle's tokens at the provider (RFC 7009), the refresh token first as the
    /// RFC advises, through `account`'s proxy. `None` when no `oauth.revocation_url` is
    /// configured; otherwise what happened, in words fit for the audit trail.
    pub async fn revoke(&self, bundle: &TokenBundle, account: Option<u32>) -> Option<Revoked> {
        let revocation = self.revocation.as_ref()?;
        let transport = self.transport(account);
        let mut tokens = Vec::new();
        if let Some(refresh) = &bundle.refresh_token {
            tokens.push(("refresh_token", refresh));
        }
        tokens.push(("access_token", &bundle.access_token));
        let mut failures = Vec::new();
        for (hint, token) in tokens {
            let started = Instant::now();
            let result = transport
                .send(revocation.request(hint, token))
                .await
                .map_err(|e| ExchangeError::Unavailable(e.0))
                .and_then(revocation::outcome);
            self.record(Upstream::RevocationEndpoint, &result, started);
            if let Err(e) = result {
                failures.push(format!("{hint}: {e}"));
            }
        }
        Some(if failures.is_empty() {
            Revoked {
                ok: true,
                detail: "the provider revoked the refresh and access tokens".into(),
            }
        } else {
            Revoked {
                ok: false,
                detail: format!("the provider did not revoke: {}", failures.join("; ")),
            }
        })
    }

    fn record<T>(&self, target: Upstream, result: &Result<T, ExchangeError>, started: Instant) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(ExchangeError::Rejected { .. }) => Outcome::Rejected,
            Err(_) => Outcome::Failed,
        };
        self.metrics.upstream(target, outcome, started.elapsed());
    }
}

fn classify(e: RequestTokenError<TransportError, BasicErrorResponse>) -> ExchangeError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = r.error().to_string();
            let description = r
                .error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            ExchangeError::Rejected {
                text: format!("{code}{description}"),
                code,
            }
        }
        RequestTokenError::Request(t) => ExchangeError::Unavailable(t.0),
        // The parse error's body may hold tokens; only say where it went wrong.
        RequestTokenError::Parse(p, _) => ExchangeError::Invalid(format!("at `{}`", p.path())),
        RequestTokenError::Other(s) => ExchangeError::Invalid(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        let mut config = Config::default();
        config.oauth.client_id = "c".into();
        config.oauth.auth_url = "https://provider.example/authorize".into();
        config.oauth.token_url = "https://provider.example/token".into();
        config.accounts = vec![
            crate::config::Account {
                id: 1,
                ..Default::default()
            },
            crate::config::Account {
                id: 2,
                auth_url: Some("https://provider.example/other/authorize".into()),
                ..Default::default()
            },
        ];
        let egress = Egress::new(&config).unwrap();
        OAuthClient::new(&config, egress, Arc::default()).unwrap()
    }

    #[test]
    fn an_account_with_its_own_authorize_url_logs_in_there_and_the_others_at_the_shared_one() {
        let client = client();
        let shared = client.start_login(&Scopes::default(), 1);
        let own = client.start_login(&Scopes::default(), 2);

        assert!(shared
            .url
            .as_str()
            .starts_with("https://provider.example/authorize?"));
        assert!(own
            .url
            .as_str()
            .starts_with("https://provider.example/other/authorize?"));
        assert!(
            own.url.as_str().contains("code_challenge="),
            "PKCE there too"
        );
    }

    #[test]
    fn a_login_starts_debug_output_shows_neither_the_state_nor_the_verifier() {
        let login = client().start_login(&Scopes::default(), 1);
        let debug = format!("{login:?}");
        assert!(login.url.as_str().contains(login.state.expose_secret()));
        assert!(!debug.contains(login.state.expose_secret()), "{debug}");
        assert!(
            !debug.contains(login.pkce_verifier.expose_secret()),
            "{debug}"
        );
        assert!(
            debug.contains("https://provider.example/authorize"),
            "{debug}"
        );
    }

    #[test]
    fn only_a_dead_grant_kills_a_refresh_token() {
        let rejected = |code: &str| ExchangeError::Rejected {
            code: code.into(),
            text: code.into(),
        };
        for dead in ["invalid_grant", "invalid_scope", "unauthorized_client"] {
            assert!(rejected(dead).kills_refresh_token(), "{dead}");
        }
        for alive in ["invalid_request", "invalid_client", "server_error"] {
            assert!(!rejected(alive).kills_refresh_token(), "{alive}");
        }
        let rate_limited = ExchangeError::Unavailable("429".into());
        assert!(!rate_limited.kills_refresh_token() && rate_limited.is_transient());
    }
}
