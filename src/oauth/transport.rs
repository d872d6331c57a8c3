//! How token endpoint requests travel: `oauth2` builds them, [`Transport`] sends them.
//!
//! Token requests go through this rather than `oauth2`'s stock reqwest client, because:
//! - it uses the router's own clients (redirects off, per the crate's SSRF warning), through
//!   the egress proxy of the account the call is for;
//! - it can re-encode the form as JSON for providers that want
//!   `token_request_format = "json"`;
//! - it turns a 5xx, a 429 or a 408 into a transport failure, so that a provider outage or a
//!   rate limit is never mistaken for a refusal of the code or the refresh token.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::http::{header, HeaderValue};
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::config::TokenRequestFormat;

/// The largest token endpoint answer read; real ones are a few KiB.
const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

pub(super) struct Transport {
    pub http: reqwest::Client,
    pub format: TokenRequestFormat,
    pub timeout: Duration,
    /// `oauth.user_agent`, over the client's own.
    pub user_agent: HeaderValue,
}

/// A failure of the HTTP exchange itself (no usable answer), as `oauth2` sees it: always
/// worth retrying later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

impl Transport {
    /// Sends one token endpoint request.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        let body = match self.format {
            TokenRequestFormat::Form => body,
            TokenRequestFormat::Json => {
                let fields: serde_json::Map<String, serde_json::Value> =
                    url::form_urlencoded::parse(&body)
                        .map(|(k, v)| {
                            let value = json_value(&k, v.into_owned());
                            (k.into_owned(), value)
                        })
                        .collect();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(&fields).map_err(|e| TransportError(e.to_string()))?
            }
        };
        let response = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| TransportError(describe_reqwest(e, "the token endpoint")))?;
        let status = response.status();
        if status.is_server_error()
            || status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::REQUEST_TIMEOUT
        {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(|v| format!(", Retry-After: {}", v.chars().take(40).collect::<String>()))
                .unwrap_or_default();
            return Err(TransportError(format!(
                "the token endpoint answered {status}{retry_after} (temporary)"
            )));
        }
        let mut builder = http::Response::builder().status(status);
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let bytes = read_capped(response, MAX_TOKEN_RESPONSE, "the token endpoint")
            .await
            .map_err(|e| match e {
                ReadError::Failed(reason) => TransportError(reason),
                ReadError::TooLarge => {
                    TransportError("the token endpoint's answer is too large".into())
                }
            })?;
        builder
            .body(bytes)
            .map_err(|e| TransportError(e.to_string()))
    }
}

/// Why [`read_capped`] read no body.
pub(super) enum ReadError {
    /// The connection failed, in words without the URL.
    Failed(String),
    /// The body is longer than the cap.
    TooLarge,
}

/// A provider answer's body, read chunk by chunk and refused past `max` bytes, so a provider
/// (or a proxy in its place) cannot make the router buffer without bound. `what` names the
/// endpoint in errors.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Failed(describe_reqwest(e, what)))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The one numeric field of a token request: a long-lived token's lifetime.
pub const EXPIRES_IN: &str = "expires_in";

/// A form field as JSON: a string, except `expires_in`, which Anthropic reads as a number.
fn json_value(name: &str, value: String) -> serde_json::Value {
    match value.parse::<u64>() {
        Ok(n) if name == EXPIRES_IN => n.into(),
        _ => value.into(),
    }
}

/// Describes a reqwest failure without its URL, which may carry a state, a code or a
/// proxy's credentials.
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
