//! The token cache: one JSON file per router URL + client name + scopes, in a directory only
//! its owner can read, written atomically (temp file, fsync, rename), and guarded by a file
//! lock held around the whole get-or-create, so that parallel invocations on one machine
//! share one request instead of each bothering the operator.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ClientError, Token};

/// How often a waiting invocation retries the lock.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// `$XDG_CACHE_HOME/claude-auth-router`, else `~/.cache/claude-auth-router`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("claude-auth-router"))
}

/// What is kept between invocations. It holds the poll token (to refresh through the
/// router) and the tokens, which is why the file is owner-only.
#[derive(Clone, Serialize, Deserialize)]
pub struct Entry {
    pub router: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub request_id: Uuid,
    pub poll_token: String,
    pub token: Token,
    /// A long-lived token's lifetime, as asked for: part of the key.
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
    /// The request opened because this login's refresh token dies soon, while it waits.
    #[serde(default)]
    pub renewal: Option<Renewal>,
}

/// A request waiting to replace the cached login.
#[derive(Clone, Serialize, Deserialize)]
pub struct Renewal {
    pub request_id: Uuid,
    pub poll_token: String,
}

pub struct Cache {
    dir: PathBuf,
    file: PathBuf,
    lock: PathBuf,
    router: String,
    client_name: String,
    scopes: Vec<String>,
    lifetime_secs: Option<u64>,
}

/// Held while an invocation owns the key; dropping it releases the lock.
pub struct Lock(#[allow(dead_code)] File);

impl Cache {
    /// The cache of one key: a router, a client name, its scopes and, for a long-lived
    /// token, its lifetime (so it never stands in for an ordinary one, or the reverse).
    pub fn new(
        dir: &Path,
        router: &str,
        client_name: &str,
        scopes: &[String],
        lifetime_secs: Option<u64>,
    ) -> Self {
        let mut key_scopes = scopes.to_vec();
        key_scopes.sort();
        key_scopes.dedup();
        let mut key = format!("{router}\n{client_name}\n{}", key_scopes.join(" "));
        if let Some(secs) = lifetime_secs {
            key.push_str(&format!("\nlifetime {secs}"));
        }
        let key = Sha256::digest(key.as_bytes());
        let name = crate::crypto::hex(&key[..12]);
        Self {
            dir: dir.to_path_buf(),
            file: dir.join(format!("{name}.json")),
            lock: dir.join(format!("{name}.lock")),
            router: router.to_owned(),
            client_name: client_name.to_owned(),
            scopes: key_scopes,
            lifetime_secs,
        }
    }

    /// Waits, without blocking a thread, until this invocation holds the key's lock.
    pub async fn lock(&self) -> Result<Lock, ClientError> {
        self.ensure_dir()?;
        let file = private_file(&self.lock, false).map_err(|e| self.error(&self.lock, e))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock(file)),
                Err(fs::TryLockError::WouldBlock) => tokio::time::sleep(LOCK_RETRY).await,
                Err(fs::TryLockError::Error(e)) => return Err(self.error(&self.lock, e)),
            }
        }
    }

    /// The entry for this key, if there is a readable one that matches it.
    pub fn read(&self) -> Option<Entry> {
        let bytes = fs::read(&self.file).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        let matches = entry.router == self.router && entry.client_name == self.client_name;
        (matches && entry.scopes == self.scopes && entry.lifetime_secs == self.lifetime_secs)
            .then_some(entry)
    }

    /// The entry of a token just obtained, with no renewal.
    pub fn entry(&self, request_id: Uuid, poll_token: &str, token: &Token) -> Entry {
        Entry {
            router: self.router.clone(),
            client_name: self.client_name.clone(),
            scopes: self.scopes.clone(),
            request_id,
            poll_token: poll_token.to_owned(),
            token: token.clone(),
            lifetime_secs: self.lifetime_secs,
            renewal: None,
        }
    }

    pub fn write(
        &self,
        request_id: Uuid,
        poll_token: &str,
        token: &Token,
    ) -> Result<(), ClientError> {
        self.store(&self.entry(request_id, poll_token, token))
    }

    /// Replaces the key's entry, atomically.
    pub fn store(&self, entry: &Entry) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec_pretty(entry).expect("entries serialize");
        let temp = self
            .dir
            .join(format!(".{}.{}.tmp", Uuid::new_v4(), std::process::id()));
        let written = (|| {
            let mut f = private_file(&temp, true)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&temp, &self.file)?;
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(|e| self.error(&self.file, e))
    }

    /// Creates the directory owner-only, and tightens it if it exists with looser rights.
    fn ensure_dir(&self) -> Result<(), ClientError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .map_err(|e| self.error(&self.dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| self.error(&self.dir, e))?;
        }
        Ok(())
    }

    fn error(&self, path: &Path, e: std::io::Error) -> ClientError {
        ClientError::Cache {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }
}

/// Opens (or, with `truncate`, replaces) a file that only its owner can read.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut open = OpenOptions::new();
    open.read(true).write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(path)
}
