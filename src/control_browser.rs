//! The client for the control browser: the Electron app that keeps one logged-in browser
//! session per provider account and opens an authorize URL in the one it is told.

use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;
use uuid::Uuid;

use crate::config::ControlBrowserConfig;
use crate::metrics::{Metrics, Outcome, Upstream};
use crate::oauth::describe_reqwest;

pub struct ControlBrowser {
    open_auth: Url,
    http: reqwest::Client,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ControlBrowser {
    pub fn new(
        cfg: &ControlBrowserConfig,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut open_auth = Url::parse(&cfg.base_url)?;
        open_auth
            .path_segments_mut()
            .map_err(|_| anyhow::anyhow!("control_browser.base_url cannot have a path"))?
            .pop_if_empty()
            .push("open-auth");
        Ok(Self {
            open_auth,
            http,
            timeout: Duration::from_secs(cfg.timeout_secs),
            metrics,
        })
    }

    /// Asks the control browser to open `auth_url` in `account_id`'s session
    /// (`GET /open-auth?account_id=&auth_url=&request_id=`; the request id is only for the
    /// control browser's own logs, and an older one ignores it). Any non-2xx answer,
    /// connection error or timeout is a failure; the error text never contains the URL,
    /// which holds the state.
    pub async fn open_auth(
        &self,
        account_id: u32,
        auth_url: &Url,
        request_id: Uuid,
    ) -> Result<(), String> {
        let started = Instant::now();
        let result = self.call(account_id, auth_url, request_id).await;
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        self.metrics
            .upstream(Upstream::ControlBrowser, outcome, started.elapsed());
        result
    }

    async fn call(&self, account_id: u32, auth_url: &Url, request_id: Uuid) -> Result<(), String> {
        let mut url = self.open_auth.clone();
        url.query_pairs_mut()
            .append_pair("account_id", &account_id.to_string())
            .append_pair("auth_url", auth_url.as_str())
            .append_pair("request_id", &request_id.to_string());
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| describe_reqwest(e, "the control browser"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the control browser answered {status}"))
        }
    }
}
