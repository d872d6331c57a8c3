//! New tokens for an approved request, through the provider's refresh-token grant, one
//! upstream call at a time per request.
//!
//! A caller reads the bundle's generation, then waits for the request's lock. If the
//! generation moved while it waited, another caller's refresh just landed and it answers with
//! those tokens instead of calling the provider again: so N concurrent calls make one
//! upstream call and all get the same new token. On PostgreSQL the lock is also held across
//! routers ([`db::tokens::refresh_guard`]), so the same holds for calls spread over several.

use uuid::Uuid;

use super::login::current_status;
use crate::db;
use crate::domain::{secret, time, Actor, Audit, Status, TokenBundle};
use crate::error::{Error, Result};
use crate::oauth::{ExchangeError, DEAD_REFRESH_TOKEN};
use crate::service::AppState;

/// Refreshes the tokens of request `id` for the holder of its `poll_token`; the bundle as
/// it stands afterwards.
pub async fn refresh(app: &AppState, id: Uuid, poll_token: &str) -> Result<TokenBundle> {
    let stored = db::requests::find(&app.db, id)
        .await?
        .ok_or(Error::RequestNotFound)?;
    if !secret::verify(poll_token, &stored.poll_token_hash) {
        return Err(Error::Unauthorized);
    }
    let status = stored.request.effective_status(time::now());
    if status != Status::Approved {
        return Err(Error::invalid_status(status, "approved"));
    }
    let seen = refresh_state(app, id).await?;

    let _flight = app.refresh_locks.lock(id).await;
    let _every_router = db::tokens::refresh_guard(&app.db, id).await?;
    let current = refresh_state(app, id).await?;
    if let Some(reason) = current.refresh_error {
        return Err(Error::RefreshRejected(reason));
    }
    if current.generation != seen.generation {
        return current_token(app, id).await;
    }
    // A long-lived token comes without one: nothing to refresh, by design.
    let Some(refresh_token) = current.refresh_token else {
        return Err(Error::NotRefreshable);
    };
    let account = stored.request.account_id;
    match app
        .oauth
        .refresh(&refresh_token, &current.scope, account)
        .await
    {
        Ok(bundle) => {
            let audit = Audit::new(Actor::Client(stored.request.hostname.clone()), "refresh");
            if !db::tokens::store_refreshed(&app.db, id, current.generation, &bundle, &audit)
                .await?
            {
                return Err(Error::invalid_status(
                    current_status(app, id).await?,
                    "approved",
                ));
            }
            tracing::info!(request_id = %id, "tokens refreshed");
            current_token(app, id).await
        }
        Err(ExchangeError::Rejected { code, text })
            if DEAD_REFRESH_TOKEN.contains(&code.as_str()) =>
        {
            let reason = text;
            let audit = Audit::new(Actor::Provider, "refresh_rejected").with_detail(reason.clone());
            db::tokens::mark_refresh_rejected(
                &app.db,
                id,
                current.generation,
                &reason,
                time::now(),
                &audit,
            )
            .await?;
            tracing::warn!(request_id = %id, ?reason, "provider rejected the refresh token");
            Err(Error::RefreshRejected(reason))
        }
        Err(e) => {
            // A rate limit, an outage or another refusal: the bundle stays usable.
            tracing::warn!(request_id = %id, error = %e, "refresh failed upstream; nothing changed");
            Err(Error::UpstreamFailed(e.to_string()))
        }
    }
}

async fn refresh_state(app: &AppState, id: Uuid) -> Result<db::tokens::RefreshState> {
    // An approved request without a bundle has had its tokens removed (revoked) meanwhile.
    match db::tokens::refresh_state(&app.db, id).await? {
        Some(state) => Ok(state),
        None => Err(Error::invalid_status(
            current_status(app, id).await?,
            "approved",
        )),
    }
}

async fn current_token(app: &AppState, id: Uuid) -> Result<TokenBundle> {
    match db::tokens::find(&app.db, id).await? {
        Some(bundle) => Ok(bundle),
        None => Err(Error::invalid_status(
            current_status(app, id).await?,
            "approved",
        )),
    }
}
