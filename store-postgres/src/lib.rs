//! The router's PostgreSQL store, statement by statement (issue 24, in progress): each
//! statement is checked at compile time against this crate's own `.sqlx/`, prepared against
//! PostgreSQL. The router's `db` module will dispatch to it for `postgres://` URLs; until then
//! the router refuses them at startup.
//!
//! Rows come back as plain values (ids, times, strings): the router maps them to its domain
//! types, so this crate never needs one of them, and never compiles against SQLite.

pub mod requests;
pub mod testing;
pub mod tokens;

use sqlx::postgres::PgPoolOptions;
pub use sqlx::PgPool;

/// The schema tree, `migrations/postgres/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A pool on `url`, migrated.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
