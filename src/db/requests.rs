//! `auth_requests`: one function per statement.
//!
//! Every change is a single conditional `UPDATE`: its `WHERE` names the statuses the
//! transition may start from (bound from [`Transition::from`]), and, where a flow read the
//! row first, the `version` it read. Whoever's statement matches first wins; the others see
//! zero rows affected and report a conflict. Every change bumps `version`.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{decode, tokens, Db};
use crate::domain::time::to_db;
use crate::domain::{NewTokenRequest, Scopes, Status, TokenBundle, TokenRequest, Transition};

/// A request as the poll endpoints need it: the public fields and the poll token's hash.
#[derive(Debug)]
pub struct StoredRequest {
    pub request: TokenRequest,
    pub poll_token_hash: Vec<u8>,
}

/// The flow columns of a request, read before a select-account so that a failed control
/// browser call can put them back exactly.
#[derive(Debug, Clone)]
pub struct FlowSnapshot {
    pub status: Status,
    pub account_id: Option<u32>,
    pub state_hash: Option<Vec<u8>>,
    pub pkce_verifier: Option<SecretString>,
    pub updated_at: String,
    pub expires_at: DateTime<Utc>,
    pub scopes: Scopes,
    pub version: i64,
}

/// What a callback holds once it has consumed a state: enough to finish the exchange.
#[derive(Debug)]
pub struct Claim {
    pub id: Uuid,
    pub version: i64,
    pub pkce_verifier: SecretString,
    pub scopes: Scopes,
}

pub async fn insert(
    db: &Db,
    id: Uuid,
    new: &NewTokenRequest,
    poll_token_hash: &[u8],
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let id = id.hyphenated();
    let scopes = new.scopes.to_db();
    let (created, expires) = (to_db(created_at), to_db(expires_at));
    sqlx::query!(
        "INSERT INTO auth_requests
             (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at,
              poll_token_hash)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?6, ?7)",
        id,
        new.client_name,
        new.hostname,
        scopes,
        created,
        expires,
        poll_token_hash,
    )
    .execute(&db.write)
    .await?;
    Ok(())
}

/// The columns of a request as stored, before they become domain values.
struct RequestRow {
    id: uuid::fmt::Hyphenated,
    client_name: String,
    hostname: String,
    scopes: String,
    status: String,
    account_id: Option<u32>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    poll_token_hash: Vec<u8>,
}

impl TryFrom<RequestRow> for StoredRequest {
    type Error = sqlx::Error;

