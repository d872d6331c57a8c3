//! The sealed columns, for the router's key check and re-key: samples per key id, the
//! plaintext left, pages of values, and one compare-and-swap write per value.

use sqlx::PgPool;
use uuid::Uuid;

/// Which sealed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    AccessToken,
    RefreshToken,
    PkceVerifier,
}

/// One stored value per key id (the 8 characters after `enc:v1:`), per column.
pub async fn samples(pool: &PgPool) -> Result<Vec<(Column, Uuid, String)>, crate::Error> {
    let mut out = Vec::new();
    let access = sqlx::query!(
        r#"SELECT DISTINCT ON (substr(access_token, 8, 8)) request_id, access_token
           FROM token_bundles WHERE access_token LIKE 'enc:v1:%'
           ORDER BY substr(access_token, 8, 8), request_id"#
    )
    .fetch_all(pool)
    .await?;
    out.extend(
        access
            .into_iter()
            .map(|r| (Column::AccessToken, r.request_id, r.access_token)),
    );
    let refresh = sqlx::query!(
        r#"SELECT DISTINCT ON (substr(refresh_token, 8, 8)) request_id,
                  refresh_token AS "refresh_token!"
           FROM token_bundles WHERE refresh_token LIKE 'enc:v1:%'
           ORDER BY substr(refresh_token, 8, 8), request_id"#
    )
    .fetch_all(pool)
    .await?;
    out.extend(
        refresh
            .into_iter()
            .map(|r| (Column::RefreshToken, r.request_id, r.refresh_token)),
    );
    let verifiers = sqlx::query!(
        r#"SELECT DISTINCT ON (substr(pkce_verifier, 8, 8)) id,
                  pkce_verifier AS "pkce_verifier!"
           FROM auth_requests WHERE pkce_verifier LIKE 'enc:v1:%'
           ORDER BY substr(pkce_verifier, 8, 8), id"#
    )
    .fetch_all(pool)
    .await?;
    out.extend(
        verifiers
            .into_iter()
            .map(|r| (Column::PkceVerifier, r.id, r.pkce_verifier)),
    );
    Ok(out)
}

/// How many values are stored in plaintext.
pub async fn plaintext(pool: &PgPool) -> Result<i64, crate::Error> {
    sqlx::query_scalar!(
        r#"SELECT (SELECT COUNT(*) FROM token_bundles WHERE access_token NOT LIKE 'enc:v1:%')
                + (SELECT COUNT(*) FROM token_bundles WHERE refresh_token NOT LIKE 'enc:v1:%')
                + (SELECT COUNT(*) FROM auth_requests WHERE pkce_verifier NOT LIKE 'enc:v1:%')
           AS "n!""#
    )
    .fetch_one(pool)
    .await
    .map_err(crate::Error::from)
}

/// One page of bundles' tokens after `after`, by request id.
pub async fn bundles_after(
    pool: &PgPool,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, String, Option<String>)>, crate::Error> {
    let rows = sqlx::query!(
        "SELECT request_id, access_token, refresh_token FROM token_bundles
         WHERE request_id > $1 ORDER BY request_id LIMIT $2",
        after,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.request_id, r.access_token, r.refresh_token))
        .collect())
}

/// One page of stored verifiers after `after`, by request id.
pub async fn verifiers_after(
    pool: &PgPool,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, crate::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, pkce_verifier AS "pkce_verifier!" FROM auth_requests
           WHERE pkce_verifier IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"#,
        after,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.pkce_verifier)).collect())
}

/// Replaces `old` with `new` in `column` of row `id`, if it still holds `old`.
pub async fn reseal(
    pool: &PgPool,
    column: Column,
    id: Uuid,
    old: &str,
    new: &str,
) -> Result<bool, crate::Error> {
    let done = match column {
        Column::AccessToken => sqlx::query!(
            "UPDATE token_bundles SET access_token = $1 WHERE request_id = $2 AND access_token = $3",
            new,
            id,
            old,
        )
        .execute(pool)
        .await?,
        Column::RefreshToken => sqlx::query!(
            "UPDATE token_bundles SET refresh_token = $1 WHERE request_id = $2 AND refresh_token = $3",
            new,
            id,
            old,
        )
        .execute(pool)
        .await?,
        Column::PkceVerifier => sqlx::query!(
            "UPDATE auth_requests SET pkce_verifier = $1 WHERE id = $2 AND pkce_verifier = $3",
            new,
            id,
            old,
        )
        .execute(pool)
        .await?,
    };
    Ok(done.rows_affected() == 1)
}
