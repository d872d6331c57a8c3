//! The store's errors, in terms that name no backend: what a caller may do about each is the
//! same whichever database is behind the store.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is locked by another writer, or has no connection free in time: the work
    /// is sound, and may be retried in a moment.
    #[error("the database is busy")]
    Busy,
    /// The database server cannot be reached (PostgreSQL): nothing was done, and the same
    /// call may succeed once it is back.
    #[error("the database cannot be reached")]
    Unavailable,
    /// A value already stored under the same unique key.
    #[error("a row with the same key already exists")]
    Conflict,
    /// A stored value does not read back as what it should be (a damaged row, or a value
    /// sealed with a key this router does not have).
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
    /// Anything else: the store could not do the work.
    #[error("database error: {0}")]
    Failed(String),
}

impl StoreError {
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Busy)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable,
            sqlx::Error::Database(db) if is_disconnected(db.code().as_deref()) => {
                StoreError::Unavailable
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if is_locked(db.code().as_deref()) => StoreError::Busy,
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Failed(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Failed(format!("migrating the schema: {e}"))
    }
}

/// From PostgreSQL: a statement's failure. A pool that timed out waiting for a connection
/// there means the server cannot be reached (it refuses connections; sqlx retries until the
/// timeout), not a lock: PostgreSQL waits for locks.
impl From<claude_auth_router_postgres::Error> for StoreError {
    fn from(e: claude_auth_router_postgres::Error) -> Self {
        match e.0 {
            sqlx::Error::PoolTimedOut => StoreError::Unavailable,
            e => StoreError::from(e),
        }
    }
}

/// PostgreSQL's connection exceptions (class 08) and shutdowns (57P01 to 57P03).
fn is_disconnected(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03"))
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), extended codes included.
fn is_locked(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
