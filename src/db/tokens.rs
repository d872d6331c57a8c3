//! `token_bundles`: the tokens of approved requests.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::commit::WriteTx;
use super::pg::store::tokens::{BundleRow, RefreshState as RefreshRow};
use super::StoreError;
use super::{pg, Backend};
use super::{Db, ACCESS_TOKEN, REFRESH_TOKEN};
use crate::domain::event::EventType;
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
    let refresh_expires_at = bundle.refresh_expires_at.map(to_db);
    sqlx::query!(
        "INSERT INTO token_bundles
             (request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at,
              account_uuid, account_email, organization_uuid, organization_name,
              refresh_expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        refresh_expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(db: &Db, request_id: Uuid) -> Result<Option<TokenBundle>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::tokens::find(db, pool, request_id).await;
    }
    let id = request_id.hyphenated();
    let row = sqlx::query_as!(
        BundleRow,
        r#"SELECT access_token, refresh_token, token_type, scope,
                  expires_at AS "expires_at: DateTime<Utc>",
                  obtained_at AS "obtained_at: DateTime<Utc>",
                  refresh_expires_at AS "refresh_expires_at: DateTime<Utc>",
                  account_uuid, account_email, organization_uuid, organization_name
           FROM token_bundles WHERE request_id = ?"#,
        id,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(|r| opened(db, request_id, r)).transpose()
}

/// A stored bundle (either store's row), its tokens opened: the one place they are.
pub(super) fn opened(db: &Db, request_id: Uuid, r: BundleRow) -> Result<TokenBundle, StoreError> {
    Ok(TokenBundle {
        access_token: db.open(ACCESS_TOKEN, request_id, &r.access_token)?,
        refresh_token: r
            .refresh_token
            .map(|t| db.open(REFRESH_TOKEN, request_id, &t))
            .transpose()?,
        token_type: r.token_type,
        scope: r.scope,
        expires_at: r.expires_at,
        obtained_at: r.obtained_at,
        refresh_expires_at: r.refresh_expires_at,
        identity: Identity {
            account_uuid: r.account_uuid,
            account_email: r.account_email,
            organization_uuid: r.organization_uuid,
            organization_name: r.organization_name,
        },
    })
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
    if let Backend::Postgres(pool) = &db.backend {
        return pg::tokens::refresh_state(db, pool, request_id).await;
    }
    let id = request_id.hyphenated();
    let row = sqlx::query_as!(
        RefreshRow,
        "SELECT generation, refresh_token, refresh_error, scope FROM token_bundles WHERE request_id = ?",
        id,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(|r| refresh_opened(db, request_id, r)).transpose()
}

/// Where a stored bundle (either store's row) stands for a refresh, its refresh token opened.
pub(super) fn refresh_opened(
    db: &Db,
    request_id: Uuid,
    r: RefreshRow,
) -> Result<RefreshState, StoreError> {
    Ok(RefreshState {
        generation: r.generation,
        refresh_token: r
            .refresh_token
            .map(|t| db.open(REFRESH_TOKEN, request_id, &t))
            .transpose()?,
        refresh_error: r.refresh_error,
        scope: r.scope,
    })
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
    if let Backend::Postgres(pool) = &db.backend {
        return pg::tokens::store_refreshed(db, pool, request_id, generation, bundle, audit).await;
    }
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

/// Held while a bundle is refreshed: on PostgreSQL, the bundle's advisory lock, so one
/// router at a time calls the provider for it (Claude rotates refresh tokens: a second
/// call with the same one would kill the login). SQLite's single router needs only its
/// in-process lock. Dropping it lets go.
#[must_use]
pub struct RefreshGuard(#[allow(dead_code)] Option<sqlx::Transaction<'static, sqlx::Postgres>>);

/// Waits for, and takes, the refresh lock of request `request_id` across every router.
pub async fn refresh_guard(db: &Db, request_id: Uuid) -> Result<RefreshGuard, StoreError> {
    match &db.backend {
        Backend::Sqlite(_) => Ok(RefreshGuard(None)),
        Backend::Postgres(pool) => Ok(RefreshGuard(Some(
            pg::store::tokens::lock_refresh(pool, request_id).await?,
        ))),
    }
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
    if let Backend::Postgres(pool) = &db.backend {
        return pg::tokens::mark_refresh_rejected(
            db, pool, request_id, generation, reason, now, audit,
        )
        .await;
    }
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

/// Gives every bundle that holds a refresh token but no deadline one `lifetime_secs` after
/// its `obtained_at`: for bundles stored before deadlines were (`oauth.refresh_token_lifetime_secs`,
/// the claude preset's 29 days). Returns how many it set.
pub async fn backfill_refresh_deadlines(db: &Db, lifetime_secs: u64) -> Result<u64, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let secs = i64::try_from(lifetime_secs)
            .map_err(|e| StoreError::Failed(format!("refresh_token_lifetime_secs: {e}")))?;
        return Ok(pg::store::upkeep::backfill_refresh_deadlines(pool, secs).await?);
    }
    let offset = format!("+{lifetime_secs} seconds");
    let done = sqlx::query!(
        "UPDATE token_bundles
         SET refresh_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', obtained_at, ?1)
         WHERE refresh_expires_at IS NULL AND refresh_token IS NOT NULL",
        offset,
    )
    .execute(&db.sqlite()?.write)
    .await?;
    Ok(done.rows_affected())
}

/// A bundle whose refresh token dies within the warning window and has not been warned of.
#[derive(Debug)]
pub struct ReloginDue {
    pub request_id: Uuid,
    pub client_id: Option<Uuid>,
    pub account_id: Option<u32>,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Approved bundles, with a refresh token the provider has not refused, whose deadline is
/// at or before `before` and that were not warned of yet; at most `limit`.
pub async fn relogin_due(
    db: &Db,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ReloginDue>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let rows = pg::store::upkeep::relogin_due(pool, before, limit).await?;
        return rows
            .into_iter()
            .map(|r| {
                Ok(ReloginDue {
                    request_id: r.request_id,
                    client_id: r.client_id,
                    account_id: pg::account_id(r.account_id)?,
                    refresh_expires_at: r.refresh_expires_at,
                })
            })
            .collect();
    }
    let before = to_db(before);
    let rows = sqlx::query!(
        r#"SELECT t.request_id AS "request_id!: uuid::fmt::Hyphenated",
                  r.client_id AS "client_id: uuid::fmt::Hyphenated",
                  r.account_id AS "account_id: u32",
                  t.refresh_expires_at AS "refresh_expires_at!: DateTime<Utc>"
           FROM token_bundles t JOIN auth_requests r ON r.id = t.request_id
           WHERE t.relogin_warned_at IS NULL AND t.refresh_expires_at IS NOT NULL
             AND t.refresh_expires_at <= ?1 AND t.refresh_token IS NOT NULL
             AND t.refresh_error IS NULL AND r.status = 'approved'
           ORDER BY t.refresh_expires_at LIMIT ?2"#,
        before,
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ReloginDue {
            request_id: r.request_id.into_uuid(),
            client_id: r.client_id.map(uuid::fmt::Hyphenated::into_uuid),
            account_id: r.account_id,
            refresh_expires_at: r.refresh_expires_at,
        })
        .collect())
}

/// Marks bundle `request_id` as warned of and queues `token.relogin_due` with `detail`, in
/// one transaction; `false` (and nothing queued) when it already was: once per bundle.
pub async fn warn_relogin(
    db: &Db,
    request_id: Uuid,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let mut tx = WriteTx::begin_pg(db, pool).await?;
        if !pg::store::upkeep::mark_warned(tx.conn(), request_id, now).await? {
            return Ok(false);
        }
        tx.raise_with(Some(request_id), EventType::ReloginDue, now, Some(detail))
            .await?;
        tx.commit().await?;
        return Ok(true);
    }
    let mut tx = WriteTx::begin(db).await?;
    let (id, at) = (request_id.hyphenated(), to_db(now));
    let done = sqlx::query!(
        "UPDATE token_bundles SET relogin_warned_at = ?1
         WHERE request_id = ?2 AND relogin_warned_at IS NULL",
        at,
        id,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tx.raise_with(Some(request_id), EventType::ReloginDue, now, Some(detail))
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bundles stored before deadlines existed get `obtained_at` + the lifetime, in the
    /// stored time format; a bundle without a refresh token, or with a deadline, is left.
    #[tokio::test]
    async fn stored_bundles_get_their_deadline_from_obtained_at_once() {
        let (_dir, db) = crate::db::scratch().await;
        for (id, refresh, deadline) in [
            ("00000000-0000-0000-0000-000000000001", Some("rt"), None),
            ("00000000-0000-0000-0000-000000000002", None, None),
            (
                "00000000-0000-0000-0000-000000000003",
                Some("rt"),
                Some("2030-01-01T00:00:00.000Z"),
            ),
        ] {
            sqlx::query(
                "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, created_at,
                     updated_at, expires_at, poll_token_hash)
                 VALUES (?1, 'c', 'h', '', 'approved', '2026-01-01T00:00:00.000Z',
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:10:00.000Z', x'00')",
            )
            .bind(id)
            .execute(&db.sqlite().unwrap().write)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO token_bundles (request_id, access_token, refresh_token, token_type,
                     scope, obtained_at, refresh_expires_at)
                 VALUES (?1, 'at', ?2, 'Bearer', '', '2026-01-01T12:00:00.250Z', ?3)",
            )
            .bind(id)
            .bind(refresh)
            .bind(deadline)
            .execute(&db.sqlite().unwrap().write)
            .await
            .unwrap();
        }

        let set = backfill_refresh_deadlines(&db, 29 * 24 * 3600)
            .await
            .unwrap();
        let again = backfill_refresh_deadlines(&db, 29 * 24 * 3600)
            .await
            .unwrap();

        assert_eq!((set, again), (1, 0));
        let deadlines: Vec<Option<String>> =
            sqlx::query_scalar("SELECT refresh_expires_at FROM token_bundles ORDER BY request_id")
                .fetch_all(&db.sqlite().unwrap().read)
                .await
                .unwrap();
        assert_eq!(
            deadlines,
            [
                Some("2026-01-30T12:00:00.250Z".to_owned()),
                None,
                Some("2030-01-01T00:00:00.000Z".to_owned()),
            ]
        );
    }
}
