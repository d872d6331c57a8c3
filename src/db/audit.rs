//! `audit_events`: written only inside the transaction of the change it describes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::Db;
use super::StoreError;
use crate::domain::time::to_db;
use crate::domain::{Audit, Status};

/// One row of the trail, as the API and the console show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
) -> Result<(), StoreError> {
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

/// One request's trail oldest first, or everyone's newest first.
pub async fn list(
    db: &Db,
    request_id: Option<Uuid>,
    limit: u32,
) -> Result<Vec<AuditEvent>, StoreError> {
    if let super::Backend::Postgres(pool) = &db.backend {
        let rows = super::pg::store::audit::list(pool, request_id, i64::from(limit)).await?;
        return Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                request_id: r.request_id.hyphenated().to_string(),
                at: r.at,
                actor: r.actor,
                action: r.action,
                from_status: r.from_status,
                to_status: r.to_status,
                detail: r.detail,
            })
            .collect());
    }
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
            .fetch_all(&db.sqlite()?.read)
            .await
            .map_err(Into::into)
        }
        None => sqlx::query_as!(
            AuditEvent,
            r#"SELECT id AS "id!", request_id, at AS "at: DateTime<Utc>", actor, action,
                          from_status, to_status, detail
                   FROM audit_events ORDER BY id DESC LIMIT ?"#,
            limit,
        )
        .fetch_all(&db.sqlite()?.read)
        .await
        .map_err(Into::into),
    }
}
