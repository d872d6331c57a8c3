//! The store: one small function per statement in the submodules, for either backend.
//!
//! [`Db`] holds SQLite's pools or a PostgreSQL pool ([`Backend`]). Every function matches on
//! it once, at its top: the SQLite statement is written here, the PostgreSQL one in the
//! `claude-auth-router-postgres` crate (checked against its own `.sqlx/`), whose plain rows
//! [`pg`] maps to the same domain values. Callers never see which backend answered.
//!
//! SQLite: two pools over one file. All writes go through a pool of exactly one connection, so
//! writers queue in the process instead of spinning in SQLite's busy handler, and a write
//! transaction never fails to upgrade its lock. Reads use a pool of read-only connections,
//! which WAL lets run beside the writer. The busy timeout still matters for writers outside
//! the process: an admin's `sqlite3` shell or a backup.
//!
//! Reads of one row use `fetch_all`, not `fetch_optional`: sqlx-sqlite resets a statement
//! that was not stepped to its end only later, on its worker thread, and until then the
//! statement keeps its read transaction open, so the connection's next read can see a
//! snapshot from before a write that already committed (sqlx issue #2543). Stepping to the
//! end finishes the statement before the answer comes back, so a read that follows a commit
//! (a long poll woken by it, a request after a key rotation) sees it.

pub mod accounts;
pub mod admin_events;
pub mod audit;
pub mod backup;
pub mod batch;
pub mod clients;
pub mod commit;
#[cfg(test)]
mod conformance;
pub mod copy;
mod copy_sqlite;
pub mod deliveries;
mod error;
pub mod keys;
pub mod lock;
mod pg;
pub mod requests;
pub mod retention;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod usage;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::crypto::{aad, Sealer};

pub use error::StoreError;

/// How long a statement waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a handler waits for a pooled connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often, and how far apart, [`Db::scrub`] tries its checkpoint: half a second at most.
const SCRUB_ATTEMPTS: u32 = 20;
const SCRUB_RETRY: Duration = Duration::from_millis(25);
/// Readers: enough for the 2-core machines this runs on, where SQLite reads are CPU-bound.
const READ_CONNECTIONS: u32 = 8;
/// Each reader's page cache, in KiB (SQLite's default is 2,000). The status poll reads
/// through the process's own cache, so readers mostly fetch single rows by id, and eight
/// default caches filled by a burst of 10,000 first polls were 19 MB of the long-poll
/// benchmark's peak. The writer keeps the default: creates need the indexes' pages hot.
const READER_CACHE_KIB: u32 = 256;

/// Where each sealed secret lives, for the associated data that binds it to its place.
pub const ACCESS_TOKEN: &str = "token_bundles.access_token";
pub const REFRESH_TOKEN: &str = "token_bundles.refresh_token";
pub const PKCE_VERIFIER: &str = "auth_requests.pkce_verifier";

#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
    /// Seals tokens and verifiers on the way in and opens them on the way out.
    sealer: Arc<Sealer>,
    /// What the layer above does around commits: renders webhook rows, and applies what
    /// follows a commit ([`commit::Hooks`]).
    hooks: Arc<dyn commit::Hooks>,
    /// This router among the others on one PostgreSQL database: it ignores its own change
    /// announcements ([`pg::changes`]).
    origin: Uuid,
}

/// A reaper pass's turn ([`Db::reaper_turn`]); dropping it ends the turn.
#[must_use]
pub struct ReaperTurn(#[allow(dead_code)] Option<sqlx::Transaction<'static, sqlx::Postgres>>);

/// The SQLite schema tree, `migrations/sqlite/`.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Which database a [`Db`] stores in.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(sqlx::PgPool),
}

/// SQLite's two pools over one file: reads beside the one writer.
#[derive(Debug, Clone)]
struct Sqlite {
    read: SqlitePool,
    write: SqlitePool,
}

/// How many connections a router keeps to PostgreSQL, for every statement.
const POSTGRES_CONNECTIONS: u32 = 16;

impl std::fmt::Debug for dyn commit::Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

