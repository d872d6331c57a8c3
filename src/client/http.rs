//! One method per router endpoint the client uses.

use std::time::Duration;

use reqwest::{header, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use url::Url;
use uuid::Uuid;

use super::{ClientError, Created, StatusReply, Token, TokenOptions};

/// Every call to the router gives up after this long; polls are quick by design.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one router.
#[derive(Clone)]
pub struct RouterClient {
    base: Url,
    http: reqwest::Client,
}

/// The outcome of one status poll.
#[derive(Debug)]
pub enum Poll {
    Status(Box<StatusReply>),
    /// 429: poll less often, and not before `retry_after` when the router said.
    SlowDown {
        retry_after: Option<Duration>,
    },
    /// 400 to a long poll: a router from before `?wait=`; poll at the interval instead.
    WaitUnsupported,
}

/// How much longer than the asked wait a long poll may take before the client gives up on
/// the answer: the router answers at the wait's end, so only the network adds to it.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

impl RouterClient {
    pub fn new(router: &str) -> Result<Self, ClientError> {
        let base = Url::parse(router)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "--router {router:?} is not an http(s) URL, such as http://127.0.0.1:7777"
                ))
            })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "claude-auth-router-cli/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        Ok(Self { base, http })
    }

    /// The router's base URL, as given.
    pub fn router(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// Creates a request; with `client_key`, as that enrolled client.
    pub async fn create(&self, options: &TokenOptions) -> Result<Created, ClientError> {
        use secrecy::ExposeSecret;
        let mut body = json!({
            "client_name": options.client_name,
            "hostname": options.hostname,
            "scopes": options.scopes,
        });
        if let Some(secs) = options.lifetime_secs {
            body["lifetime_secs"] = secs.into();
        }
        let mut request = self.http.post(self.url("/v1/token-requests")).json(&body);
        if let Some(key) = &options.client_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = self.send(request).await?;
        parse(response, StatusCode::CREATED).await
    }

    /// Polls the request's status; with `wait`, a long poll that the router holds up to that
    /// many seconds for a change.
    pub async fn status(
        &self,
        id: Uuid,
        poll_token: &str,
        wait: Option<u64>,
    ) -> Result<Poll, ClientError> {
        let mut url = self.url(&format!("/v1/token-requests/{id}/status"));
        let mut request = self.http.get(url.clone()).bearer_auth(poll_token);
        if let Some(wait) = wait {
            url.query_pairs_mut().append_pair("wait", &wait.to_string());
            request = self
                .http
                .get(url)
                .bearer_auth(poll_token)
                .timeout(Duration::from_secs(wait) + LONG_POLL_MARGIN);
        }
        let response = self.send(request).await?;
        if wait.is_some() && response.status() == StatusCode::BAD_REQUEST {
            return Ok(Poll::WaitUnsupported);
        }
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Ok(Poll::SlowDown { retry_after });
        }
        parse(response, StatusCode::OK)
            .await
            .map(|s| Poll::Status(Box::new(s)))
    }

    pub async fn refresh(&self, id: Uuid, poll_token: &str) -> Result<Token, ClientError> {
        let url = self.url(&format!("/v1/token-requests/{id}/refresh"));
        let response = self
            .send(self.http.post(url).bearer_auth(poll_token))
            .await?;
        parse(response, StatusCode::OK).await
    }

    pub async fn cancel(&self, id: Uuid, poll_token: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("/v1/token-requests/{id}/cancel"));
        let response = self
            .send(self.http.post(url).bearer_auth(poll_token))
            .await?;
        parse::<Value>(response, StatusCode::OK).await.map(|_| ())
    }

    /// `GET path` with the admin token; the answer's JSON.
    pub async fn admin_get(
        &self,
        path_and_query: &str,
        admin_token: &str,
    ) -> Result<Value, ClientError> {
        let url = self.url_with_query(path_and_query);
        let response = self
            .send(self.http.get(url).bearer_auth(admin_token))
            .await?;
        parse(response, StatusCode::OK).await
    }

    /// `POST path` with the admin token and a JSON body; the answer's JSON.
    pub async fn admin_post(
        &self,
        path: &str,
        admin_token: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.admin_send(reqwest::Method::POST, path, admin_token, body)
            .await
    }

    /// Any method with the admin token and a JSON body; the answer's JSON on a 200 or 201.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        admin_token: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(admin_token)
            .json(body);
        let response = self.send(request).await?;
        let expected = match response.status() {
            StatusCode::CREATED => StatusCode::CREATED,
            _ => StatusCode::OK,
        };
        parse(response, expected).await
    }

    fn url_with_query(&self, path_and_query: &str) -> Url {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut url = self.url(path);
        url.set_query(Some(query).filter(|q| !q.is_empty()));
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, ClientError> {
        request.send().await.map_err(|e| ClientError::Unreachable {
            router: self.router().to_owned(),
            detail: if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "connection refused or no route".to_owned()
            } else {
                e.without_url().to_string()
            },
        })
    }
}

/// The body as `T` when the status is `expected`, else the router's error.
async fn parse<T: DeserializeOwned>(
    response: Response,
    expected: StatusCode,
) -> Result<T, ClientError> {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    if status == expected {
        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Router {
            status: status.as_u16(),
            code: "unexpected_body".into(),
            message: format!("the answer was not what this client expects ({e}); is --router a claude-auth-router?"),
        });
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    Err(ClientError::Router {
        status: status.as_u16(),
        code: text("error").unwrap_or_else(|| "unexpected_status".into()),
        message: text("message").unwrap_or_else(|| "no details".into()),
    })
}
