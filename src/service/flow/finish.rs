//! Ending a request by its id: deny and cancel (an open request ends), and revoke (an
//! approved one loses its tokens).

use uuid::Uuid;

use super::login::current_status;
use crate::db;
use crate::domain::{time, Audit, Status, Transition};
use crate::error::{Error, Result};
use crate::service::AppState;

/// Applies a terminal transition (deny, cancel) by id; on a lost race, says what the request
/// is now.
pub async fn finish(
    app: &AppState,
    id: Uuid,
    transition: Transition,
    audit: Audit,
) -> Result<Status> {
    let to = transition.to().expect("deny and cancel end in a status");
    if db::requests::transition(&app.db, id, transition, time::now(), &audit).await? {
        tracing::info!(request_id = %id, status = %to, actor = %audit.actor, "token request finished");
        return Ok(to);
    }
    let now = current_status(app, id).await?;
    Err(Error::invalid_status(now, "pending or in_progress"))
}

/// An approved request becomes `revoked` and its stored tokens are deleted in the same
/// transaction, then scrubbed from the files.
///
/// With `oauth.revocation_url` set, the tokens are first withdrawn at the provider too, so
/// the copies an employee holds stop working. That happens under the request's refresh
/// lock, so no refresh can swap in tokens the provider was not told about. A provider
/// failure is reported (`Some(false)`) and audited, and the local revoke still happens: the
/// router's copy must go either way. `None`: no provider revocation was tried.
pub async fn revoke(app: &AppState, id: Uuid, audit: Audit) -> Result<Option<bool>> {
    let _no_refresh_meanwhile = app.refresh_locks.lock(id).await;
    let _nor_on_another_router = db::tokens::refresh_guard(&app.db, id).await?;
    let account = db::requests::find(&app.db, id)
        .await?
        .and_then(|r| r.request.account_id);
    let provider = match db::tokens::find(&app.db, id).await? {
        Some(bundle) => app.oauth.revoke(&bundle, account).await,
        None => None,
    };
    let mut audit = audit;
    if let Some(outcome) = &provider {
        audit = audit.with_detail(outcome.detail.clone());
    }
    if db::requests::revoke(&app.db, id, time::now(), &audit).await? {
        let provider_revoked = provider.as_ref().map(|p| p.ok);
        tracing::info!(request_id = %id, ?provider_revoked, "token request revoked; tokens deleted");
        return Ok(provider_revoked);
    }
    Err(Error::invalid_status(
        current_status(app, id).await?,
        "approved",
    ))
}
