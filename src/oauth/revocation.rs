//! RFC 7009 token revocation.
//!
//! RFC 7009 asks clients to insist on https, and `oauth2` enforces that; the router builds
//! the (small) request itself instead, so that it can revoke at a loopback provider in tests
//! and development, as it exchanges codes there (the configuration still refuses plain http
//! anywhere else). The client authentication is the one `oauth2` uses at the token
//! endpoint: HTTP Basic with the URL-encoded id and secret when there is a secret, else
//! `client_id` in the body. The request then goes through the same [`super::transport`], so
//! `token_request_format` and the account's proxy apply.

use oauth2::http::header;
use oauth2::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::ExchangeError;

pub(super) struct Revocation {
    pub url: Url,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// The outcome of [`super::OAuthClient::revoke`].
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Every token was revoked.
    pub ok: bool,
    /// What happened, for the audit trail (never a token).
    pub detail: String,
}

impl Revocation {
    pub fn request(&self, hint: &str, token: &SecretString) -> HttpRequest {
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

/// RFC 7009 §2.2: 200 means revoked (or unknown, which is as good); anything else carries an
/// OAuth error, or at least a status.
pub(super) fn outcome(response: HttpResponse) -> Result<(), ExchangeError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let code = serde_json::from_slice::<serde_json::Value>(response.body())
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("answered {status}"));
    Err(ExchangeError::Rejected {
        text: code.clone(),
        code,
    })
}
