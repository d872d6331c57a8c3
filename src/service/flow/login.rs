//! A login, from both ends: [`open`] starts one (an operator's select-account, or the
//! approval policy), and [`complete`] ends one (the callback, or a pasted code): exchange
//! the code of a claimed login, then approve the request or mark it failed.
//!
//! Opening writes the new state and verifier *before* the control browser is called,
//! because a provider that remembers consent can redirect to the callback before the
//! control browser has even answered, and that callback must find its state. If the control
//! browser then fails, the request is put back exactly as it was, unless something (that
//! early callback, a deny, a cancel, another select) has moved it on meanwhile.
//!
//! The login was claimed (its state consumed) before this runs, so a replay can never reach
//! the token endpoint twice. An exchange that finishes after a deny, a cancel or the
//! deadline changes nothing; one that finishes after an operator re-selected still wins
//! (see [`db::requests::approve`]), and one that fails then leaves the newer login alone.

use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::db;
use crate::db::requests::{Claim, NewLogin, StartedLogin};
use crate::domain::{secret, time, Actor, Audit, Status, TokenBundle, Transition};
use crate::error::{Error, Result};
use crate::service::AppState;

/// Another writer can move the row between our read and our write. Each lost race means
/// someone else's write landed, so retrying makes progress; after this many in a row the
/// caller is told to retry (503) rather than keep a handler spinning.
const MAX_ATTEMPTS: usize = 10;

/// Starts a login of request `id` with `account_id` and asks the control browser to open
/// it, as an operator's select-account or the approval policy does. The account must be a
/// configured one, not paused, and one the request's enrolled client may use.
pub async fn open(app: &AppState, id: Uuid, account_id: u32, actor: Actor) -> Result<()> {
    if !app.config.account_allowed(account_id) {
        return Err(Error::UnknownAccount(account_id));
    }
    if db::accounts::is_paused(&app.db, account_id).await? {
        return Err(Error::AccountPaused(account_id));
    }
    for _ in 0..MAX_ATTEMPTS {
        let before = db::requests::find_flow(&app.db, id)
            .await?
            .ok_or(Error::RequestNotFound)?;
        let now = time::now();
        let status = before.status.at(before.expires_at, now);
        if !Transition::SelectAccount.allowed_from(status) {
            return Err(Error::invalid_status(status, "pending or in_progress"));
        }
        if let Some(client) = before.client_id {
            // A deleted client's requests keep no bound: there is nothing to bound them by.
            if let Some(client) = db::clients::find(&app.db, client).await? {
                if !client.accounts.is_empty() && !client.accounts.contains(&account_id) {
                    return Err(Error::AccountNotAllowed(account_id));
                }
            }
        }
        let login = app.oauth.start_login(&before.scopes, account_id);
        let state_hash = secret::hash(login.state.expose_secret());
        let verifier = login.pkce_verifier.expose_secret();
        let audit = Audit::new(actor.clone(), "select_account")
            .with_detail(format!("account {account_id}"));
        let new_login = NewLogin {
            account_id,
            state_hash: &state_hash,
            pkce_verifier: verifier,
        };
        let started =
            db::requests::start_login(&app.db, id, &before, &new_login, now, &audit).await?;
        let Some(version) = started else { continue };
        tracing::info!(request_id = %id, account_id, %actor, "login started; asking the control browser");

        if let Err(reason) = app
            .control_browser
            .open_auth(account_id, &login.url, id)
            .await
        {
            let audit = Audit::new(actor.clone(), "restore")
                .with_detail(format!("control browser failed: {reason}"));
            let started = StartedLogin {
                version,
                state_hash: &state_hash,
                account_id,
            };
            let restored =
                db::requests::restore(&app.db, id, &started, &before, time::now(), &audit).await?;
            tracing::warn!(request_id = %id, account_id, ?reason, restored, "control browser failed");
            return Err(Error::ControlBrowserFailed(reason));
        }
        return Ok(());
    }
    Err(Error::Busy)
}

