//! Creating a request: stored with its audit row through the group-commit writer, within
//! its client's (or hostname's) open-request limit.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::Config;
use crate::db::clients::Client;
use crate::db::requests::{Inserted, NewRow};
use crate::domain::{secret, time, Actor, Audit, NewTokenRequest};
use crate::error::{Error, Result};
use crate::service::AppState;

/// A stored request: what its creator is told.
pub struct Stored {
    pub id: Uuid,
    /// Shown once, to the creator; only its hash is kept.
    pub poll_token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Stores `new`, made by `client` (an enrolled one, or `None`: unverified) from `peer`.
pub async fn create(
    app: &AppState,
    new: NewTokenRequest,
    client: Option<&Client>,
    peer: IpAddr,
) -> Result<Stored> {
    // Time-ordered (UUIDv7): new rows land at the end of every index keyed by the id (the
    // table's key, the audit trail's), so a batch of creates dirties a few pages instead of
    // one random page per row. An id is not a secret; the poll token is.
    let id = Uuid::now_v7();
    let poll_token = secret::generate();
    let now = time::now();
    let expires_at = now + app.config.requests.ttl();
    let max_open = app.config.limits.max_open_requests_per_client;
    let (hostname, client_name, scopes, lifetime_secs) = (
        new.hostname.clone(),
        new.client_name.clone(),
        new.scopes.to_string(),
        new.lifetime_secs,
    );
    let row = NewRow {
        id,
        poll_token_hash: secret::hash(poll_token.expose_secret()),
        created_at: now,
        expires_at,
        client_id: client.map(|c| c.client_id),
        max_open,
        peer_addr: peer.to_string(),
        audit: create_audit(&hostname, peer, client),
        new,
    };
    let inserted = app.creates.insert(row).await.map_err(|e| {
        if e.busy {
            Error::Busy
        } else if e.unavailable {
            Error::Unavailable
        } else {
            Error::Internal(anyhow::anyhow!("storing a new request: {e}"))
        }
    })?;
    if let Inserted::TooManyOpen { next_expiry } = inserted {
        let retry_after = (next_expiry - now).to_std().unwrap_or_default();
        let who = if client.is_some() {
            &client_name
        } else {
            &hostname
        };
        return Err(Error::RateLimited {
            retry_after,
            message: format!(
                "{who} already has {max_open} open requests; finish or cancel one, or wait for one to expire"
            ),
        });
    }
    tracing::info!(request_id = %id, ?client_name, ?hostname, ?scopes, ?lifetime_secs, verified = client.is_some(), "token request created");
    Ok(Stored {
        id,
        poll_token,
        expires_at,
    })
}

/// A long-lived token may be asked for only within `requests.max_token_lifetime_secs`, by
/// an enrolled client within its own maximum, and for scopes in `oauth.long_lived_scopes`:
/// such a token cannot be refreshed or cut short by the router, so each grant of one is a
/// deliberate choice of the admin who enrolled the client.
pub fn check_lifetime(
    config: &Config,
    new: &NewTokenRequest,
    client: Option<&Client>,
) -> Result<()> {
    let Some(asked) = new.lifetime_secs else {
        return Ok(());
    };
    let max = config.requests.max_token_lifetime_secs;
    if max == 0 {
        return Err(Error::LifetimeNotAllowed(
            "this router gives no long-lived tokens (requests.max_token_lifetime_secs is 0)".into(),
        ));
    }
    if asked > max {
        return Err(Error::LifetimeNotAllowed(format!(
            "lifetime_secs {asked} is more than this router's maximum, {max}"
        )));
    }
    let Some(client) = client else {
        return Err(Error::LifetimeNotAllowed(
            "only an enrolled client may ask for a long-lived token; send its client key".into(),
        ));
    };
    if asked > client.max_token_lifetime_secs {
        return Err(Error::LifetimeNotAllowed(format!(
            "lifetime_secs {asked} is more than client {:?} may ask for, {}",
            client.name, client.max_token_lifetime_secs
        )));
    }
    let allowed = &config.oauth.long_lived_scopes;
    let refused: Vec<&str> = new
        .scopes
        .as_slice()
        .iter()
        .filter(|s| !allowed.contains(s))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(Error::InvalidScope(format!(
            "a long-lived token may not carry {}; it may carry only {}",
            refused.join(" "),
            if allowed.is_empty() {
                "nothing (oauth.long_lived_scopes is empty)".to_owned()
            } else {
                allowed.join(" ")
            }
        )));
    }
    Ok(())
}

/// The scopes a long-lived request gets when it names none: the default scopes that a
/// long-lived token may carry, so `token --lifetime 365d` works without `--scopes`.
pub fn long_lived_defaults(config: &Config) -> Vec<String> {
    let oauth = &config.oauth;
    oauth
        .default_scopes
        .iter()
        .filter(|s| oauth.long_lived_scopes.contains(s))
        .cloned()
        .collect()
}

/// The audit row of a create: who (an enrolled client is named as such), and from where. An
/// auto-approved request's create is quiet: no `request.pending`, nobody needs to act.
fn create_audit(hostname: &str, peer: IpAddr, client: Option<&Client>) -> Audit {
    let detail = match client {
        Some(c) => format!("from {peer}, enrolled client {} ({})", c.name, c.client_id),
        None => format!("from {peer}, unverified"),
    };
    let audit = Audit::new(Actor::Client(hostname.to_owned()), "create").with_detail(detail);
    match client {
        Some(c) if c.auto_approve => audit.quiet(),
        _ => audit,
    }
}
