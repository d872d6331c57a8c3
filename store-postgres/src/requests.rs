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

/// Stores `new` as `pending`, with its `create` audit row, in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, new: &NewRequest<'_>) -> Result<(), sqlx::Error> {
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
    .execute(conn)
    .await?;
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
pub async fn insert_within_limit(
    pool: &PgPool,
    new: &NewRequest<'_>,
    owner: Owner<'_>,
    max_open: i64,
) -> Result<Inserted, sqlx::Error> {
    let mut tx = pool.begin().await?;
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
    insert(&mut tx, new).await?;
    tx.commit().await?;
    Ok(Inserted::Created)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<RequestRow>, sqlx::Error> {
    sqlx::query_as!(
        RequestRow,
        "SELECT id, client_id, client_name, hostname, scopes, status, account_id, error,
                created_at, updated_at, expires_at, poll_token_hash, token_lifetime_secs
         FROM auth_requests WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await
}

/// Expires at most `limit` open requests due at `now`, each with its `expire` audit row, in
/// one statement: the due rows are locked `FOR UPDATE SKIP LOCKED`, so routers expiring at
/// once take disjoint rows and each request expires exactly once. Returns their ids.
pub async fn expire_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
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
               SELECT id, $1, 'reaper', 'expire', from_status, 'expired' FROM expired
           )
           SELECT id AS "id!" FROM expired"#,
        now,
        limit,
    )
    .fetch_all(pool)
    .await
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
                    insert_within_limit(&pool, &new, Owner::Client(client), 5)
                        .await
                        .unwrap()
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
                tokio::spawn(async move { expire_due(&pool, now, 7).await.unwrap() })
            })
            .collect();
        let mut expired = Vec::new();
        for reaper in reapers {
            expired.extend(reaper.await.unwrap());
        }
        while expired.len() < due.len() {
            let more = expire_due(&pool, now, 7).await.unwrap();
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
