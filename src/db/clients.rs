//! `clients`: enrolled clients, and `admin_events`, the trail of every change to them (and
//! to accounts). Each change and its event row are one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::StoreError;
use super::{decode, pg, Backend, Db};
use crate::domain::time::to_db;

/// An enrolled client as listings show it: never its key or the key's hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Client {
    pub client_id: Uuid,
    pub name: String,
    /// Allowed scopes; empty: any the router allows.
    pub scopes: Vec<String>,
    /// Allowed account ids; empty: any.
    pub accounts: Vec<u32>,
    pub auto_approve: bool,
    /// The longest long-lived token it may ask for (seconds); 0: none.
    pub max_token_lifetime_secs: u64,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A client's columns as SQLite types them; PostgreSQL's rows are mapped through it too,
/// so there is one mapping to [`Client`].
pub(super) struct Row {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub accounts: String,
    pub auto_approve: bool,
    pub max_token_lifetime_secs: i64,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for Client {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Client {
            client_id: decode("id", &r.id)?,
            name: r.name,
            scopes: words(&r.scopes),
            accounts: r
                .accounts
                .split_whitespace()
                .map(|a| decode("accounts", a))
                .collect::<Result<_, _>>()?,
            auto_approve: r.auto_approve,
            max_token_lifetime_secs: u64::try_from(r.max_token_lifetime_secs)
                .map_err(|e| StoreError::Corrupt(format!("max_token_lifetime_secs: {e}")))?,
            disabled: r.disabled,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        })
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

pub(super) fn accounts_text(accounts: &[u32]) -> String {
    accounts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A change to a client or an account, with who made it.
pub async fn admin_event(
    conn: &mut SqliteConnection,
    at: DateTime<Utc>,
    subject: &str,
    action: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    let at = to_db(at);
    sqlx::query!(
        "INSERT INTO admin_events (at, actor, subject, action, detail) VALUES (?, 'admin', ?, ?, ?)",
        at,
        subject,
        action,
        detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What a new client is given.
pub struct NewClient<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: &'a [String],
    pub accounts: &'a [u32],
    pub auto_approve: bool,
    pub max_token_lifetime_secs: i64,
}

/// Stores a new client; `false` when the name is taken.
pub async fn insert(db: &Db, c: &NewClient<'_>, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::clients::insert(pool, c, now).await;
    }
    let mut tx = db.sqlite()?.begin().await?;
    let (id, at) = (c.id.hyphenated().to_string(), to_db(now));
    let (scopes, accounts) = (c.scopes.join(" "), accounts_text(c.accounts));
    let done = sqlx::query!(
        "INSERT INTO clients (id, name, key_hash, scopes, accounts, auto_approve,
                              max_token_lifetime_secs, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        id,
        c.name,
        c.key_hash,
        scopes,
        accounts,
        c.auto_approve,
        c.max_token_lifetime_secs,
        at,
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let subject = format!("client:{id}");
    let detail = format!("name {}", c.name);
    admin_event(&mut tx, now, &subject, "add", Some(&detail)).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn list(db: &Db) -> Result<Vec<Client>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::clients::clients(pg::store::clients::list(pool).await?);
    }
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, name, scopes, accounts, auto_approve AS "auto_approve: bool",
                  max_token_lifetime_secs, disabled AS "disabled: bool", created_at AS "created_at: DateTime<Utc>",
                  last_used_at AS "last_used_at: DateTime<Utc>"
           FROM clients ORDER BY name"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    rows.into_iter().map(Client::try_from).collect()
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Client>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let row = pg::store::clients::find(pool, id).await?;
        return pg::clients::clients(row).map(|c| c.into_iter().next());
    }
    let id = id.hyphenated().to_string();
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, name, scopes, accounts, auto_approve AS "auto_approve: bool",
                  max_token_lifetime_secs, disabled AS "disabled: bool", created_at AS "created_at: DateTime<Utc>",
                  last_used_at AS "last_used_at: DateTime<Utc>"
           FROM clients WHERE id = ?"#,
        id,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(Client::try_from).transpose()
}

/// The client whose key hashes to `key_hash`, disabled or not.
pub async fn find_by_key(db: &Db, key_hash: &[u8]) -> Result<Option<Client>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let row = pg::store::clients::find_by_key(pool, key_hash).await?;
        return pg::clients::clients(row).map(|c| c.into_iter().next());
    }
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, name, scopes, accounts, auto_approve AS "auto_approve: bool",
                  max_token_lifetime_secs, disabled AS "disabled: bool", created_at AS "created_at: DateTime<Utc>",
                  last_used_at AS "last_used_at: DateTime<Utc>"
           FROM clients WHERE key_hash = ?"#,
        key_hash,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(Client::try_from).transpose()
}

/// A change to one client: what to set, and how the trail names it.
pub enum Change<'a> {
    RotateKey(&'a [u8]),
    Disabled(bool),
    Update {
        scopes: Option<&'a [String]>,
        accounts: Option<&'a [u32]>,
        auto_approve: Option<bool>,
        max_token_lifetime_secs: Option<i64>,
    },
}

impl Change<'_> {
    /// How the trail names the change.
    pub fn action(&self) -> &'static str {
        match self {
            Change::RotateKey(_) => "rotate_key",
            Change::Disabled(true) => "disable",
            Change::Disabled(false) => "enable",
            Change::Update { .. } => "update",
        }
    }
}

/// Applies `change` to client `id` with its trail row; `false` when there is no such client.
pub async fn change(
    db: &Db,
    id: Uuid,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::clients::change(pool, id, change, now).await;
    }
    let mut tx = db.sqlite()?.begin().await?;
    let hyphenated = id.hyphenated().to_string();
    let action = change.action();
    let done = match change {
        Change::RotateKey(hash) => {
            sqlx::query!(
                "UPDATE clients SET key_hash = ? WHERE id = ?",
                hash,
                hyphenated
            )
            .execute(&mut *tx)
            .await?
        }
        Change::Disabled(disabled) => {
            sqlx::query!(
                "UPDATE clients SET disabled = ? WHERE id = ?",
                disabled,
                hyphenated
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
            let scopes = scopes.map(|s| s.join(" "));
            let accounts = accounts.map(accounts_text);
            sqlx::query!(
                "UPDATE clients SET scopes = COALESCE(?, scopes),
                         accounts = COALESCE(?, accounts), auto_approve = COALESCE(?, auto_approve),
                         max_token_lifetime_secs = COALESCE(?, max_token_lifetime_secs)
                     WHERE id = ?",
                scopes,
                accounts,
                auto_approve,
                max_token_lifetime_secs,
                hyphenated
            )
            .execute(&mut *tx)
            .await?
        }
    };
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    admin_event(&mut tx, now, &format!("client:{hyphenated}"), action, None).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes client `id`; its requests stay, with the name they were made under.
pub async fn delete(db: &Db, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(pg::store::clients::delete(pool, id, now).await?);
    }
    let mut tx = db.sqlite()?.begin().await?;
    let hyphenated = id.hyphenated().to_string();
    let done = sqlx::query!("DELETE FROM clients WHERE id = ?", hyphenated)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    admin_event(
        &mut tx,
        now,
        &format!("client:{hyphenated}"),
        "remove",
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
