//! The router's PostgreSQL store, statement by statement (issue 24, in progress): each
//! statement is checked at compile time against this crate's own `.sqlx/`, prepared against
//! PostgreSQL. The router's `db` module will dispatch to it for `postgres://` URLs; until then
//! the router refuses them at startup.
//!
//! Rows come back as plain values (ids, times, strings): the router maps them to its domain
//! types, so this crate never needs one of them, and never compiles against SQLite.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod clients;
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
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let won = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "won!""#,
        REAPER_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(won.then_some(tx))
}

/// Whether the server answers a query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(pool)
        .await?;
    Ok(())
}

/// A pool on `url`, migrated.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
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
