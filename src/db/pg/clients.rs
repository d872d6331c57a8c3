//! The PostgreSQL arms of [`crate::db::clients`].

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::store;
use crate::db::clients::{accounts_text, Change, Client, NewClient, Row};
use crate::db::StoreError;

/// Rows as [`Client`]s, through the one mapping the SQLite rows take.
pub fn clients(
    rows: impl IntoIterator<Item = store::clients::ClientRow>,
) -> Result<Vec<Client>, StoreError> {
    rows.into_iter()
        .map(|r| {
            Client::try_from(Row {
                id: r.id.hyphenated().to_string(),
                name: r.name,
                scopes: r.scopes,
                accounts: r.accounts,
                auto_approve: r.auto_approve,
                max_token_lifetime_secs: r.max_token_lifetime_secs,
                disabled: r.disabled,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
        })
        .collect()
}

pub async fn insert(
    pool: &PgPool,
    c: &NewClient<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (scopes, accounts) = (c.scopes.join(" "), accounts_text(c.accounts));
    let new = store::clients::NewClient {
        id: c.id,
        name: c.name,
        key_hash: c.key_hash,
        scopes: &scopes,
        accounts: &accounts,
        auto_approve: c.auto_approve,
        max_token_lifetime_secs: c.max_token_lifetime_secs,
    };
    Ok(store::clients::insert(pool, &new, now).await?)
}

pub async fn change(
    pool: &PgPool,
    id: Uuid,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let action = change.action();
    let (scopes, accounts);
    let change = match change {
        Change::RotateKey(hash) => store::clients::Change::RotateKey(hash),
        Change::Disabled(disabled) => store::clients::Change::Disabled(disabled),
        Change::Update {
            scopes: new_scopes,
            accounts: new_accounts,
            auto_approve,
            max_token_lifetime_secs,
        } => {
            scopes = new_scopes.map(|s| s.join(" "));
            accounts = new_accounts.map(accounts_text);
            store::clients::Change::Update {
                scopes: scopes.as_deref(),
                accounts: accounts.as_deref(),
                auto_approve,
                max_token_lifetime_secs,
            }
        }
    };
    Ok(store::clients::change(pool, id, change, action, now).await?)
}
