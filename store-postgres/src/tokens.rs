//! `token_bundles`: the tokens of approved requests, and the refresh that must reach the
//! provider once however many routers ask at once (Claude rotates refresh tokens: a second
//! upstream refresh with the same token would kill the login).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A bundle's columns, with its tokens as sealed text (the router seals and opens them).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleRow {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub obtained_at: DateTime<Utc>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub account_uuid: Option<String>,
    pub account_email: Option<String>,
    pub organization_uuid: Option<String>,
    pub organization_name: Option<String>,
}

/// Where a bundle stands for a refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshState {
    pub generation: i64,
    pub refresh_token: Option<String>,
    pub refresh_error: Option<String>,
    pub scope: String,
}

/// Stores the bundle of request `request_id`, in the transaction that approves it.
pub async fn insert(
    conn: &mut PgConnection,
    request_id: Uuid,
    b: &BundleRow,
) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO token_bundles
             (request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at,
              refresh_expires_at, account_uuid, account_email, organization_uuid, organization_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        request_id,
        b.access_token,
        b.refresh_token,
        b.token_type,
        b.scope,
        b.expires_at,
        b.obtained_at,
        b.refresh_expires_at,
        b.account_uuid,
        b.account_email,
        b.organization_uuid,
        b.organization_name,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(pool: &PgPool, request_id: Uuid) -> Result<Option<BundleRow>, crate::Error> {
    sqlx::query_as!(
        BundleRow,
        "SELECT access_token, refresh_token, token_type, scope, expires_at, obtained_at,
                refresh_expires_at, account_uuid, account_email, organization_uuid,
                organization_name
         FROM token_bundles WHERE request_id = $1",
        request_id,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// Where the bundle stands now, without a lock: what a caller saw before queueing for the
/// lock, to tell afterwards whether another refresh landed meanwhile.
pub async fn refresh_state(
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Option<RefreshState>, crate::Error> {
    sqlx::query_as!(
        RefreshState,
        "SELECT generation, refresh_token, refresh_error, scope
         FROM token_bundles WHERE request_id = $1",
        request_id,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// Locks the bundle's row (`FOR UPDATE`) in a new transaction and re-reads it inside the
/// lock: the one refresh of a bundle at a time, across every router on the database. The
/// caller calls the provider while holding it, then [`store_refreshed`] and commits, or
/// drops the transaction. `None` when there is no bundle.
pub async fn lock_for_refresh(
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Option<(Transaction<'static, Postgres>, RefreshState)>, crate::Error> {
    let mut tx = pool.begin().await?;
    let state = sqlx::query_as!(
        RefreshState,
        "SELECT generation, refresh_token, refresh_error, scope
         FROM token_bundles WHERE request_id = $1 FOR UPDATE",
        request_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(state.map(|state| (tx, state)))
}

/// Stores refreshed tokens if the bundle is still at `generation` (`None` keeps the stored
/// refresh token, and likewise the identity). `false` when it moved on.
pub async fn store_refreshed(
    conn: &mut PgConnection,
    request_id: Uuid,
    generation: i64,
    b: &BundleRow,
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE token_bundles
         SET access_token = $1, refresh_token = COALESCE($2, refresh_token), token_type = $3,
             scope = $4, expires_at = $5, obtained_at = $6, generation = generation + 1,
             account_uuid = COALESCE($9, account_uuid),
             account_email = COALESCE($10, account_email),
             organization_uuid = COALESCE($11, organization_uuid),
             organization_name = COALESCE($12, organization_name)
         WHERE request_id = $7 AND generation = $8 AND refresh_error IS NULL",
        b.access_token,
        b.refresh_token,
        b.token_type,
        b.scope,
        b.expires_at,
        b.obtained_at,
        request_id,
        generation,
        b.account_uuid,
        b.account_email,
        b.organization_uuid,
        b.organization_name,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Waits for, and takes, the refresh lock of request `request_id`: a transaction-scoped
/// advisory lock, held until the returned transaction ends, so one router at a time calls
/// the provider for a bundle. Not the bundle's row lock: the refreshed tokens are stored by
/// another transaction while this one holds the lock.
pub async fn lock_refresh(
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Transaction<'static, Postgres>, crate::Error> {
    let mut tx = pool.begin().await?;
    let key = format!("refresh:{}", request_id.hyphenated());
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Marks the bundle's refresh token as refused by the provider, if still at `generation`.
pub async fn mark_refresh_rejected(
    conn: &mut PgConnection,
    request_id: Uuid,
    generation: i64,
    reason: &str,
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE token_bundles SET refresh_error = $1, generation = generation + 1
         WHERE request_id = $2 AND generation = $3 AND refresh_error IS NULL",
        reason,
        request_id,
        generation,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::requests::{self, NewRequest};
    use crate::testing::scratch_database;

    fn bundle(access: &str, refresh: &str) -> BundleRow {
        BundleRow {
            access_token: access.into(),
            refresh_token: Some(refresh.into()),
            token_type: "bearer".into(),
            scope: "user:inference".into(),
            expires_at: Some(Utc::now() + chrono::Duration::hours(8)),
            obtained_at: Utc::now(),
            refresh_expires_at: Some(Utc::now() + chrono::Duration::days(29)),
            account_uuid: Some("acct-1".into()),
            account_email: Some("team@example.com".into()),
            organization_uuid: None,
            organization_name: None,
        }
    }

    async fn approved(pool: &PgPool) -> Uuid {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let mut tx = pool.begin().await.unwrap();
        let new = NewRequest {
            id,
            client_name: "alice",
            hostname: "laptop",
            scopes: "user:inference",
            created_at: now,
            expires_at: now + chrono::Duration::minutes(10),
            poll_token_hash: &[7; 32],
            peer_addr: None,
            client_id: None,
            token_lifetime_secs: None,
            actor: "client:laptop",
            detail: None,
        };
        requests::insert(&mut tx, &new).await.unwrap();
        insert(&mut tx, id, &bundle("sealed-at-0", "sealed-rt-0"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_bundle_reads_back_byte_for_byte() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let id = approved(&pool).await;

        let stored = find(&pool, id).await.unwrap().unwrap();

        assert_eq!(stored.access_token, "sealed-at-0");
        assert_eq!(stored.refresh_token.as_deref(), Some("sealed-rt-0"));
        assert_eq!(stored.account_email.as_deref(), Some("team@example.com"));
    }

    /// Eight refreshes at once, over two pools (two routers): the row lock lets one call the
    /// provider; the others see, inside the lock, that the generation moved, and take its
    /// tokens.
    #[tokio::test]
    async fn concurrent_refreshes_over_two_pools_make_one_upstream_call() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let other = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let id = approved(&pool).await;
        let upstream = Arc::new(AtomicUsize::new(0));

        let refreshes: Vec<_> = (0..8)
            .map(|i| {
                let pool = if i % 2 == 0 {
                    pool.clone()
                } else {
                    other.clone()
                };
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let seen = refresh_state(&pool, id).await.unwrap().unwrap();
                    let (mut tx, current) = lock_for_refresh(&pool, id).await.unwrap().unwrap();
                    if current.generation == seen.generation {
                        let n = upstream.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let new = bundle(&format!("sealed-at-{n}"), &format!("sealed-rt-{n}"));
                        assert!(store_refreshed(&mut tx, id, current.generation, &new)
                            .await
                            .unwrap());
                    }
                    tx.commit().await.unwrap();
                    find(&pool, id).await.unwrap().unwrap().access_token
                })
            })
            .collect();
        let mut tokens = Vec::new();
        for refresh in refreshes {
            tokens.push(refresh.await.unwrap());
        }

        assert_eq!(upstream.load(Ordering::SeqCst), 1, "one upstream refresh");
        assert!(tokens.iter().all(|t| t == "sealed-at-1"), "{tokens:?}");
        let state = refresh_state(&pool, id).await.unwrap().unwrap();
        assert_eq!(state.generation, 1);
        assert_eq!(state.refresh_token.as_deref(), Some("sealed-rt-1"));
    }
}
