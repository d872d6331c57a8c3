//! Egress proxy URLs. Their credentials are secrets: `Debug`, `check-config` and the console
//! show the URL with the password replaced, and nothing logs it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// The schemes reqwest can proxy through.
pub const PROXY_SCHEMES: &[&str] = &["http", "https", "socks5", "socks5h"];

/// An egress proxy (`http://`, `https://`, `socks5://`, `socks5h://`), or empty for none.
#[derive(Clone, Default)]
pub struct ProxyUrl(SecretString);

impl ProxyUrl {
    pub fn new(url: &str) -> Self {
        Self(SecretString::from(url.to_owned()))
    }

    /// The URL, credentials included, for building the HTTP client only.
    pub fn expose(&self) -> Option<&str> {
        Some(self.0.expose_secret().trim()).filter(|u| !u.is_empty())
    }

    /// The URL as it may be shown: the password (or a lone user name) replaced.
    pub fn redacted(&self) -> String {
        let Some(raw) = self.expose() else {
            return String::new();
        };
        match Url::parse(raw) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("[redacted]"));
                } else if !url.username().is_empty() {
                    let _ = url.set_username("[redacted]");
                }
                url.to_string()
            }
            Err(_) => "[redacted]".into(),
        }
    }

    /// Checks the scheme and the host; the message names no credential.
    pub fn check(&self) -> Result<(), String> {
        let Some(raw) = self.expose() else {
            return Ok(());
        };
        let url = Url::parse(raw).map_err(|_| "is not a URL".to_owned())?;
        if !PROXY_SCHEMES.contains(&url.scheme()) || url.host().is_none() {
            return Err(format!(
                "must be a proxy URL with one of the schemes {}, and a host",
                PROXY_SCHEMES.join(", ")
            ));
        }
        Ok(())
    }
}

impl PartialEq for ProxyUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for ProxyUrl {}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({:?})", self.redacted())
    }
}

impl Serialize for ProxyUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ProxyUrl::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxys_password_is_never_shown() {
        let proxy = ProxyUrl::new("socks5h://team:hunter2-secret@10.1.2.3:1080");
        assert!(proxy.check().is_ok());
        for shown in [
            proxy.redacted(),
            format!("{proxy:?}"),
            serde_json::to_string(&proxy).unwrap(),
        ] {
            assert!(!shown.contains("hunter2-secret"), "{shown}");
            assert!(shown.contains("10.1.2.3"), "{shown}");
        }
        assert_eq!(
            proxy.expose(),
            Some("socks5h://team:hunter2-secret@10.1.2.3:1080")
        );
    }

    #[test]
    fn only_proxy_schemes_are_accepted() {
        assert!(ProxyUrl::new("ftp://p.example:21").check().is_err());
        assert!(ProxyUrl::new("not a url").check().is_err());
        assert!(ProxyUrl::default().check().is_ok(), "empty: no proxy");
        for ok in ["http://p:3128", "https://p:443", "socks5://p:1080"] {
            assert!(ProxyUrl::new(ok).check().is_ok(), "{ok}");
        }
    }
}
