//! The router's PostgreSQL store, statement by statement: each is checked at compile time
//! against this crate's own `.sqlx/`, prepared against PostgreSQL. The router's `db` module
//! dispatches to it for `postgres://` URLs.
//!
//! Rows come back as plain values (ids, times, strings): the router maps them to its domain
//! types, so this crate never needs one of them, and never compiles against SQLite.

/// A statement's failure. Its own type, so that the router can read it as PostgreSQL's: a
/// pool that times out waiting for a connection there means the server cannot be reached.
#[derive(Debug)]
pub struct Error(pub sqlx::Error);

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self(e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self(sqlx::Error::Migrate(Box::new(e)))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod clients;
pub mod copy;
pub mod deliveries;
pub mod keys;
pub mod requests;
pub mod testing;
pub mod tokens;
pub mod upkeep;

use sqlx::postgres::PgPoolOptions;
pub use sqlx::PgPool;

/// The schema tree, `migrations/postgres/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The key of the advisory lock a reaper pass holds: one router at a time runs the pass.
const REAPER_LOCK: i64 = 0x0061_7574_6872_6561; // "authrea"

/// Starts a reaper pass, unless another router's pass holds the lock: the transaction holds
/// it until it ends (commit, rollback, or the router dying), so if that router dies another
/// takes over at its next interval.
pub async fn begin_reaper_pass(
    pool: &PgPool,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, crate::Error> {
    let mut tx = pool.begin().await?;
    let won = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "won!""#,
        REAPER_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(won.then_some(tx))
}

/// The channel on which each router announces its commits to the others (`LISTEN`).
pub const CHANGES: &str = "auth_router_changes";

/// Announces `payload` on [`CHANGES`], in the caller's transaction: the server delivers it
/// when (and only if) the transaction commits.
pub async fn announce(conn: &mut sqlx::PgConnection, payload: &str) -> Result<(), crate::Error> {
    sqlx::query!("SELECT pg_notify($1, $2)", CHANGES, payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the server answers a query.
pub async fn ping(pool: &PgPool) -> Result<(), crate::Error> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(pool)
        .await?;
    Ok(())
}

/// A pool of `max_connections` on `url`, migrated.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, crate::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        // A server that refuses connections is retried until this passes: an API call then
        // fails in seconds (the router answers 503 `unavailable`), not at its own timeout.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_reaper_pass_at_a_time_and_the_next_once_it_ends() {
        let pool = testing::scratch_database().await;
        MIGRATOR.run(&pool).await.unwrap();
        let other = PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();

        let first = begin_reaper_pass(&pool)
            .await
            .unwrap()
            .expect("the first pass runs");
        assert!(
            begin_reaper_pass(&other).await.unwrap().is_none(),
            "another router's pass waits for its next interval"
        );
        // The holder dies: its connections close with its transaction uncommitted.
        drop(first);
        pool.close().await;
        // Another router takes over (within 5 s).
        let next = testing::eventually(|| async { begin_reaper_pass(&other).await.unwrap() }).await;
        drop(next);
    }
}
