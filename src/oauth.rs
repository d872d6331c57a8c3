//! The provider side of the flow, through the official `oauth2` crate: authorize URLs with
//! PKCE and a fresh state, and the code exchange.
//!
//! Token requests go through [`OAuthClient::send`] rather than `oauth2`'s stock reqwest
//! client, for three reasons: it uses the router's one shared client (redirects off, per
//! the crate's SSRF warning), it can re-encode the form as JSON for providers that want
//! `token_request_format = "json"`, and it turns a 5xx into a transport failure so that a
//! provider outage is never mistaken for a refusal.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::http::{header, HeaderValue};
use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{OAuthConfig, TokenRequestFormat};
use crate::domain::{secret, time, Scopes, TokenBundle};
use crate::metrics::{Metrics, Outcome, Upstream};

/// The largest token endpoint answer read; real ones are a few KiB.
const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

pub struct OAuthClient {
    client: ConfiguredClient,
    /// For RFC 7009 revocation, which the `oauth2` crate refuses over plain http; see
    /// [`OAuthClient::revoke`].
    revocation: Option<Revocation>,
    transport: Transport,
    extra_params: Vec<(String, String)>,
    metrics: Arc<Metrics>,
}

/// How token endpoint requests travel: `oauth2` builds them, this sends them.
struct Transport {
    http: reqwest::Client,
    format: TokenRequestFormat,
    timeout: Duration,
}

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
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
    #[error("the provider refused: {0}")]
    Rejected(String),
    /// No usable answer: connection error, timeout or 5xx.
    #[error("{0}")]
    Unavailable(String),
    /// An answer that is not a token response.
    #[error("the provider's answer was not a token response: {0}")]
    Invalid(String),
}

/// Where and how to revoke. RFC 7009 asks clients to insist on https, and `oauth2` enforces
/// that; the router builds the (small) request itself instead, so that it can revoke at a
/// loopback provider in tests and development, as it exchanges codes there. The client
/// authentication is the one `oauth2` uses at the token endpoint: HTTP Basic with the
/// URL-encoded id and secret when there is a secret, else `client_id` in the body. The
/// request then goes through the same [`Transport`], so `token_request_format` applies.
struct Revocation {
    url: Url,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl Revocation {
    fn request(&self, hint: &str, token: &SecretString) -> HttpRequest {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.expose_secret())
            .append_pair("token_type_hint", hint);
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.url.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match &self.client_secret {
            Some(secret) => {
                use base64::Engine;
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let credentials = format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(secret.expose_secret())
                );
                let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
                request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
            }
            None => {
                form.append_pair("client_id", &self.client_id);
            }
        }
        request
            .body(form.finish().into_bytes())
            .expect("a request built from a parsed URL and text headers is valid")
    }
}

/// RFC 7009 §2.2: 200 means revoked (or unknown, which is as good); anything else carries
/// an OAuth error, or at least a status.
fn revocation_outcome(response: HttpResponse) -> Result<(), ExchangeError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let error = serde_json::from_slice::<serde_json::Value>(response.body())
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("answered {status}"));
    Err(ExchangeError::Rejected(error))
}

/// The outcome of [`OAuthClient::revoke`].
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Every token was revoked.
    pub ok: bool,
    /// What happened, for the audit trail.
    pub detail: String,
}

/// A failure of the HTTP exchange itself, as `oauth2` sees it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

impl OAuthClient {
    pub fn new(
        cfg: &OAuthConfig,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut client = BasicClient::new(ClientId::new(cfg.client_id.clone()))
            .set_auth_uri(AuthUrl::new(cfg.auth_url.clone())?)
            .set_token_uri(TokenUrl::new(cfg.token_url.clone())?)
            .set_redirect_uri(RedirectUrl::new(cfg.redirect_uri.clone())?);
        let revocation = Some(cfg.revocation_url.as_str())
            .filter(|u| !u.is_empty())
            .map(|u| -> anyhow::Result<Revocation> {
                Ok(Revocation {
                    url: Url::parse(u)?,
                    client_id: cfg.client_id.clone(),
                    client_secret: Some(cfg.client_secret.clone())
                        .filter(|s| !s.expose_secret().is_empty()),
                })
            })
            .transpose()?;
        let client_secret = cfg.client_secret.expose_secret();
        if !client_secret.is_empty() {
            client = client.set_client_secret(ClientSecret::new(client_secret.to_owned()));
        }
        Ok(Self {
            client,
            revocation,
            transport: Transport {
                http,
                format: cfg.token_request_format,
                timeout: Duration::from_secs(cfg.timeout_secs),
            },
            extra_params: cfg.extra_auth_params.clone().into_iter().collect(),
            metrics,
        })
    }

