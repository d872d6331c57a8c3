//! `clients`: enrolled clients. Each change and its `admin_events` row are one transaction.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::admin::admin_event;

/// A client's columns, its key's hash left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    pub id: Uuid,
    pub name: String,
    pub scopes: String,
    pub accounts: String,
    pub auto_approve: bool,
    pub max_token_lifetime_secs: i64,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A new client's columns (scopes and accounts space-separated).
pub struct NewClient<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: &'a str,
    pub accounts: &'a str,
    pub auto_approve: bool,
    pub max_token_lifetime_secs: i64,
}

/// Stores a new client with its trail row; `false` when the name is taken.
pub async fn insert(
    pool: &PgPool,
    c: &NewClient<'_>,
    now: DateTime<Utc>,
) -> Result<bool, crate::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!(
        "INSERT INTO clients (id, name, key_hash, scopes, accounts, auto_approve,
                              max_token_lifetime_secs, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
        c.id,
        c.name,
        c.key_hash,
        c.scopes,
        c.accounts,
        c.auto_approve,
        c.max_token_lifetime_secs,
        now,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let subject = format!("client:{}", c.id.hyphenated());
    let detail = format!("name {}", c.name);
    admin_event(&mut tx, now, &subject, "add", Some(&detail)).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn list(pool: &PgPool) -> Result<Vec<ClientRow>, crate::Error> {
    sqlx::query_as!(
        ClientRow,
        "SELECT id, name, scopes, accounts, auto_approve, max_token_lifetime_secs, disabled,
                created_at, last_used_at
         FROM clients ORDER BY name"
    )
    .fetch_all(pool)
    .await
    .map_err(crate::Error::from)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<ClientRow>, crate::Error> {
    sqlx::query_as!(
        ClientRow,
        "SELECT id, name, scopes, accounts, auto_approve, max_token_lifetime_secs, disabled,
                created_at, last_used_at
         FROM clients WHERE id = $1",
        id,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// The client whose key hashes to `key_hash`, disabled or not.
pub async fn find_by_key(
    pool: &PgPool,
    key_hash: &[u8],
) -> Result<Option<ClientRow>, crate::Error> {
    sqlx::query_as!(
        ClientRow,
        "SELECT id, name, scopes, accounts, auto_approve, max_token_lifetime_secs, disabled,
                created_at, last_used_at
         FROM clients WHERE key_hash = $1",
        key_hash,
    )
    .fetch_optional(pool)
    .await
    .map_err(crate::Error::from)
}

/// A change to one client's columns (`None`: keep).
pub enum Change<'a> {
    RotateKey(&'a [u8]),
    Disabled(bool),
    Update {
        scopes: Option<&'a str>,
        accounts: Option<&'a str>,
        auto_approve: Option<bool>,
        max_token_lifetime_secs: Option<i64>,
    },
}

/// Applies `change` to client `id` with its trail row (`action`); `false` when there is no
/// such client.
pub async fn change(
    pool: &PgPool,
    id: Uuid,
    change: Change<'_>,
    action: &str,
    now: DateTime<Utc>,
) -> Result<bool, crate::Error> {
    let mut tx = pool.begin().await?;
    let done = match change {
        Change::RotateKey(hash) => {
            sqlx::query!("UPDATE clients SET key_hash = $1 WHERE id = $2", hash, id)
                .execute(&mut *tx)
                .await?
        }
        Change::Disabled(disabled) => {
            sqlx::query!(
                "UPDATE clients SET disabled = $1 WHERE id = $2",
                disabled,
                id
            )
            .execute(&mut *tx)
            .await?
        }
        Change::Update {
            scopes,
            accounts,
            auto_approve,
            max_token_lifetime_secs,
        } => {
            sqlx::query!(
                "UPDATE clients SET scopes = COALESCE($1, scopes),
                     accounts = COALESCE($2, accounts), auto_approve = COALESCE($3, auto_approve),
                     max_token_lifetime_secs = COALESCE($4, max_token_lifetime_secs)
                 WHERE id = $5",
                scopes,
                accounts,
                auto_approve,
                max_token_lifetime_secs,
                id,
            )
            .execute(&mut *tx)
            .await?
        }
    };
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let subject = format!("client:{}", id.hyphenated());
    admin_event(&mut tx, now, &subject, action, None).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes client `id` with its trail row; its requests stay.
pub async fn delete(pool: &PgPool, id: Uuid, now: DateTime<Utc>) -> Result<bool, crate::Error> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!("DELETE FROM clients WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let subject = format!("client:{}", id.hyphenated());
    admin_event(&mut tx, now, &subject, "remove", None).await?;
    tx.commit().await?;
    Ok(true)
}