impl Db {
    /// Opens (creating when missing) and migrates the database at `url`, storing secrets in
    /// plaintext. See [`Db::connect_sealed`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_sealed(url, Sealer::plaintext()).await
    }

    /// Opens and migrates the database, sealing secrets with `sealer`: PostgreSQL for a
    /// `postgres://` (or `postgresql://`) URL, SQLite otherwise. Call [`keys::check`] next,
    /// before serving anything.
    pub async fn connect_sealed(url: &str, sealer: Sealer) -> Result<Self, StoreError> {
        let backend = if is_postgres(url) {
            Backend::Postgres(pg::connect(url, POSTGRES_CONNECTIONS).await?)
        } else {
            Backend::Sqlite(Sqlite::connect(url).await?)
        };
        Ok(Self {
            backend,
            sealer: Arc::new(sealer),
            hooks: Arc::new(commit::NoHooks),
            origin: Uuid::new_v4(),
        })
    }

    /// This handle with the layer above's `hooks`: commits through it call them. Call it
    /// once at startup, before the handle is cloned.
    pub fn with_hooks(mut self, hooks: Arc<dyn commit::Hooks>) -> Self {
        if self.is_shared() {
            // Nothing heard from the other routers yet (the listener starts later).
            hooks.listening(false);
        }
        self.hooks = hooks;
        self
    }

    /// How many reads may run at once: the read pool's size (SQLite), or the pool's.
    pub fn read_connections(&self) -> usize {
        match &self.backend {
            Backend::Sqlite(_) => READ_CONNECTIONS as usize,
            Backend::Postgres(_) => POSTGRES_CONNECTIONS as usize,
        }
    }

    /// Hears other routers' commits until `stop` turns true, and hands them to the hooks
    /// (PostgreSQL; `None` for SQLite, where there are none). Start it once the hooks are set.
    pub fn listen_for_changes(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pool) => Some(pg::changes::listen(
                pool.clone(),
                self.origin,
                self.hooks.clone(),
                stop,
            )),
        }
    }

    /// This router's turn at a reaper pass, held until dropped; `None` while another
    /// router's pass holds it (PostgreSQL: a transaction-scoped advisory lock, released
    /// when the pass ends or its router dies, so another takes over at its next tick).
    /// SQLite's one router always has the turn.
    pub async fn reaper_turn(&self) -> Result<Option<ReaperTurn>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Some(ReaperTurn(None))),
            Backend::Postgres(pool) => {
                let turn = pg::store::begin_reaper_pass(pool).await?;
                Ok(turn.map(|tx| ReaperTurn(Some(tx))))
            }
        }
    }

    /// Whether this store is PostgreSQL (shared by several routers) rather than SQLite.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// SQLite's pools, for the SQLite arm of a function (its PostgreSQL arm returned above).
    fn sqlite(&self) -> Result<&Sqlite, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => Ok(s),
            Backend::Postgres(_) => Err(pg::sqlite_only("this statement")),
        }
    }

    /// A secret as it is stored in `column` of request `id`.
    fn seal(&self, column: &str, id: Uuid, value: &str) -> String {
        self.sealer.seal(value, &aad(column, id))
    }

    /// A stored secret, opened; a failure is a decode error of that column.
    fn open(&self, column: &str, id: Uuid, stored: &str) -> Result<SecretString, StoreError> {
        self.sealer
            .open(stored, &aad(column, id))
            .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => {
                sqlx::query_scalar!("SELECT 1 AS \"one!: i64\"")
                    .fetch_one(&s.read)
                    .await?;
            }
            Backend::Postgres(pool) => claude_auth_router_postgres::ping(pool).await?,
        }
        Ok(())
    }

    /// Whether the database accepts a write now: takes the write lock and lets it go.
    pub async fn ready(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => Ok(s.begin().await?.rollback().await?),
            Backend::Postgres(pool) => Ok(claude_auth_router_postgres::ping(pool).await?),
        }
    }

    /// Makes deleted secrets unrecoverable from the files, after a revoke or a purge.
    ///
    /// `secure_delete` zeroes what a delete frees, but in WAL mode the page as it was (token
    /// and all) still sits in earlier WAL frames until a checkpoint. A `TRUNCATE` checkpoint
    /// copies the zeroed pages into the database file and empties the WAL. A reader in the
    /// middle of a read holds it back, so it retries briefly; `false` if it never completed
    /// (the next scrub, or SQLite's own checkpoints, finish the job).
    ///
    /// PostgreSQL has no such step: a deleted row's space is the server's to reclaim
    /// (`VACUUM`), as docs/operations.md says.
    pub async fn scrub(&self) -> Result<bool, StoreError> {
        let Backend::Sqlite(s) = &self.backend else {
            return Ok(true);
        };
        for _ in 0..SCRUB_ATTEMPTS {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&s.write)
                .await?;
            if busy == 0 {
                return Ok(true);
            }
            tokio::time::sleep(SCRUB_RETRY).await;
        }
        tracing::warn!("a reader held the WAL checkpoint back; deleted tokens stay in the WAL until the next one");
        Ok(false)
    }

    /// Waits for in-flight statements and closes every connection (and so the WAL).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => {
                s.read.close().await;
                s.write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

impl Sqlite {
    async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        create_owner_only(options.get_filename())?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit the API acknowledged survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // What a delete frees is overwritten with zeros, so a revoked or purged token
            // does not linger in free space; see [`Db::scrub`] for the WAL.
            .pragma("secure_delete", "ON");
        // No ping before each acquire: the database is a local file, and the ping is one
        // more round trip to the connection's thread on every statement.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        SQLITE_MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        Ok(Self { read, write })
    }

    /// A write transaction that takes SQLite's write lock at once, for writes that change
    /// no request (see [`commit::WriteTx`] for those that do).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Whether `url` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Creates a missing database file readable by its owner only: it will hold live tokens.
/// SQLite gives the `-wal` and `-shm` files the same mode as the main file.
fn create_owner_only(path: &std::path::Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Failed(format!(
            "cannot create the database file: {e}"
        ))),
    }
}

/// Maps a stored text column back to a domain value, as a decode error when it does not fit.
fn decode<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A stored time (RFC 3339, as [`crate::domain::time::to_db`] writes it) that SQL handed back
/// as text, as a decode error of `column` when it does not parse.
fn decode_time(column: &str, value: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.to_utc())
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A fresh, migrated database in a new temporary directory, for unit tests. The directory
/// (and the file) last as long as the returned guard.
#[cfg(test)]
pub(crate) async fn scratch() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect(&url).await.unwrap();
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_keep_a_small_page_cache_and_the_writer_the_default() {
        let (_dir, db) = scratch().await;
        let size = |pool| async move {
            sqlx::query_scalar::<_, i64>("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .unwrap()
        };
        let Backend::Sqlite(s) = &db.backend else {
            unreachable!("scratch() is SQLite")
        };
        assert_eq!(size(&s.read).await, -i64::from(READER_CACHE_KIB));
        assert_eq!(size(&s.write).await, -2000);
    }
}
