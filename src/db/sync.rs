//! Statements run on a transaction's connection here, without a trip to SQLite's thread each.
//!
//! sqlx runs every SQLite connection on a thread of its own, and each statement is a round
//! trip to it: a channel send, a wake-up there, a wake-up back. For the statements of a
//! batch (a batch of creates, a reaper chunk) those trips, and the JSON the rows
//! travelled in to keep the trips few, were most of the batch's time (BENCHMARKS.md, "Issue
//! 13, third pass"). sqlx's own escape hatch, `lock_handle`, parks that thread and lends its
//! raw handle to the caller; [`run`] wraps the handle in `rusqlite` for the length of one
//! call, so any number of statements costs one round trip.
//!
//! The transaction itself stays sqlx's ([`super::commit::WriteTx`]): `BEGIN`, the commit and
//! the rollback on drop are unchanged, and these statements are simply part of it.
//!
//! sqlx's macros cannot check these statements at compile time. Each one is a `const` beside
//! its caller, and `every_statement_run_here_prepares_against_the_schema` prepares all
//! of them against the migrated schema.

use std::borrow::Cow;

use sqlx::SqliteConnection;

/// Runs `statements` on `conn`'s SQLite handle, in whatever transaction `conn` is in.
///
/// The calling thread does the work. On a multi-threaded runtime its worker first hands its
/// other tasks to another thread ([`tokio::task::block_in_place`]), so a long call (the
/// reaper's 10,000 audit rows) does not hold them up.
pub async fn run<R>(
    conn: &mut SqliteConnection,
    statements: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
) -> Result<R, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    let call = move || {
        // SAFETY: `handle` keeps sqlx's connection thread parked until it is dropped, after
        // this call, so nothing else uses the connection meanwhile. `from_handle` does not
        // take ownership: dropping `lent` finalizes the statements it prepared and leaves the
        // connection open. Both crates link the one `libsqlite3-sys` (Cargo allows one crate
        // per `links = "sqlite3"`), so the pointer's type is the same C library's.
        let lent = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }?;
        statements(&lent)
    };
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let outcome = if multi_thread {
        tokio::task::block_in_place(call)
    } else {
        call()
    };
    drop(handle);
    outcome.map_err(into_sqlx)
}

/// A stored text in result column `column` that does not parse, as a statement's error.
pub fn unreadable(
    column: usize,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
}

/// As sqlx's own errors look, so callers (and [`crate::error::is_busy`]) need not know which
/// crate ran the statement.
fn into_sqlx(e: rusqlite::Error) -> sqlx::Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    };
    sqlx::Error::Database(Box::new(StatementError {
        code,
        message: e.to_string(),
    }))
}

/// A failed statement: SQLite's (extended) result code and its message, which names
/// tables and constraints but never a bound value.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct StatementError {
    code: Option<i32>,
    message: String,
}

impl sqlx::error::DatabaseError for StatementError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => sqlx::error::ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => sqlx::error::ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_statement_run_here_prepares_against_the_schema() {
        let (_dir, db) = crate::db::scratch().await;
        let mut conn = db.write.acquire().await.unwrap();
        let statements = [
            crate::db::audit::INSERT_SYNC,
            crate::db::batch::INSERT_REQUEST,
            crate::db::batch::CLIENT_USED,
            crate::db::batch::OPEN_FOR_CLIENT,
            crate::db::batch::OPEN_FOR_HOSTNAME,
            crate::db::requests::EXPIRE_DUE,
            crate::db::requests::EXPIRE_ONE,
        ];
        run(&mut conn, |c| {
            for sql in statements {
                c.prepare(sql)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_failed_statement_comes_back_as_a_database_error_with_its_code_and_rolls_back() {
        let (_dir, db) = crate::db::scratch().await;
        let mut tx = db.write.begin().await.unwrap();
        let e = run(&mut tx, |c| {
            c.execute("CREATE TABLE t (k TEXT PRIMARY KEY)", [])?;
            c.execute("INSERT INTO t VALUES ('a')", [])?;
            c.execute("INSERT INTO t VALUES ('a')", [])
        })
        .await
        .unwrap_err();
        let sqlx::Error::Database(e) = e else {
            panic!("not a database error: {e:?}")
        };
        assert_eq!(e.kind(), sqlx::error::ErrorKind::UniqueViolation);
        assert_eq!(e.code().as_deref(), Some("1555"));
        drop(tx);
        // The statements were part of sqlx's transaction, so its rollback undid them, and the
        // connection is usable afterwards.
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 't'")
            .fetch_one(&db.write)
            .await
            .unwrap();
        assert_eq!(tables, 0);
    }
}
