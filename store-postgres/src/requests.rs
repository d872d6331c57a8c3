//! `auth_requests`: storing a request with its audit row, reading one, and expiring the due
//! ones. Every change is one conditional write in one transaction.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A request to store, with the audit row of its create.
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub client_name: &'a str,
    pub hostname: &'a str,
    /// Space-separated, as OAuth's `scope` parameter.
    pub scopes: &'a str,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub poll_token_hash: &'a [u8],
    pub peer_addr: Option<&'a str>,
    pub client_id: Option<Uuid>,
    pub token_lifetime_secs: Option<i64>,
    pub actor: &'a str,
    pub detail: Option<&'a str>,
}

/// A stored request, as plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: Uuid,
    pub client_id: Option<Uuid>,
    pub client_name: String,
    pub hostname: String,
    pub scopes: String,
    pub status: String,
    pub account_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub poll_token_hash: Vec<u8>,
    pub token_lifetime_secs: Option<i64>,
}

/// Stores `new` as `pending`, with its `create` audit row, in the caller's transaction; its
/// enrolled client (if any) was last used then.
pub async fn insert(conn: &mut PgConnection, new: &NewRequest<'_>) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO auth_requests
             (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at,
              poll_token_hash, peer_addr, client_id, token_lifetime_secs)
         VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6, $7, $8, $9, $10)",
        new.id,
        new.client_name,
        new.hostname,
        new.scopes,
        new.created_at,
        new.expires_at,
        new.poll_token_hash,
        new.peer_addr,
        new.client_id,
        new.token_lifetime_secs,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         VALUES ($1, $2, $3, 'create', NULL, 'pending', $4)",
        new.id,
        new.created_at,
        new.actor,
        new.detail,
    )
    .execute(&mut *conn)
    .await?;
    if let Some(client) = new.client_id {
        sqlx::query!(
            "UPDATE clients SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            client,
            new.created_at,
        )
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Whose open requests a limit counts: an enrolled client's, or (unverified) a hostname's.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Client(Uuid),
    Hostname(&'a str),
}

/// What became of a create under its owner's open-request limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created,
    /// The owner has `max_open` open requests; the soonest of them expires then.
    TooManyOpen {
        next_expiry: DateTime<Utc>,
    },
}

