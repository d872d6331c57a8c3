//! Keeping the stored secrets and the configured keys in agreement.
//!
//! [`check`] runs at startup, before anything is served: every key id found in the
//! database must be a configured key, and one value per key id must actually open. A wrong
//! key fails the start with a message naming the setting, never later with half the rows
//! unreadable. [`rekey`] re-seals every value with the current key (and seals plaintext
//! left from before a key was set), one row at a time with compare-and-swap updates, so it
//! is safe while the service runs.

use secrecy::ExposeSecret;
use uuid::Uuid;

use super::pg::store::keys::Column;
use super::StoreError;
use super::{pg, Backend, Db, ACCESS_TOKEN, PKCE_VERIFIER, REFRESH_TOKEN};
use crate::crypto::key_id_of;

/// Rows read per batch while re-sealing.
const BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("the database holds encrypted tokens but no storage.encryption_key is set; set the key they were sealed with")]
    NoKey,
    #[error("the database holds tokens sealed with key id {0}, which is neither storage.encryption_key nor in storage.previous_keys; configure that key (as storage.previous_keys after a rotation)")]
    UnknownKey(String),
    #[error("a stored value sealed with key id {0} does not open: {1}")]
    DoesNotOpen(String, String),
    #[error("the database holds {0} values stored in plaintext and storage.require_sealed is on (the default with a key); run `claude-auth-router rekey` to seal them first, or set storage.require_sealed = false")]
    Unsealed(i64),
    #[error(transparent)]
    Database(#[from] StoreError),
}

/// What [`check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyReport {
    /// Key ids in use, each verified to open.
    pub key_ids: Vec<String>,
    /// Values still stored in plaintext.
    pub plaintext: i64,
}

/// One sealed value per key id in use, with where it lives.
async fn samples(db: &Db) -> Result<Vec<(&'static str, Uuid, String)>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        let rows = pg::store::keys::samples(pool).await?;
        return Ok(rows
            .into_iter()
            .map(|(column, id, value)| (column_name(column), id, value))
            .collect());
    }
    let mut out = Vec::new();
    let access = sqlx::query!(
        r#"SELECT request_id AS "id: uuid::fmt::Hyphenated", access_token AS value FROM token_bundles
           WHERE rowid IN (SELECT MIN(rowid) FROM token_bundles WHERE access_token LIKE 'enc:v1:%'
                           GROUP BY substr(access_token, 8, 8))"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    out.extend(
        access
            .into_iter()
            .map(|r| (ACCESS_TOKEN, r.id.into_uuid(), r.value)),
    );
    let refresh = sqlx::query!(
        r#"SELECT request_id AS "id: uuid::fmt::Hyphenated", refresh_token AS "value!" FROM token_bundles
           WHERE rowid IN (SELECT MIN(rowid) FROM token_bundles WHERE refresh_token LIKE 'enc:v1:%'
                           GROUP BY substr(refresh_token, 8, 8))"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    out.extend(
        refresh
            .into_iter()
            .map(|r| (REFRESH_TOKEN, r.id.into_uuid(), r.value)),
    );
    let verifiers = sqlx::query!(
        r#"SELECT id AS "id: uuid::fmt::Hyphenated", pkce_verifier AS "value!" FROM auth_requests
           WHERE rowid IN (SELECT MIN(rowid) FROM auth_requests WHERE pkce_verifier LIKE 'enc:v1:%'
                           GROUP BY substr(pkce_verifier, 8, 8))"#
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    out.extend(
        verifiers
            .into_iter()
            .map(|r| (PKCE_VERIFIER, r.id.into_uuid(), r.value)),
    );
    Ok(out)
}

/// Verifies that the configured keys open everything stored.
pub async fn check(db: &Db) -> Result<KeyReport, KeyCheckError> {
    let mut report = KeyReport::default();
    for (column, id, value) in samples(db).await? {
        let key_id = key_id_of(&value).unwrap_or_default().to_owned();
        if !db.sealer.is_enabled() {
            return Err(KeyCheckError::NoKey);
        }
        if !db.sealer.knows(&key_id) {
            return Err(KeyCheckError::UnknownKey(key_id));
        }
        db.open(column, id, &value)
            .map_err(|e| KeyCheckError::DoesNotOpen(key_id.clone(), e.to_string()))?;
        if !report.key_ids.contains(&key_id) {
            report.key_ids.push(key_id);
        }
    }
    if let Backend::Postgres(pool) = &db.backend {
        report.plaintext = pg::store::keys::plaintext(pool)
            .await
            .map_err(StoreError::from)?;
        return Ok(report);
    }
    report.plaintext = sqlx::query_scalar!(
        r#"SELECT (SELECT COUNT(*) FROM token_bundles WHERE access_token NOT LIKE 'enc:v1:%')
                + (SELECT COUNT(*) FROM token_bundles WHERE refresh_token NOT LIKE 'enc:v1:%')
                + (SELECT COUNT(*) FROM auth_requests WHERE pkce_verifier NOT LIKE 'enc:v1:%')
           AS "n!: i64""#
    )
    .fetch_one(&db.sqlite()?.read)
    .await
    .map_err(StoreError::from)?;
    Ok(report)
}