/// How much of a provider's error text is kept: it is untrusted and goes into the database.
const MAX_PROVIDER_ERROR: usize = 512;

/// Exchanges `code` and records the outcome; `actor` is who brought the code. `state` is
/// the state the login was claimed with (the callback's, or a pasted code's).
pub async fn complete(
    app: &AppState,
    claim: Claim,
    code: &str,
    state: Option<&str>,
    actor: Actor,
) -> Result<Status> {
    let id = claim.id;
    let exchanged = app
        .oauth
        .exchange_code(
            code,
            &claim.pkce_verifier,
            state,
            &claim.scopes,
            claim.lifetime_secs,
            claim.account_id,
        )
        .await;
    let bundle = match exchanged {
        Ok(bundle) => bundle,
        Err(e) => {
            let mut text = sanitize(&e.to_string());
            if e.is_transient() {
                text.push_str("; this may pass: select an account again to retry");
            }
            tracing::warn!(request_id = %id, error = %text, "token exchange failed");
            let audit = Audit::new(Actor::Provider, "fail").with_detail(text.clone());
            db::requests::fail_claimed(
                &app.db,
                id,
                claim.version,
                claim.account_id,
                &text,
                time::now(),
                &audit,
            )
            .await?;
            return Err(Error::ExchangeFailed(text));
        }
    };
    if let Some(mismatch) = account_mismatch(app, &claim, &bundle) {
        return refuse_wrong_account(app, &claim, &bundle, mismatch).await;
    }
    let mut detail = claim
        .account_id
        .map(|a| format!("account {a}"))
        .unwrap_or_default();
    if let Some(email) = &bundle.identity.account_email {
        detail.push_str(&format!(" ({email})"));
    }
    if let Some(secs) = claim.lifetime_secs {
        // A token nobody can refresh or cut short at the provider: the trail says so.
        detail.push_str(&format!(", long-lived token: lifetime_secs {secs}"));
        if let Some(expires_at) = bundle.expires_at {
            detail.push_str(&format!(", expires {}", time::to_db(expires_at)));
        }
    }
    let audit = Audit::new(actor, "approve").with_detail(detail);
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

/// The configured and the actual address, when the provider logged in another account than
/// the one the operator chose (a control-browser profile signed in to the wrong account).
/// Checked only when both are known.
fn account_mismatch(
    app: &AppState,
    claim: &Claim,
    bundle: &TokenBundle,
) -> Option<(String, String)> {
    let expected = claim
        .account_id
        .and_then(|a| app.config.account(a))
        .and_then(|a| a.email.clone())?;
    let actual = bundle.identity.account_email.clone()?;
    (!expected.eq_ignore_ascii_case(&actual)).then_some((expected, actual))
}

/// Discards the wrong account's tokens (never stored; withdrawn at the provider when a
/// revocation URL is set) and ends the request `error` with `account_mismatch`.
async fn refuse_wrong_account(
    app: &AppState,
    claim: &Claim,
    bundle: &TokenBundle,
    (expected, actual): (String, String),
) -> Result<Status> {
    let id = claim.id;
    let revoked = app.oauth.revoke(bundle, claim.account_id).await;
    let mut detail = format!("expected {expected}, the provider logged in {actual}");
    if let Some(revoked) = revoked {
        detail.push_str(&format!("; {}", revoked.detail));
    }
    tracing::warn!(request_id = %id, account_id = ?claim.account_id, "the login was for another account; tokens discarded");
    let audit = Audit::new(Actor::Provider, "account_mismatch").with_detail(detail);
    db::requests::fail_claimed(
        &app.db,
        id,
        claim.version,
        claim.account_id,
        ACCOUNT_MISMATCH,
        time::now(),
        &audit,
    )
    .await?;
    Err(Error::AccountMismatch { expected, actual })
}

/// The request's `error` when the provider logged in another account than the chosen one.
pub const ACCOUNT_MISMATCH: &str = "account_mismatch";

/// The request's status as a client would see it now: for the answer to a lost race.
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
