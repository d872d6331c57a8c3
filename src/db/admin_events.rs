//! `admin_events`, read: the trail of changes to clients and accounts (written by
//! [`super::clients::admin_event`], inside each change's transaction).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Db, StoreError};

/// One change to a client or an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who made it: `admin` (the admin token or a console session).
    pub actor: String,
    /// What it changed: `client:<id>` or `account:<id>`.
    pub subject: String,
    /// `add`, `rotate_key`, `disable`, `enable`, `update`, `remove`, `pause` or `resume`.
    pub action: String,
    pub detail: Option<String>,
}

/// The newest `limit` changes, newest first; only `subject`'s when given.
pub async fn list(
    db: &Db,
    subject: Option<&str>,
    limit: u32,
) -> Result<Vec<AdminEvent>, StoreError> {
    if let super::Backend::Postgres(pool) = &db.backend {
        let rows = super::pg::store::admin::admin_events(pool, subject, i64::from(limit)).await?;
        return Ok(rows
            .into_iter()
            .map(|r| AdminEvent {
                id: r.id,
                at: r.at,
                actor: r.actor,
                subject: r.subject,
                action: r.action,
                detail: r.detail,
            })
            .collect());
    }
    sqlx::query_as!(
        AdminEvent,
        r#"SELECT id AS "id!", at AS "at: DateTime<Utc>", actor, subject, action, detail
           FROM admin_events WHERE ?1 IS NULL OR subject = ?1 ORDER BY id DESC LIMIT ?2"#,
        subject,
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await
    .map_err(Into::into)
}