/// What [`rekey`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RekeyReport {
    pub resealed: u64,
    pub already_current: u64,
    /// Values that another writer changed between our read and our write (it sealed them
    /// with the current key itself).
    pub changed_meanwhile: u64,
}

impl RekeyReport {
    fn count(&mut self, outcome: Option<bool>) {
        match outcome {
            None => self.already_current += 1,
            Some(true) => self.resealed += 1,
            Some(false) => self.changed_meanwhile += 1,
        }
    }
}

/// Re-seals every stored secret with the current key.
pub async fn rekey(db: &Db) -> Result<RekeyReport, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return rekey_pg(db, pool).await;
    }
    let mut report = RekeyReport::default();
    let mut after = String::new();
    loop {
        let rows = sqlx::query!(
            r#"SELECT request_id AS "id: uuid::fmt::Hyphenated", access_token, refresh_token
               FROM token_bundles WHERE request_id > ? ORDER BY request_id LIMIT ?"#,
            after,
            BATCH,
        )
        .fetch_all(&db.sqlite()?.read)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id.to_string();
        for row in rows {
            let id = row.id.into_uuid();
            report.count(reseal(db, ACCESS_TOKEN, id, &row.access_token).await?);
            if let Some(refresh) = row.refresh_token {
                report.count(reseal(db, REFRESH_TOKEN, id, &refresh).await?);
            }
        }
    }
    let mut after = String::new();
    loop {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: uuid::fmt::Hyphenated", pkce_verifier AS "pkce_verifier!"
               FROM auth_requests WHERE pkce_verifier IS NOT NULL AND id > ? ORDER BY id LIMIT ?"#,
            after,
            BATCH,
        )
        .fetch_all(&db.sqlite()?.read)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.id.to_string();
        for row in rows {
            report.count(reseal(db, PKCE_VERIFIER, row.id.into_uuid(), &row.pkce_verifier).await?);
        }
    }
    Ok(report)
}

/// Re-seals one stored value with the current key: `None` when it already was, else
/// whether our compare-and-swap write landed.
async fn reseal(db: &Db, column: &str, id: Uuid, old: &str) -> Result<Option<bool>, StoreError> {
    if db.sealer.is_current(old) {
        return Ok(None);
    }
    let plain = db
        .sealer
        .open_any(old, &crate::crypto::aad(column, id))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let new = db.seal(column, id, plain.expose_secret());
    if let Backend::Postgres(pool) = &db.backend {
        let column = match column {
            ACCESS_TOKEN => Column::AccessToken,
            REFRESH_TOKEN => Column::RefreshToken,
            _ => Column::PkceVerifier,
        };
        return Ok(Some(
            pg::store::keys::reseal(pool, column, id, old, &new).await?,
        ));
    }
    let hyphenated = id.hyphenated();
    let done = match column {
        ACCESS_TOKEN => sqlx::query!(
            "UPDATE token_bundles SET access_token = ?1 WHERE request_id = ?2 AND access_token = ?3",
            new,
            hyphenated,
            old,
        )
        .execute(&db.sqlite()?.write)
        .await?,
        REFRESH_TOKEN => sqlx::query!(
            "UPDATE token_bundles SET refresh_token = ?1 WHERE request_id = ?2 AND refresh_token = ?3",
            new,
            hyphenated,
            old,
        )
        .execute(&db.sqlite()?.write)
        .await?,
        _ => sqlx::query!(
            "UPDATE auth_requests SET pkce_verifier = ?1 WHERE id = ?2 AND pkce_verifier = ?3",
            new,
            hyphenated,
            old,
        )
        .execute(&db.sqlite()?.write)
        .await?,
    };
    Ok(Some(done.rows_affected() == 1))
}

/// Where a PostgreSQL column's values are sealed for (their associated data).
fn column_name(column: Column) -> &'static str {
    match column {
        Column::AccessToken => ACCESS_TOKEN,
        Column::RefreshToken => REFRESH_TOKEN,
        Column::PkceVerifier => PKCE_VERIFIER,
    }
}

/// [`rekey`] on PostgreSQL: the same pages and the same compare-and-swap per value.
async fn rekey_pg(db: &Db, pool: &sqlx::PgPool) -> Result<RekeyReport, StoreError> {
    let mut report = RekeyReport::default();
    let mut after = Uuid::nil();
    loop {
        let rows = pg::store::keys::bundles_after(pool, after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, access, refresh) in rows {
            report.count(reseal(db, ACCESS_TOKEN, id, &access).await?);
            if let Some(refresh) = refresh {
                report.count(reseal(db, REFRESH_TOKEN, id, &refresh).await?);
            }
        }
    }
    let mut after = Uuid::nil();
    loop {
        let rows = pg::store::keys::verifiers_after(pool, after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, verifier) in rows {
            report.count(reseal(db, PKCE_VERIFIER, id, &verifier).await?);
        }
    }
    Ok(report)
}
