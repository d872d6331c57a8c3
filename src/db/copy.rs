//! `copy-db`: everything in one store, copied into another, empty one: SQLite to PostgreSQL
//! when a team grows to several routers, and back when it scales down.
//!
//! The source is read in one snapshot and never written (not even migrated); the target is
//! migrated and written in one transaction, so a failed copy leaves it empty. Sealed values
//! are copied as the text they are, so no key is needed and the target's router opens them
//! with the same keys. Refused: a SQLite source (or target) a router has open (its lock), a
//! target that holds rows, and stores whose schema is not this router's.

use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use super::lock::DbLock;
use super::pg::store::copy::{self as pg_copy, Image, TABLES};
use super::{copy_sqlite, is_postgres, pg, Sqlite, StoreError, SQLITE_MIGRATOR};

/// One side of a copy.
enum Side {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The row counts of each table, on both sides, after a copy.
#[derive(Debug)]
pub struct Counted {
    pub table: &'static str,
    pub from: i64,
    pub to: i64,
}

/// Copies everything from `from` into the empty `to`; the row counts of both sides.
pub async fn copy(from: &str, to: &str) -> anyhow::Result<Vec<Counted>> {
    let _from_lock = lock("--from", from)?;
    let _to_lock = lock("--to", to)?;
    let source = Side::source(from).await?;
    let target = Side::target(to).await?;
    source.check_schema("--from").await?;
    target.check_schema("--to").await?;
    let rows = target.counts().await?;
    let held: Vec<String> = TABLES
        .iter()
        .zip(&rows)
        .filter(|(table, n)| **n > 0 && **table != "router_settings")
        .map(|(table, n)| format!("{table}: {n}"))
        .collect();
    if !held.is_empty() {
        bail!(
            "--to already holds rows ({}): copy-db only copies into an empty database",
            held.join(", ")
        );
    }
    let image = source.read().await.context("reading --from")?;
    target.write(&image).await.context("writing --to")?;
    let (before, after) = (source.counts().await?, target.counts().await?);
    Ok(TABLES
        .iter()
        .zip(before.into_iter().zip(after))
        .map(|(table, (from, to))| Counted { table, from, to })
        .collect())
}

/// A SQLite file's router lock, held for the copy: a file a router has open is refused.
fn lock(flag: &str, url: &str) -> anyhow::Result<Option<DbLock>> {
    if is_postgres(url) {
        return Ok(None);
    }
    DbLock::acquire(url).with_context(|| format!("{flag}: the database is in use"))
}

impl Side {
    /// The source, as it is: opened read-only (SQLite) and not migrated.
    async fn source(url: &str) -> anyhow::Result<Self> {
        if is_postgres(url) {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .context("--from: cannot connect to PostgreSQL")?;
            return Ok(Side::Postgres(pool));
        }
        let options = SqliteConnectOptions::from_str(url)
            .context("--from: not a sqlite:// or postgres:// URL")?
            .read_only(true);
        if !options.get_filename().exists() {
            bail!(
                "--from: {} does not exist",
                options.get_filename().display()
            );
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .context("--from: cannot open the SQLite file")?;
        Ok(Side::Sqlite(pool))
    }

    /// The target, migrated to this router's schema (created, for a SQLite file).
    async fn target(url: &str) -> anyhow::Result<Self> {
        if is_postgres(url) {
            let pool = pg::connect(url, 2)
                .await
                .context("--to: cannot connect to and migrate PostgreSQL")?;
            return Ok(Side::Postgres(pool));
        }
        let sqlite = Sqlite::connect(url)
            .await
            .context("--to: cannot open and migrate the SQLite file")?;
        sqlite.read.close().await;
        Ok(Side::Sqlite(sqlite.write))
    }

    /// Refuses a store whose applied migrations are not exactly this router's tree.
    async fn check_schema(&self, flag: &str) -> anyhow::Result<()> {
        let (applied, expected) = match self {
            Side::Sqlite(pool) => (
                copy_sqlite::applied(pool).await?,
                versions(&SQLITE_MIGRATOR),
            ),
            Side::Postgres(pool) => (
                pg_copy::applied(pool).await.map_err(StoreError::from)?,
                versions(&pg::store::MIGRATOR),
            ),
        };
        if applied != expected {
            bail!(
                "{flag}: its schema is at migration {}, this router's is at {}: run this \
                 version of the router on it once (it migrates at startup), stop it, then copy",
                applied.last().map_or("none".into(), i64::to_string),
                expected.last().map_or("none".into(), i64::to_string),
            );
        }
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<i64>, StoreError> {
        match self {
            Side::Sqlite(pool) => copy_sqlite::counts(pool).await,
            Side::Postgres(pool) => Ok(pg_copy::counts(pool).await?),
        }
    }

    async fn read(&self) -> Result<Image, StoreError> {
        match self {
            Side::Sqlite(pool) => copy_sqlite::read(pool).await,
            Side::Postgres(pool) => Ok(pg_copy::read(pool).await?),
        }
    }

    async fn write(&self, image: &Image) -> Result<(), StoreError> {
        match self {
            Side::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                copy_sqlite::write(&mut tx, image).await?;
                Ok(tx.commit().await?)
            }
            Side::Postgres(pool) => {
                let mut tx = pg::begin(pool).await?;
                pg_copy::write(&mut tx, image).await?;
                Ok(tx.commit().await?)
            }
        }
    }
}

fn versions(migrator: &sqlx::migrate::Migrator) -> Vec<i64> {
    let mut versions: Vec<i64> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    versions.sort();
    versions
}
