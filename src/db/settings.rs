//! `router_settings`: values the router itself chooses once per database and keeps.

use rand::rngs::OsRng;
use rand::RngCore;

use super::Db;
use super::StoreError;

/// The salt of the console sessions' binding to the admin token
/// ([`crate::domain::secret::session_binding`]): made at the first start, kept after.
pub async fn session_salt(db: &Db) -> Result<Vec<u8>, StoreError> {
    let mut fresh = vec![0u8; 16];
    OsRng.fill_bytes(&mut fresh);
    if let super::Backend::Postgres(pool) = &db.backend {
        let store = super::pg::store::admin::setting_or_insert(pool, "session_salt", &fresh);
        return Ok(store.await?);
    }
    sqlx::query!(
        "INSERT INTO router_settings (name, value) VALUES ('session_salt', ?)
         ON CONFLICT (name) DO NOTHING",
        fresh
    )
    .execute(&db.sqlite()?.write)
    .await?;
    sqlx::query_scalar!("SELECT value FROM router_settings WHERE name = 'session_salt'")
        .fetch_one(&db.sqlite()?.write)
        .await
        .map_err(Into::into)
}
