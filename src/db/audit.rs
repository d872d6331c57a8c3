//! `audit_events`: written only inside the transaction of the change it describes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

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

/// The audit rows of many changes in one statement (a batch of creates): one round trip to
/// SQLite's thread instead of one per row. The rows travel as a JSON array.
pub async fn record_all(
    conn: &mut SqliteConnection,
    changes: &[super::commit::Change<'_>],
) -> Result<(), sqlx::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        id: uuid::fmt::Hyphenated,
        at: String,
        actor: String,
        action: &'a str,
        from: Option<&'static str>,
        to: &'static str,
        detail: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = changes
        .iter()
        .map(|c| Row {
            id: c.id.hyphenated(),
            at: to_db(c.at),
            actor: c.audit.actor.to_string(),
            action: c.audit.action,
            from: c.from.map(Status::as_str),
            to: c.to.as_str(),
            detail: c.audit.detail.as_deref(),
        })
        .collect();
    let rows = serde_json::to_string(&rows).expect("audit rows serialise");
    sqlx::query!(
        "INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         SELECT value ->> 'id', value ->> 'at', value ->> 'actor', value ->> 'action',
                value ->> 'from', value ->> 'to', value ->> 'detail'
         FROM json_each(?1)",
        rows,
    )
    .execute(conn)
    .await?;
    Ok(())
}

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
