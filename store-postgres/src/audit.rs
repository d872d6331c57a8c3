//! `audit_events`: written only inside the transaction of the change it describes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One row of the trail, as written.
pub struct NewAudit<'a> {
    pub request_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: &'a str,
    pub detail: Option<&'a str>,
}

pub async fn record(conn: &mut PgConnection, a: &NewAudit<'_>) -> Result<(), crate::Error> {
    sqlx::query!(
        "INSERT INTO audit_events (request_id, at, actor, action, from_status, to_status, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        a.request_id,
        a.at,
        a.actor,
        a.action,
        a.from_status,
        a.to_status,
        a.detail,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One row of the trail, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub request_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub detail: Option<String>,
}

/// One request's trail oldest first, or everyone's newest first.
pub async fn list(
    pool: &PgPool,
    request_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>, crate::Error> {
    match request_id {
        Some(id) => sqlx::query_as!(
            AuditRow,
            "SELECT id, request_id, at, actor, action, from_status, to_status, detail
                 FROM audit_events WHERE request_id = $1 ORDER BY id ASC LIMIT $2",
            id,
            limit,
        )
        .fetch_all(pool)
        .await
        .map_err(crate::Error::from),
        None => sqlx::query_as!(
            AuditRow,
            "SELECT id, request_id, at, actor, action, from_status, to_status, detail
                 FROM audit_events ORDER BY id DESC LIMIT $1",
            limit,
        )
        .fetch_all(pool)
        .await
        .map_err(crate::Error::from),
    }
}
