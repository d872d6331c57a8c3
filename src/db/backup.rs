//! A consistent copy of the database, for the `backup` command: SQLite's `VACUUM INTO` reads
//! one snapshot while the service keeps writing, and the copy is checked before it counts.

use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Copies the database at `database_url` into the (existing, empty) file `out`, checks the
/// copy's integrity, and returns how many requests and token bundles it holds.
pub async fn copy_to(database_url: &str, out: &Path) -> anyhow::Result<(i64, i64)> {
    let source: SqliteConnectOptions = database_url.parse().context("database_url")?;
    let mut conn = source
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot open database_url {database_url}"))?;
    let target = out.to_str().context("the backup path must be UTF-8")?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .context("VACUUM INTO")?;
    conn.close().await?;
    let mut copy = SqliteConnectOptions::new()
        .filename(out)
        .read_only(true)
        .connect()
        .await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await?;
    anyhow::ensure!(
        check == "ok",
        "the backup failed its integrity check: {check}"
    );
    let requests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_requests")
        .fetch_one(&mut copy)
        .await?;
    let bundles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM token_bundles")
        .fetch_one(&mut copy)
        .await?;
    copy.close().await?;
    Ok((requests, bundles))
}