    fn try_from(r: RequestRow) -> Result<Self, sqlx::Error> {
        Ok(StoredRequest {
            poll_token_hash: r.poll_token_hash,
            request: TokenRequest {
                id: r.id.into_uuid(),
                client_name: r.client_name,
                hostname: r.hostname,
                scopes: Scopes::from_db(&r.scopes),
                status: decode("status", &r.status)?,
                account_id: r.account_id,
                error: r.error,
                created_at: r.created_at,
                updated_at: r.updated_at,
                expires_at: r.expires_at,
            },
        })
    }
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<StoredRequest>, sqlx::Error> {
    let id = id.hyphenated();
    let row = sqlx::query_as!(
        RequestRow,
        r#"SELECT id AS "id: uuid::fmt::Hyphenated", client_name, hostname, scopes, status,
                  account_id AS "account_id: u32", error,
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>",
                  poll_token_hash
           FROM auth_requests WHERE id = ?"#,
        id,
    )
    .fetch_optional(&db.read)
    .await?;
    row.map(StoredRequest::try_from).transpose()
}

/// Newest first, optionally of one status.
pub async fn list(
    db: &Db,
    status: Option<Status>,
    limit: u32,
) -> Result<Vec<TokenRequest>, sqlx::Error> {
    let status = status.map(Status::as_str);
    let rows = sqlx::query_as!(
        RequestRow,
        r#"SELECT id AS "id: uuid::fmt::Hyphenated", client_name, hostname, scopes, status,
                  account_id AS "account_id: u32", error,
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>",
                  poll_token_hash
           FROM auth_requests
           WHERE ?1 IS NULL OR status = ?1
           ORDER BY created_at DESC, id DESC
           LIMIT ?2"#,
        status,
        limit,
    )
    .fetch_all(&db.read)
    .await?;
    rows.into_iter()
        .map(|r| Ok(StoredRequest::try_from(r)?.request))
        .collect()
}

pub async fn find_flow(db: &Db, id: Uuid) -> Result<Option<FlowSnapshot>, sqlx::Error> {
    let id = id.hyphenated();
    let row = sqlx::query!(
        r#"SELECT status, account_id AS "account_id: u32", state_hash, pkce_verifier,
                  updated_at, expires_at AS "expires_at: DateTime<Utc>", scopes, version
           FROM auth_requests WHERE id = ?"#,
        id,
    )
    .fetch_optional(&db.read)
    .await?;
    row.map(|r| {
        Ok(FlowSnapshot {
            status: decode("status", &r.status)?,
            account_id: r.account_id,
            state_hash: r.state_hash,
            pkce_verifier: r.pkce_verifier.map(SecretString::from),
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            scopes: Scopes::from_db(&r.scopes),
            version: r.version,
        })
    })
    .transpose()
}

/// Starts a login with a new state and verifier, if the row is still at `version` and open.
/// Returns the new version.
pub async fn start_login(
    db: &Db,
    id: Uuid,
    version: i64,
    account_id: u32,
    state_hash: &[u8],
    pkce_verifier: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    let id = id.hyphenated();
    let now = to_db(now);
    let from = Transition::SelectAccount.from_json();
    sqlx::query_scalar!(
        r#"UPDATE auth_requests
           SET status = 'in_progress', account_id = ?1, state_hash = ?2, pkce_verifier = ?3,
               updated_at = ?4, version = version + 1
           WHERE id = ?5 AND version = ?6 AND expires_at > ?4
             AND status IN (SELECT value FROM json_each(?7))
           RETURNING version AS "version!: i64""#,
        account_id,
        state_hash,
        pkce_verifier,
        now,
        id,
        version,
        from,
    )
    .fetch_optional(&db.write)
    .await
}

/// Puts back the flow columns of `before`, unless anything touched the row since our own
/// `start_login` (which left it at `version`, waiting for `state_hash`).
pub async fn restore(
    db: &Db,
    id: Uuid,
    version: i64,
    state_hash: &[u8],
    before: &FlowSnapshot,
) -> Result<bool, sqlx::Error> {
    let id = id.hyphenated();
    let status = before.status.as_str();
    let verifier = before.pkce_verifier.as_ref().map(|v| v.expose_secret());
    let from = Transition::Restore.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = ?1, account_id = ?2, state_hash = ?3, pkce_verifier = ?4,
             updated_at = ?5, version = version + 1
         WHERE id = ?6 AND version = ?7 AND state_hash = ?8
           AND status IN (SELECT value FROM json_each(?9))",
        status,
        before.account_id,
        before.state_hash,
        verifier,
        before.updated_at,
        id,
        version,
        state_hash,
        from,
    )
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Consumes a state: the first caller gets the verifier, every later one gets `None`, so a
/// replayed callback can never cause a second exchange.
pub async fn claim_state(
    db: &Db,
    state_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Claim>, sqlx::Error> {
    let now = to_db(now);
    let from = Transition::Approve.from_json();
    let row = sqlx::query!(
        r#"UPDATE auth_requests
           SET state_hash = NULL, updated_at = ?1, version = version + 1
           WHERE state_hash = ?2 AND expires_at > ?1 AND pkce_verifier IS NOT NULL
             AND status IN (SELECT value FROM json_each(?3))
           RETURNING id AS "id!: uuid::fmt::Hyphenated", version AS "version!: i64",
                     pkce_verifier AS "pkce_verifier!", scopes AS "scopes!""#,
        now,
        state_hash,
        from,
    )
    .fetch_optional(&db.write)
    .await?;
    Ok(row.map(|r| Claim {
        id: r.id.into_uuid(),
        version: r.version,
        pkce_verifier: SecretString::from(r.pkce_verifier),
        scopes: Scopes::from_db(&r.scopes),
    }))
}

/// Approves a claimed request and stores its tokens, in one transaction. `false` when the
/// request moved on (re-selected, denied, cancelled, expired) during the exchange.
pub async fn approve(
    db: &Db,
    id: Uuid,
    version: i64,
    bundle: &TokenBundle,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.write.begin().await?;
    let hyphenated = id.hyphenated();
    let now = to_db(now);
    let from = Transition::Approve.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'approved', pkce_verifier = NULL, error = NULL, updated_at = ?1,
             version = version + 1
         WHERE id = ?2 AND version = ?3 AND expires_at > ?1
           AND status IN (SELECT value FROM json_each(?4))",
        now,
        hyphenated,
        version,
        from,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tokens::insert(&mut tx, id, bundle).await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks a claimed request as failed, unless it moved on meanwhile.
pub async fn fail_claimed(
    db: &Db,
    id: Uuid,
    version: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let id = id.hyphenated();
    let now = to_db(now);
    let from = Transition::Fail.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'error', error = ?1, pkce_verifier = NULL, state_hash = NULL,
             updated_at = ?2, version = version + 1
         WHERE id = ?3 AND version = ?4 AND status IN (SELECT value FROM json_each(?5))",
        error,
        now,
        id,
        version,
        from,
    )
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the request waiting for `state_hash` with the provider's answer (`Deny` or `Fail`),
/// consuming the state. Returns the request's id when there was one.
pub async fn finish_by_state(
    db: &Db,
    state_hash: &[u8],
    transition: Transition,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let to = transition.to().map(Status::as_str);
    let now = to_db(now);
    let from = transition.from_json();
    let id = sqlx::query_scalar!(
        r#"UPDATE auth_requests
           SET status = ?1, error = ?2, state_hash = NULL, pkce_verifier = NULL,
               updated_at = ?3, version = version + 1
           WHERE state_hash = ?4 AND expires_at > ?3
             AND status IN (SELECT value FROM json_each(?5))
           RETURNING id AS "id!: uuid::fmt::Hyphenated""#,
        to,
        error,
        now,
        state_hash,
        from,
    )
    .fetch_optional(&db.write)
    .await?;
    Ok(id.map(|h| h.into_uuid()))
}

/// Applies an id-addressed terminal transition (deny, cancel) to an open, unexpired request.
pub async fn transition(
    db: &Db,
    id: Uuid,
    transition: Transition,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let id = id.hyphenated();
    let to = transition.to().map(Status::as_str);
    let now = to_db(now);
    let from = transition.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = ?1, state_hash = NULL, pkce_verifier = NULL, updated_at = ?2,
             version = version + 1
         WHERE id = ?3 AND expires_at > ?2 AND status IN (SELECT value FROM json_each(?4))",
        to,
        now,
        id,
        from,
    )
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Expires every open request whose deadline has passed, in one indexed statement.
///
/// The statuses are spelled out instead of bound from [`Transition::Expire`] because SQLite
/// can only use the partial index `auth_requests_open_by_expiry` (or seek the status index)
/// when the statuses are literals; a unit test keeps the two lists equal, and an API test
/// checks that the plan never scans the whole table.
pub async fn expire_due(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let now = to_db(now);
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'expired', state_hash = NULL, pkce_verifier = NULL, updated_at = ?1,
             version = version + 1
         WHERE status IN ('pending', 'in_progress') AND expires_at <= ?1",
        now,
    )
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reapers_literal_status_list_matches_the_expire_transition() {
        assert_eq!(
            Transition::Expire.from(),
            &[Status::Pending, Status::InProgress]
        );
    }
}
