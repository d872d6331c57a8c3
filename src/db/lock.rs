//! One `serve` per database file.
//!
//! Two routers on one SQLite file would silently diverge: the request cache, the
//! single-flight refresh locks and the throttles live in each process, so concurrent
//! refreshes could invalidate each other's tokens. `serve` therefore holds an exclusive
//! `flock` on `<database>.lock` for its whole life. The kernel drops it with the process,
//! so after a crash or `kill -9` the next start proceeds at once. The maintenance commands
//! (`backup`, `rekey`, `check-config`, `admin`) do not take it: they are meant to run
//! beside the service.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("database {database} is in use by another claude-auth-router serve (pid {pid}); stop it first: two routers on one database file diverge")]
    Held { database: String, pid: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DbLock {
    /// Takes the lock of the database at `database_url`, or says who holds it. An in-memory
    /// database needs none.
    pub fn acquire(database_url: &str) -> Result<Option<DbLock>, LockError> {
        let Some(database) = database_file(database_url) else {
            return Ok(None);
        };
        let path = lock_path(&database);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut open = OpenOptions::new();
        open.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let mut file = open.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = Some(pid.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "unknown".into());
                return Err(LockError::Held {
                    database: database.display().to_string(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Some(DbLock { _file: file }))
    }
}

/// The database file of a `sqlite:` URL, or `None` for an in-memory one.
fn database_file(database_url: &str) -> Option<PathBuf> {
    if database_url.contains(":memory:") || database_url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(database_url).ok()?;
    let file = options.get_filename();
    let name = file.as_os_str();
    (!name.is_empty() && name != ":memory:").then(|| file.to_path_buf())
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_with_the_holders_pid_until_the_first_goes() {
        let dir = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let first = DbLock::acquire(&url)
            .unwrap()
            .expect("a file database is locked");

        let refused = DbLock::acquire(&url).unwrap_err().to_string();

        assert!(refused.contains("r.db"), "{refused}");
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        drop(first);
        assert!(DbLock::acquire(&url).unwrap().is_some());
    }

    #[test]
    fn an_in_memory_database_needs_no_lock() {
        assert!(DbLock::acquire("sqlite::memory:").unwrap().is_none());
    }
}