    /// A fresh authorize URL: `response_type=code`, a new 256-bit state, an S256 challenge.
    pub fn start_login(&self, scopes: &Scopes) -> LoginStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
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

    /// Exchanges an authorization code (with its PKCE verifier and the same redirect_uri).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        requested: &Scopes,
    ) -> Result<TokenBundle, ExchangeError> {
        let started = Instant::now();
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(
                pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.transport)
            .await
            .map_err(classify);
        self.record(&response, started);
        Ok(bundle(&response?, requested, time::now()))
    }

    /// Uses the refresh-token grant, with the same client authentication and request format
    /// as the code exchange. `scope` is what the current tokens were granted, kept when the
    /// provider's answer names none.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        scope: &str,
    ) -> Result<TokenBundle, ExchangeError> {
        let refresh_token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let started = Instant::now();
        let response = self
            .client
            .exchange_refresh_token(&refresh_token)
            .request_async(&self.transport)
            .await
            .map_err(classify);
        self.record(&response, started);
        Ok(bundle(&response?, &Scopes::from_db(scope), time::now()))
    }

    /// Withdraws a bundle's tokens at the provider (RFC 7009), the refresh token first as the
    /// RFC advises. `None` when no `oauth.revocation_url` is configured; otherwise what
    /// happened, in words fit for the audit trail (never a token).
    pub async fn revoke(&self, bundle: &TokenBundle) -> Option<Revoked> {
        let revocation = self.revocation.as_ref()?;
        let mut tokens = Vec::new();
        if let Some(refresh) = &bundle.refresh_token {
            tokens.push(("refresh_token", refresh));
        }
        tokens.push(("access_token", &bundle.access_token));
        let mut failures = Vec::new();
        for (hint, token) in tokens {
            let started = Instant::now();
            let result = self
                .transport
                .send(revocation.request(hint, token))
                .await
                .map_err(|e| ExchangeError::Unavailable(e.0))
                .and_then(revocation_outcome);
            self.record_at(Upstream::RevocationEndpoint, &result, started);
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

    fn record<T>(&self, result: &Result<T, ExchangeError>, started: Instant) {
        self.record_at(Upstream::TokenEndpoint, result, started);
    }

    fn record_at<T>(&self, target: Upstream, result: &Result<T, ExchangeError>, started: Instant) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(ExchangeError::Rejected(_)) => Outcome::Rejected,
            Err(_) => Outcome::Failed,
        };
        self.metrics.upstream(target, outcome, started.elapsed());
    }
}

impl Transport {
    /// Sends one token endpoint request through the shared client.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        let body = match self.format {
            TokenRequestFormat::Form => body,
            TokenRequestFormat::Json => {
                let fields: serde_json::Map<String, serde_json::Value> =
                    url::form_urlencoded::parse(&body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
                        .collect();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(&fields).map_err(|e| TransportError(e.to_string()))?
            }
        };
        let mut response = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| TransportError(describe_reqwest(e, "the token endpoint")))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(TransportError(format!(
                "the token endpoint answered {status}"
            )));
        }
        let mut builder = http::Response::builder().status(status);
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError(describe_reqwest(e, "the token endpoint")))?
        {
            if bytes.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return Err(TransportError(
                    "the token endpoint's answer is too large".into(),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        builder
            .body(bytes)
            .map_err(|e| TransportError(e.to_string()))
    }
}

/// Describes a reqwest failure without its URL, which may carry a state or a code.
pub fn describe_reqwest(e: reqwest::Error, what: &str) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    format!("the request to {what} {kind}: {}", e.without_url())
}

fn classify(e: RequestTokenError<TransportError, BasicErrorResponse>) -> ExchangeError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r
                .error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            ExchangeError::Rejected(format!("{}{description}", r.error()))
        }
        RequestTokenError::Request(t) => ExchangeError::Unavailable(t.0),
        // The parse error's body may hold tokens; only say where it went wrong.
        RequestTokenError::Parse(p, _) => ExchangeError::Invalid(format!("at `{}`", p.path())),
        RequestTokenError::Other(s) => ExchangeError::Invalid(s),
    }
}

fn bundle(response: &BasicTokenResponse, requested: &Scopes, now: DateTime<Utc>) -> TokenBundle {
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
    TokenBundle {
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        token_type: response.token_type().as_ref().to_owned(),
        scope,
        expires_at,
        obtained_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        let cfg = OAuthConfig {
            client_id: "c".into(),
            auth_url: "https://provider.example/authorize".into(),
            token_url: "https://provider.example/token".into(),
            ..OAuthConfig::default()
        };
        OAuthClient::new(&cfg, reqwest::Client::new(), Arc::default()).unwrap()
    }

    #[test]
    fn a_login_starts_debug_output_shows_neither_the_state_nor_the_verifier() {
        let login = client().start_login(&Scopes::default());
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
}
