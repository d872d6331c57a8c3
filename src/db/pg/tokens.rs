//! The PostgreSQL arms of [`crate::db::tokens`].

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::store;
use super::store::tokens::BundleRow;
use crate::db::commit::WriteTx;
use crate::db::tokens::RefreshState;
use crate::db::{Db, StoreError, ACCESS_TOKEN, REFRESH_TOKEN};
use crate::domain::{Audit, Status, TokenBundle};

/// A bundle's row as stored: the tokens sealed for their place.
fn row(db: &Db, request_id: Uuid, bundle: &TokenBundle) -> BundleRow {
    let seal = |column, token: &SecretString| db.seal(column, request_id, token.expose_secret());
    let who = &bundle.identity;
    BundleRow {
        access_token: seal(ACCESS_TOKEN, &bundle.access_token),
        refresh_token: bundle
            .refresh_token
            .as_ref()
            .map(|t| seal(REFRESH_TOKEN, t)),
        token_type: bundle.token_type.clone(),
        scope: bundle.scope.clone(),
        expires_at: bundle.expires_at,
        obtained_at: bundle.obtained_at,
        refresh_expires_at: bundle.refresh_expires_at,
        account_uuid: who.account_uuid.clone(),
        account_email: who.account_email.clone(),
        organization_uuid: who.organization_uuid.clone(),
        organization_name: who.organization_name.clone(),
    }
}

pub async fn insert(
    db: &Db,
    conn: &mut PgConnection,
    request_id: Uuid,
    bundle: &TokenBundle,
) -> Result<(), StoreError> {
    store::tokens::insert(conn, request_id, &row(db, request_id, bundle)).await?;
    Ok(())
}

pub async fn find(
    db: &Db,
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Option<TokenBundle>, StoreError> {
    let row = store::tokens::find(pool, request_id).await?;
    row.map(|r| crate::db::tokens::opened(db, request_id, r))
        .transpose()
}

pub async fn refresh_state(
    db: &Db,
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Option<RefreshState>, StoreError> {
    let row = store::tokens::refresh_state(pool, request_id).await?;
    row.map(|r| crate::db::tokens::refresh_opened(db, request_id, r))
        .transpose()
}

pub async fn store_refreshed(
    db: &Db,
    pool: &PgPool,
    request_id: Uuid,
    generation: i64,
    bundle: &TokenBundle,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let row = row(db, request_id, bundle);
    if !store::tokens::store_refreshed(tx.conn(), request_id, generation, &row).await? {
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

pub async fn mark_refresh_rejected(
    db: &Db,
    pool: &PgPool,
    request_id: Uuid,
    generation: i64,
    reason: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let done =
        store::tokens::mark_refresh_rejected(tx.conn(), request_id, generation, reason).await?;
    if !done {
        return Ok(false);
    }
    let approved = Some(Status::Approved);
    tx.record(request_id, now, audit, approved, Status::Approved)
        .await?;
    tx.commit().await?;
    Ok(true)
}
