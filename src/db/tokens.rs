//! `token_bundles`: the tokens of approved requests.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::commit::WriteTx;
use super::StoreError;
use super::{Db, ACCESS_TOKEN, REFRESH_TOKEN};
use crate::domain::time::to_db;
use crate::domain::{Audit, Identity, Status, TokenBundle};

/// A bundle's columns as stored: the tokens sealed for their place, the times as text.
struct Stored {
    access: String,
    refresh: Option<String>,
    expires_at: Option<String>,
    obtained_at: String,
}

fn stored(db: &Db, request_id: Uuid, bundle: &TokenBundle) -> Stored {
    let seal = |column, token: &SecretString| db.seal(column, request_id, token.expose_secret());
    Stored {
        access: seal(ACCESS_TOKEN, &bundle.access_token),
        refresh: bundle
            .refresh_token
            .as_ref()
            .map(|t| seal(REFRESH_TOKEN, t)),
        expires_at: bundle.expires_at.map(to_db),
        obtained_at: to_db(bundle.obtained_at),
    }
}

/// Stores the bundle of a request; called inside the transaction that approves it.
pub async fn insert(
    db: &Db,
    conn: &mut SqliteConnection,
    request_id: Uuid,
    bundle: &TokenBundle,
) -> Result<(), StoreError> {
    let id = request_id.hyphenated();
    let Stored {
        access,
        refresh,
        expires_at,
        obtained_at,
    } = stored(db, request_id, bundle);
    let who = &bundle.identity;
    sqlx::query!(
        "INSERT INTO token_bundles
             (request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at,
              account_uuid, account_email, organization_uuid, organization_name)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        id,
        access,
        refresh,
        bundle.token_type,
        bundle.scope,
        expires_at,
        obtained_at,
        who.account_uuid,
        who.account_email,
        who.organization_uuid,
        who.organization_name,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(db: &Db, request_id: Uuid) -> Result<Option<TokenBundle>, StoreError> {
    let id = request_id.hyphenated();
    let row = sqlx::query!(
        r#"SELECT access_token, refresh_token, token_type, scope,
                  expires_at AS "expires_at: DateTime<Utc>",
                  obtained_at AS "obtained_at: DateTime<Utc>",
                  account_uuid, account_email, organization_uuid, organization_name
           FROM token_bundles WHERE request_id = ?"#,
        id,
    )
    .fetch_all(&db.read)
    .await?
    .into_iter()
    .next();
    let Some(r) = row else { return Ok(None) };
    Ok(Some(TokenBundle {
        access_token: db.open(ACCESS_TOKEN, request_id, &r.access_token)?,
        refresh_token: r
            .refresh_token
            .map(|t| db.open(REFRESH_TOKEN, request_id, &t))
            .transpose()?,
        token_type: r.token_type,
        scope: r.scope,
        expires_at: r.expires_at,
        obtained_at: r.obtained_at,
        identity: Identity {
            account_uuid: r.account_uuid,
            account_email: r.account_email,
            organization_uuid: r.organization_uuid,
            organization_name: r.organization_name,
        },
    }))
}

/// What a refresh needs: the current refresh token and where the bundle stands.
#[derive(Debug)]
pub struct RefreshState {
    pub generation: i64,
    pub refresh_token: Option<SecretString>,
    /// Why the provider refused the last refresh, when it did.
    pub refresh_error: Option<String>,
    pub scope: String,
}

pub async fn refresh_state(db: &Db, request_id: Uuid) -> Result<Option<RefreshState>, StoreError> {
    let id = request_id.hyphenated();
    let row = sqlx::query!(
        "SELECT generation, refresh_token, refresh_error, scope FROM token_bundles WHERE request_id = ?",
        id,
    )
    .fetch_all(&db.read)
    .await?
    .into_iter()
    .next();
    let Some(r) = row else { return Ok(None) };
    Ok(Some(RefreshState {
        generation: r.generation,
        refresh_token: r
            .refresh_token
            .map(|t| db.open(REFRESH_TOKEN, request_id, &t))
            .transpose()?,
        refresh_error: r.refresh_error,
        scope: r.scope,
    }))
}

/// Stores refreshed tokens if the bundle is still at `generation`. A provider that sends no
/// new refresh token keeps the old one working, so `None` keeps the stored one; likewise
/// for the account and organization.
pub async fn store_refreshed(
    db: &Db,
    request_id: Uuid,
    generation: i64,
    bundle: &TokenBundle,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin(db).await?;
    let id = request_id.hyphenated();
    let Stored {
        access,
        refresh,
        expires_at,
        obtained_at,
    } = stored(db, request_id, bundle);
    let who = &bundle.identity;
    let done = sqlx::query!(
        "UPDATE token_bundles
         SET access_token = ?1, refresh_token = COALESCE(?2, refresh_token), token_type = ?3,
             scope = ?4, expires_at = ?5, obtained_at = ?6, generation = generation + 1,
             account_uuid = COALESCE(?9, account_uuid),
             account_email = COALESCE(?10, account_email),
             organization_uuid = COALESCE(?11, organization_uuid),
             organization_name = COALESCE(?12, organization_name)
         WHERE request_id = ?7 AND generation = ?8 AND refresh_error IS NULL",
        access,
        refresh,
        bundle.token_type,
        bundle.scope,
        expires_at,
        obtained_at,
        id,
        generation,
        who.account_uuid,
        who.account_email,
        who.organization_uuid,
        who.organization_name,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let approved = Some(Status::Approved);
    tx.record(
        request_id,
        bundle.obtained_at,
        audit,
        approved,
        Status::Approved,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks the bundle's refresh token as rejected by the provider, if still at `generation`.
pub async fn mark_refresh_rejected(
    db: &Db,
    request_id: Uuid,
    generation: i64,
    reason: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin(db).await?;
    let id = request_id.hyphenated();
    let done = sqlx::query!(
        "UPDATE token_bundles SET refresh_error = ?1, generation = generation + 1
         WHERE request_id = ?2 AND generation = ?3 AND refresh_error IS NULL",
        reason,
        id,
        generation,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let approved = Some(Status::Approved);
    tx.record(request_id, now, audit, approved, Status::Approved)
        .await?;
    tx.commit().await?;
    Ok(true)
}
