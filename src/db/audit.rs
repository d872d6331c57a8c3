//! `audit_events`: written only inside the transaction of the change it describes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::commit::Change;
use super::Db;
use crate::domain::time::to_db;
use crate::domain::{Audit, Status};

/// One row of the trail, as the API and the console show it.
#[derive(Debug, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub request_id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub detail: Option<String>,
}

pub async fn record(
    conn: &mut SqliteConnection,
    request_id: Uuid,
    at: DateTime<Utc>,
    audit: &Audit,
    from: Option<Status>,
    to: Status,
) -> Result<(), sqlx::Error> {
    let id = request_id.hyphenated();
    let at = to_db(at);
    let actor = audit.actor.to_string();
    let from = from.map(Status::as_str);
    let to = to.as_str();
    sqlx::query!(
        "INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        id,
        at,
        actor,
        audit.action,
        from,
        to,
        audit.detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the audit row of each change, on a connection lent by [`super::sync::run`] inside
/// the change's transaction: one prepared statement, stepped once per row, with no round trip
/// to SQLite's thread per row (a batch of creates, a reaper chunk of 10,000).
pub fn record_all(conn: &rusqlite::Connection, changes: &[Change<'_>]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare(INSERT_SYNC)?;
    for c in changes {
        insert.execute(rusqlite::params![
            c.id.hyphenated().to_string(),
            to_db(c.at),
            c.audit.actor.to_string(),
            c.audit.action,
            c.from.map(Status::as_str),
            c.to.as_str(),
            c.audit.detail.as_deref(),
        ])?;
    }
    Ok(())
}

/// [`record_all`]'s statement; the same columns as [`record`]'s, which sqlx checks.
pub(crate) const INSERT_SYNC: &str =
    "INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// One request's trail oldest first, or everyone's newest first.
pub async fn list(
    db: &Db,
    request_id: Option<Uuid>,
    limit: u32,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    match request_id {
        Some(id) => {
            let id = id.hyphenated();
            sqlx::query_as!(
                AuditEvent,
                r#"SELECT id AS "id!", request_id, at AS "at: DateTime<Utc>", actor, action,
                          from_status, to_status, detail
                   FROM audit_events WHERE request_id = ? ORDER BY id ASC LIMIT ?"#,
                id,
                limit,
            )
            .fetch_all(&db.read)
            .await
        }
        None => {
            sqlx::query_as!(
                AuditEvent,
                r#"SELECT id AS "id!", request_id, at AS "at: DateTime<Utc>", actor, action,
                          from_status, to_status, detail
                   FROM audit_events ORDER BY id DESC LIMIT ?"#,
                limit,
            )
            .fetch_all(&db.read)
            .await
        }
    }
}
