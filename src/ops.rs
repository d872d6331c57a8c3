//! The admin's maintenance commands: `check-config`, `backup` and `rekey`.

use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::crypto::Sealer;
use crate::db::keys;
use crate::startup::open_db_to_reseal;

/// Validates everything the service would check before binding (the keys included) and
/// prints the effective configuration as TOML, secrets redacted.
pub fn check_config(config: &Config) -> anyhow::Result<()> {
    let sealer = Sealer::from_config(&config.storage)?;
    print!("{}", config.to_redacted_toml()?);
    if config.oauth.provider == crate::config::Provider::Claude {
        eprintln!(
            "provider preset: claude (every [oauth] key not set in the file or the environment comes from it)"
        );
    }
    let encryption = match sealer.current_id() {
        Some(id) => format!("tokens encrypted with key id {id}"),
        None => "tokens stored in plaintext (no storage.encryption_key)".to_owned(),
    };
    eprintln!("configuration is valid; {encryption}");
    Ok(())
}

/// Writes a consistent copy of the database to `out` with `VACUUM INTO`, which reads one
/// snapshot while the service keeps writing. The copy is created owner-only, like the
/// database: it holds the same (possibly encrypted) tokens.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    let result = vacuum_into(config, out).await;
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    let (requests, bundles) = result?;
    println!(
        "backed up {requests} requests and {bundles} token bundles to {}",
        out.display()
    );
    Ok(())
}

async fn vacuum_into(config: &Config, out: &Path) -> anyhow::Result<(i64, i64)> {
    let source: SqliteConnectOptions = config.database_url.parse().context("database_url")?;
    let mut conn = source
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot open database_url {}", config.database_url))?;
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

/// Re-seals every stored secret with the current key.
pub async fn rekey(config: &Config) -> anyhow::Result<()> {
    if !Sealer::from_config(&config.storage)?.is_enabled() {
        anyhow::bail!("rekey needs storage.encryption_key (or storage.encryption_key_file): the key to seal with");
    }
    let db = open_db_to_reseal(config).await?;
    let key_id = db.sealer().current_id().unwrap_or_default().to_owned();
    let report = keys::rekey(&db).await;
    db.close().await;
    let report = report.context("re-sealing")?;
    println!(
        "re-sealed {} values with key id {key_id}; {} already current; {} changed by the running service meanwhile",
        report.resealed, report.already_current, report.changed_meanwhile
    );
    Ok(())
}
