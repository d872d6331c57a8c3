//! The end of a login, shared by the callback and the pasted-code endpoint: exchange the
//! code of a claimed login, then approve the request or mark it failed.
//!
//! The login was claimed (its state consumed) before this runs, so a replay can never reach
//! the token endpoint twice. An exchange that finishes after a deny, a cancel or the
//! deadline changes nothing; one that finishes after an operator re-selected still wins
//! (see [`db::requests::approve`]), and one that fails then leaves the newer login alone.

use super::AppState;
use crate::db;
use crate::db::requests::Claim;
use crate::domain::{time, Actor, Audit, Status};
use crate::error::{Error, Result};

/// How much of a provider's error text is kept: it is untrusted and goes into the database.
const MAX_PROVIDER_ERROR: usize = 512;

/// Exchanges `code` and records the outcome; `actor` is who brought the code.
pub async fn complete(app: &AppState, claim: Claim, code: &str, actor: Actor) -> Result<Status> {
    let id = claim.id;
    match app
        .oauth
        .exchange_code(code, &claim.pkce_verifier, &claim.scopes)
        .await
    {
        Ok(bundle) => {
            let account = claim
                .account_id
                .map(|a| format!("account {a}"))
                .unwrap_or_default();
            let audit = Audit::new(actor, "approve").with_detail(account);
            if !db::requests::approve(&app.db, &claim, &bundle, time::now(), &audit).await? {
                tracing::warn!(request_id = %id, "request moved on during the exchange; tokens dropped");
                return Err(Error::invalid_status(
                    current_status(app, id).await?,
                    "in_progress and unexpired",
                ));
            }
            tracing::info!(request_id = %id, "token request approved");
            Ok(Status::Approved)
        }
        Err(e) => {
            let text = sanitize(&e.to_string());
            tracing::warn!(request_id = %id, error = %text, "token exchange failed");
            let audit = Audit::new(Actor::Provider, "fail").with_detail(text.clone());
            db::requests::fail_claimed(&app.db, id, claim.version, &text, time::now(), &audit)
                .await?;
            Err(Error::ExchangeFailed(text))
        }
    }
}

pub async fn current_status(app: &AppState, id: uuid::Uuid) -> Result<Status> {
    let stored = db::requests::find(&app.db, id)
        .await?
        .ok_or(Error::RequestNotFound)?;
    Ok(stored.request.effective_status(time::now()))
}

/// Keeps provider text printable and bounded.
pub fn sanitize(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROVIDER_ERROR)
        .collect()
}
