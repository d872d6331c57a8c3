//! Outgoing HTTP: the router's reqwest clients, all built one way (redirects off, a connect
//! timeout, our user agent), and which one a call to the provider goes through.
//!
//! There is one client for everything, plus one per distinct egress proxy: reqwest binds a
//! proxy to a client. Token endpoint calls (code exchange, refresh, revocation) go through
//! the proxy of the account they are for (`[[accounts]] proxy`), else `oauth.proxy`, else
//! directly. Teams pin each account to one egress address, and the provider's edge refuses
//! some datacenter addresses.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, ProxyUrl};

/// How long an outgoing connection may take to open; each call sets its own total timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Egress {
    /// Direct: the control browser, and the provider when no proxy applies.
    direct: reqwest::Client,
    /// Through `oauth.proxy`, when set.
    default_proxy: Option<reqwest::Client>,
    /// Accounts with a proxy of their own.
    accounts: HashMap<u32, reqwest::Client>,
}

impl Egress {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut by_proxy: HashMap<String, reqwest::Client> = HashMap::new();
        let mut through = |key: &'static str, proxy: &ProxyUrl| -> anyhow::Result<_> {
            let Some(url) = proxy.expose() else {
                return Ok(None);
            };
            if let Some(client) = by_proxy.get(url) {
                return Ok(Some(client.clone()));
            }
            // The error names the key, never the URL: it may carry credentials.
            let proxy = reqwest::Proxy::all(url).with_context(|| format!("{key} is not usable"))?;
            let client = client(Some(proxy)).with_context(|| format!("{key} is not usable"))?;
            by_proxy.insert(url.to_owned(), client.clone());
            Ok(Some(client))
        };
        let default_proxy = through("oauth.proxy", &config.oauth.proxy)?;
        let mut accounts = HashMap::new();
        for account in &config.accounts {
            if let Some(client) = through("accounts.proxy", &account.proxy)? {
                accounts.insert(account.id, client);
            }
        }
        Ok(Self {
            direct: client(None).context("building the HTTP client")?,
            default_proxy,
            accounts,
        })
    }

    /// The client for everything that is not a provider call.
    pub fn direct(&self) -> &reqwest::Client {
        &self.direct
    }

    /// The client for a token endpoint call made for `account` (or for no account).
    pub fn for_account(&self, account: Option<u32>) -> &reqwest::Client {
        account
            .and_then(|a| self.accounts.get(&a))
            .or(self.default_proxy.as_ref())
            .unwrap_or(&self.direct)
    }
}

fn client(proxy: Option<reqwest::Proxy>) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        // Following redirects would let a provider or a control browser point the router at
        // any host (the oauth2 crate's SSRF warning).
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(crate::config::ROUTER_USER_AGENT);
    // Only configured proxies apply: HTTP_PROXY, HTTPS_PROXY and ALL_PROXY in the service's
    // environment are ignored, so a variable meant for something else cannot send tokens,
    // codes or webhook bodies through a host nobody configured here.
    builder = builder.no_proxy();
    if let Some(proxy) = proxy {
        builder = builder.proxy(proxy);
    }
    builder.build()
}