/// Stores `new` unless its owner already has `max_open` (> 0) open requests, exactly, however
/// many routers create at once: a transaction-scoped advisory lock on the owner serializes
/// the count and the insert across every connection to the database.
///
/// In the caller's transaction, which holds the lock until it ends: commit it when
/// [`Inserted::Created`].
pub async fn insert_within_limit(
    tx: &mut PgConnection,
    new: &NewRequest<'_>,
    owner: Owner<'_>,
    max_open: i64,
) -> Result<Inserted, crate::Error> {
    let key = match owner {
        Owner::Client(id) => format!("client:{id}"),
        Owner::Hostname(name) => format!("hostname:{name}"),
    };
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
        .execute(&mut *tx)
        .await?;
    let (client, hostname) = match owner {
        Owner::Client(id) => (Some(id), None),
        Owner::Hostname(name) => (None, Some(name)),
    };
    let open = sqlx::query!(
        r#"SELECT COUNT(*) AS "open!", MIN(expires_at) AS soonest FROM auth_requests
           WHERE status IN ('pending', 'in_progress') AND expires_at > $1
             AND (client_id = $2 OR (client_id IS NULL AND hostname = $3))"#,
        new.created_at,
        client,
        hostname,
    )
    .fetch_one(&mut *tx)
    .await?;
    if open.open >= max_open {
        return Ok(Inserted::TooManyOpen {
            next_expiry: open.soonest.unwrap_or(new.expires_at),
        });
    }
    insert(tx, new).await?;
    Ok(Inserted::Created)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<RequestRow>, crate::Error> {
    sqlx::query_as!(
        RequestRow,
        "SELECT id, client_id, client_name, hostname, scopes, status, account_id, error,
                created_at, updated_at, expires_at, poll_token_hash, token_lifetime_secs
         FROM auth_requests WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// A request's status, inside a write transaction (for the audit row's `from_status`).
pub async fn status_of(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, crate::Error> {
    sqlx::query_scalar!("SELECT status FROM auth_requests WHERE id = $1", id)
        .fetch_optional(conn)
        .await
        .map_err(crate::Error::from)
}

/// A request's public fields, as an event's body shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub client_name: String,
    pub hostname: String,
    pub scopes: String,
    pub status: String,
    pub account_id: Option<i64>,
    pub error: Option<String>,
}

pub async fn snapshot(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SnapshotRow>, crate::Error> {
    sqlx::query_as!(
        SnapshotRow,
        "SELECT client_name, hostname, scopes, status, account_id, error
         FROM auth_requests WHERE id = $1",
        id,
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// A row of the `request_listing` view: a request with whose tokens it got.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRow {
    pub id: Uuid,
    pub client_id: Option<Uuid>,
    pub client_name: String,
    pub hostname: String,
    pub scopes: String,
    pub status: String,
    pub account_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub peer_addr: Option<String>,
    pub account_email: Option<String>,
    pub organization_name: Option<String>,
    pub token_lifetime_secs: Option<i64>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// Newest first, optionally of one status.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<ListRow>, crate::Error> {
    sqlx::query_as!(
        ListRow,
        r#"SELECT id AS "id!", client_id, client_name AS "client_name!", hostname AS "hostname!",
                  scopes AS "scopes!", status AS "status!", account_id, error,
                  created_at AS "created_at!", updated_at AS "updated_at!",
                  expires_at AS "expires_at!", peer_addr, account_email, organization_name,
                  token_lifetime_secs, refresh_expires_at
           FROM request_listing WHERE $1::text IS NULL OR status = $1
           ORDER BY created_at DESC, id DESC LIMIT $2"#,
        status,
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// Open requests (pending, in progress), oldest first: what waits for an operator.
pub async fn list_open(pool: &PgPool, limit: i64) -> Result<Vec<ListRow>, crate::Error> {
    sqlx::query_as!(
        ListRow,
        r#"SELECT id AS "id!", client_id, client_name AS "client_name!", hostname AS "hostname!",
                  scopes AS "scopes!", status AS "status!", account_id, error,
                  created_at AS "created_at!", updated_at AS "updated_at!",
                  expires_at AS "expires_at!", peer_addr, account_email, organization_name,
                  token_lifetime_secs, refresh_expires_at
           FROM request_listing WHERE status IN ('pending', 'in_progress')
           ORDER BY created_at ASC, id ASC LIMIT $1"#,
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// Finished requests, most recently changed first.
pub async fn list_finished(pool: &PgPool, limit: i64) -> Result<Vec<ListRow>, crate::Error> {
    sqlx::query_as!(
        ListRow,
        r#"SELECT id AS "id!", client_id, client_name AS "client_name!", hostname AS "hostname!",
                  scopes AS "scopes!", status AS "status!", account_id, error,
                  created_at AS "created_at!", updated_at AS "updated_at!",
                  expires_at AS "expires_at!", peer_addr, account_email, organization_name,
                  token_lifetime_secs, refresh_expires_at
           FROM request_listing WHERE status NOT IN ('pending', 'in_progress')
           ORDER BY updated_at DESC, id DESC LIMIT $1"#,
        limit,
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

/// How many requests there are in each status.
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, crate::Error> {
    let rows =
        sqlx::query!(r#"SELECT status, COUNT(*) AS "n!" FROM auth_requests GROUP BY status"#)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

/// The flow columns of a request, read before a select-account.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub client_id: Option<Uuid>,
    pub status: String,
    pub account_id: Option<i64>,
    pub state_hash: Option<Vec<u8>>,
    pub pkce_verifier: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scopes: String,
    pub version: i64,
}

pub async fn find_flow(pool: &PgPool, id: Uuid) -> Result<Option<FlowRow>, crate::Error> {
    sqlx::query_as!(
        FlowRow,
        "SELECT client_id, status, account_id, state_hash, pkce_verifier, updated_at,
                expires_at, scopes, version
         FROM auth_requests WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// Starts a login (`in_progress`, with its account, state and sealed verifier) if the row
/// is still at `version`, open, and in one of `from`. Returns the new version.
#[allow(clippy::too_many_arguments)]
pub async fn start_login(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    account_id: i64,
    state_hash: &[u8],
    pkce_verifier: &str,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<Option<i64>, crate::Error> {
    sqlx::query_scalar!(
        "UPDATE auth_requests
         SET status = 'in_progress', account_id = $1, state_hash = $2, pkce_verifier = $3,
             updated_at = $4, version = version + 1
         WHERE id = $5 AND version = $6 AND expires_at > $4 AND status = ANY($7)
         RETURNING version",
        account_id,
        state_hash,
        pkce_verifier,
        now,
        id,
        version,
        from as &[&str],
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// The flow columns a failed login puts back.
pub struct FlowColumns<'a> {
    pub status: &'a str,
    pub account_id: Option<i64>,
    pub state_hash: Option<&'a [u8]>,
    pub pkce_verifier: Option<&'a str>,
    pub updated_at: DateTime<Utc>,
}

/// Puts back `before`, unless anything touched the row since the login that left it at
/// `version`, waiting for `state_hash`. Whether it did.
pub async fn restore(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    state_hash: &[u8],
    before: &FlowColumns<'_>,
    from: &[&str],
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = $1, account_id = $2, state_hash = $3, pkce_verifier = $4,
             updated_at = $5, version = version + 1
         WHERE id = $6 AND version = $7 AND state_hash = $8 AND status = ANY($9)",
        before.status,
        before.account_id,
        before.state_hash,
        before.pkce_verifier,
        before.updated_at,
        id,
        version,
        state_hash,
        from as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a consumed state (or a pasted code) hands the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRow {
    pub id: Uuid,
    pub version: i64,
    pub pkce_verifier: String,
    pub scopes: String,
    pub account_id: Option<i64>,
    pub token_lifetime_secs: Option<i64>,
}

/// Consumes the state whose hash is `state_hash`: the first caller gets the row, every
/// later one none.
pub async fn claim_state(
    conn: &mut PgConnection,
    state_hash: &[u8],
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<Option<ClaimRow>, crate::Error> {
    sqlx::query_as!(
        ClaimRow,
        r#"UPDATE auth_requests
           SET state_hash = NULL, updated_at = $1, version = version + 1
           WHERE state_hash = $2 AND expires_at > $1 AND pkce_verifier IS NOT NULL
             AND status = ANY($3)
           RETURNING id, version, pkce_verifier AS "pkce_verifier!", scopes, account_id,
                     token_lifetime_secs"#,
        now,
        state_hash,
        from as &[&str],
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// Consumes request `id`'s current login for a pasted code; when the pasted text carried a
/// state, it must be the current one.
pub async fn claim_for_code(
    conn: &mut PgConnection,
    id: Uuid,
    state_hash: Option<&[u8]>,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<Option<ClaimRow>, crate::Error> {
    sqlx::query_as!(
        ClaimRow,
        r#"UPDATE auth_requests
           SET state_hash = NULL, updated_at = $1, version = version + 1
           WHERE id = $2 AND state_hash IS NOT NULL
             AND ($3::bytea IS NULL OR state_hash = $3)
             AND expires_at > $1 AND pkce_verifier IS NOT NULL AND status = ANY($4)
           RETURNING id, version, pkce_verifier AS "pkce_verifier!", scopes, account_id,
                     token_lifetime_secs"#,
        now,
        id,
        state_hash,
        from as &[&str],
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// Approves a claimed request, whatever login an operator started since. Whether it did.
pub async fn approve(
    conn: &mut PgConnection,
    id: Uuid,
    account_id: Option<i64>,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'approved', account_id = $1, state_hash = NULL, pkce_verifier = NULL,
             error = NULL, updated_at = $2, version = version + 1
         WHERE id = $3 AND expires_at > $2 AND status = ANY($4)",
        account_id,
        now,
        id,
        from as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a claimed request in `error`, unless it moved on from `version`. Whether it did.
pub async fn fail_claimed(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    error: &str,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'error', error = $1, pkce_verifier = NULL, state_hash = NULL,
             updated_at = $2, version = version + 1
         WHERE id = $3 AND version = $4 AND status = ANY($5)",
        error,
        now,
        id,
        version,
        from as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the request waiting for `state_hash` in `to`, consuming the state. Its id.
pub async fn finish_by_state(
    conn: &mut PgConnection,
    state_hash: &[u8],
    to: &str,
    error: &str,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<Option<Uuid>, crate::Error> {
    sqlx::query_scalar!(
        "UPDATE auth_requests
         SET status = $1, error = $2, state_hash = NULL, pkce_verifier = NULL,
             updated_at = $3, version = version + 1
         WHERE state_hash = $4 AND expires_at > $3 AND status = ANY($5)
         RETURNING id",
        to,
        error,
        now,
        state_hash,
        from as &[&str],
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// Whether request `id` is pending, locking its row until the transaction ends.
pub async fn lock_pending(conn: &mut PgConnection, id: Uuid) -> Result<bool, crate::Error> {
    let row = sqlx::query_scalar!(
        "SELECT id FROM auth_requests WHERE id = $1 AND status = 'pending' FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Moves an open, unexpired request to `to` (deny, cancel). The status it left, if it did.
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    to: &str,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<Option<String>, crate::Error> {
    sqlx::query_scalar!(
        r#"WITH before AS (SELECT id, status FROM auth_requests WHERE id = $3 FOR UPDATE)
           UPDATE auth_requests r
           SET status = $1, state_hash = NULL, pkce_verifier = NULL, updated_at = $2,
               version = r.version + 1
           FROM before
           WHERE r.id = before.id AND r.expires_at > $2 AND r.status = ANY($4)
           RETURNING before.status AS "from_status!""#,
        to,
        now,
        id,
        from as &[&str],
    )
    .fetch_optional(conn)
    .await
    .map_err(crate::Error::from)
}

/// Revokes an approved request and deletes its tokens. Whether it did.
pub async fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    from: &[&str],
) -> Result<bool, crate::Error> {
    let done = sqlx::query!(
        "UPDATE auth_requests SET status = 'revoked', updated_at = $1, version = version + 1
         WHERE id = $2 AND status = ANY($3)",
        now,
        id,
        from as &[&str],
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query!("DELETE FROM token_bundles WHERE request_id = $1", id)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Expires at most `limit` open requests due at `now`, each with its `expire` audit row, in
/// one statement: the due rows are locked `FOR UPDATE SKIP LOCKED`, so routers expiring at
/// once take disjoint rows and each request expires exactly once. Returns their ids.
pub async fn expire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    actor: &str,
    action: &str,
) -> Result<Vec<Uuid>, crate::Error> {
    sqlx::query_scalar!(
        r#"WITH due AS (
               SELECT id, status FROM auth_requests
               WHERE status IN ('pending', 'in_progress') AND expires_at <= $1
               ORDER BY expires_at LIMIT $2
               FOR UPDATE SKIP LOCKED
           ), expired AS (
               UPDATE auth_requests r
               SET status = 'expired', state_hash = NULL, pkce_verifier = NULL,
                   updated_at = $1, version = r.version + 1
               FROM due WHERE r.id = due.id
               RETURNING r.id, due.status AS from_status
           ), audited AS (
               INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status)
               SELECT id, $1, $3, $4, from_status, 'expired' FROM expired
           )
           SELECT id AS "id!" FROM expired"#,
        now,
        limit,
        actor,
        action,
    )
    .fetch_all(conn)
    .await
    .map_err(crate::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::scratch_database;

    fn request(id: Uuid, expires_at: DateTime<Utc>) -> (Uuid, DateTime<Utc>) {
        (id, expires_at)
    }

    async fn store(pool: &PgPool, (id, expires_at): (Uuid, DateTime<Utc>)) {
        let now = Utc::now();
        let mut tx = pool.begin().await.unwrap();
        let new = NewRequest {
            id,
            client_name: "alice",
            hostname: "laptop",
            scopes: "user:inference",
            created_at: now,
            expires_at,
            poll_token_hash: &[0, 1, 2, 255],
            peer_addr: Some("127.0.0.1"),
            client_id: None,
            token_lifetime_secs: Some(86_400),
            actor: "client:laptop",
            detail: Some("from 127.0.0.1, unverified"),
        };
        insert(&mut tx, &new).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_stored_request_reads_back_as_written() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let id = Uuid::now_v7();
        let expires_at = Utc::now() + chrono::Duration::minutes(10);

        store(&pool, request(id, expires_at)).await;

        let row = find(&pool, id).await.unwrap().expect("stored");
        assert_eq!(row.status, "pending");
        assert_eq!(row.poll_token_hash, [0, 1, 2, 255]);
        assert_eq!(row.token_lifetime_secs, Some(86_400));
        assert_eq!(
            row.expires_at.timestamp_micros(),
            expires_at.timestamp_micros()
        );
        assert!(find(&pool, Uuid::now_v7()).await.unwrap().is_none());
    }

    /// Sixteen creates for one client at once, over two pools (two routers), against a limit
    /// of five: exactly five are stored.
    #[tokio::test]
    async fn the_open_request_limit_is_exact_under_racing_creates_on_two_pools() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let other = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let client = Uuid::now_v7();

        let creates: Vec<_> = (0..16)
            .map(|i| {
                let pool = if i % 2 == 0 {
                    pool.clone()
                } else {
                    other.clone()
                };
                tokio::spawn(async move {
                    let now = Utc::now();
                    let new = NewRequest {
                        id: Uuid::now_v7(),
                        client_name: "ci",
                        hostname: "runner",
                        scopes: "",
                        created_at: now,
                        expires_at: now + chrono::Duration::minutes(10),
                        poll_token_hash: &[1; 32],
                        peer_addr: None,
                        client_id: Some(client),
                        token_lifetime_secs: None,
                        actor: "client:runner",
                        detail: None,
                    };
                    let mut tx = pool.begin().await.unwrap();
                    let outcome = insert_within_limit(&mut tx, &new, Owner::Client(client), 5)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    outcome
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for create in creates {
            outcomes.push(create.await.unwrap());
        }

        let created = outcomes.iter().filter(|o| **o == Inserted::Created).count();
        assert_eq!(created, 5, "{outcomes:?}");
        let stored: i64 = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!" FROM auth_requests WHERE client_id = $1"#,
            client
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(stored, 5);
        let audit: i64 = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!" FROM audit_events WHERE action = 'create'"#
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(audit, 5, "a refused create writes nothing");
    }

    async fn expire(pool: &PgPool, now: DateTime<Utc>) -> Vec<Uuid> {
        let mut tx = pool.begin().await.unwrap();
        let ids = expire_due(&mut tx, now, 7, "reaper", "expire")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids
    }

    /// Two reapers (two routers) racing over the same due rows expire each exactly once.
    #[tokio::test]
    async fn racing_reapers_expire_each_due_request_exactly_once() {
        let pool = scratch_database().await;
        crate::MIGRATOR.run(&pool).await.unwrap();
        let past = Utc::now() - chrono::Duration::seconds(1);
        let future = Utc::now() + chrono::Duration::minutes(10);
        let due: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
        for id in &due {
            store(&pool, request(*id, past)).await;
        }
        let open = Uuid::now_v7();
        store(&pool, request(open, future)).await;

        let now = Utc::now();
        let reapers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { expire(&pool, now).await })
            })
            .collect();
        let mut expired = Vec::new();
        for reaper in reapers {
            expired.extend(reaper.await.unwrap());
        }
        while expired.len() < due.len() {
            let more = expire(&pool, now).await;
            assert!(!more.is_empty(), "due rows left unexpired");
            expired.extend(more);
        }

        expired.sort();
        let mut expected = due.clone();
        expected.sort();
        assert_eq!(
            expired, expected,
            "each due request once, the open one never"
        );
        assert_eq!(find(&pool, open).await.unwrap().unwrap().status, "pending");
        let audit_rows: i64 = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!" FROM audit_events WHERE action = 'expire'"#
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(audit_rows, due.len() as i64, "one audit row per expiry");
    }
}
