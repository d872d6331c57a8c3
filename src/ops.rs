//! The admin's maintenance commands: `check-config`, `backup`, `rekey` and `copy-db`.

use std::path::Path;

use anyhow::Context;

use crate::config::{Config, DatabaseUrl};
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
    for account in &config.accounts {
        eprintln!(
            "account {}: authorizes at {}",
            account.id,
            config.auth_url_of(account)
        );
    }
    eprintln!("configuration is valid; {encryption}");
    Ok(())
}

/// Writes a consistent copy of the database to `out` ([`crate::db::backup::copy_to`]),
/// from one snapshot while the service keeps writing. The copy is created owner-only, like the
/// database: it holds the same (possibly encrypted) tokens.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<()> {
    if crate::db::is_postgres(&config.database_url) {
        anyhow::bail!(
            "backup copies a SQLite database_url; back up PostgreSQL with its own tools \
             (pg_dump), as docs/operations.md says"
        );
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    let result = crate::db::backup::copy_to(&config.database_url, out).await;
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

/// Copies everything from `from` into the empty `to` ([`crate::db::copy::copy`]) and prints
/// each table's row count on both sides; an error when any differ.
pub async fn copy_db(from: &DatabaseUrl, to: &DatabaseUrl) -> anyhow::Result<()> {
    let counted = crate::db::copy::copy(from.expose(), to.expose()).await?;
    println!("copied {from} to {to}");
    println!("{:<20} {:>10} {:>10}", "table", "from", "to");
    for c in &counted {
        println!("{:<20} {:>10} {:>10}", c.table, c.from, c.to);
    }
    let differ: Vec<&str> = counted
        .iter()
        .filter(|c| c.from != c.to)
        .map(|c| c.table)
        .collect();
    if !differ.is_empty() {
        anyhow::bail!("the row counts differ in {}", differ.join(", "));
    }
    Ok(())
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
