//! `token_bundles`: the tokens of approved requests.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::Db;
use crate::domain::time::to_db;
use crate::domain::TokenBundle;

/// Stores the bundle of a request; called inside the transaction that approves it.
pub async fn insert(
    conn: &mut SqliteConnection,
    request_id: Uuid,
    bundle: &TokenBundle,
) -> Result<(), sqlx::Error> {
    let id = request_id.hyphenated();
    let access = bundle.access_token.expose_secret();
    let refresh = bundle.refresh_token.as_ref().map(|t| t.expose_secret());
    let expires_at = bundle.expires_at.map(to_db);
    let obtained_at = to_db(bundle.obtained_at);
    sqlx::query!(
        "INSERT INTO token_bundles
             (request_id, access_token, refresh_token, token_type, scope, expires_at, obtained_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        id,
        access,
        refresh,
        bundle.token_type,
        bundle.scope,
        expires_at,
        obtained_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(db: &Db, request_id: Uuid) -> Result<Option<TokenBundle>, sqlx::Error> {
    let id = request_id.hyphenated();
    let row = sqlx::query!(
        r#"SELECT access_token, refresh_token, token_type, scope,
                  expires_at AS "expires_at: DateTime<Utc>",
                  obtained_at AS "obtained_at: DateTime<Utc>"
           FROM token_bundles WHERE request_id = ?"#,
        id,
    )
    .fetch_optional(&db.read)
    .await?;
    Ok(row.map(|r| TokenBundle {
        access_token: SecretString::from(r.access_token),
        refresh_token: r.refresh_token.map(SecretString::from),
        token_type: r.token_type,
        scope: r.scope,
        expires_at: r.expires_at,
        obtained_at: r.obtained_at,
    }))
}
