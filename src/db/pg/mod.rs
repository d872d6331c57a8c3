//! PostgreSQL: the router's side of the `claude-auth-router-postgres` crate. That crate's
//! statements hand back plain rows; the functions here turn them into the same domain
//! values the SQLite statements give, so each `db` function's PostgreSQL arm is one call.

pub mod accounts;
pub mod changes;
pub mod clients;
pub mod requests;
pub mod tokens;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::commit::Change;
use super::{decode, deliveries, StoreError};
use crate::domain::event::RequestSnapshot;
use crate::domain::Scopes;
use store::audit::NewAudit;

pub use claude_auth_router_postgres as store;

/// A pool of `max_connections` on `url`, migrated.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    store::connect(url, max_connections)
        .await
        .map_err(|e| match e.0 {
            sqlx::Error::Migrate(m) => StoreError::from(*m),
            e => StoreError::from(store::Error(e)),
        })
}

/// A transaction on `pool`, its failure read as PostgreSQL's.
pub async fn begin(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    pool.begin()
        .await
        .map_err(|e| StoreError::from(store::Error(e)))
}

/// A SQLite statement reached on a PostgreSQL store: a bug (every function dispatches at its
/// top), answered as an error rather than a panic.
pub fn sqlite_only(what: &str) -> StoreError {
    StoreError::Failed(format!("{what} is SQLite's, but the store is PostgreSQL"))
}

/// An account id as PostgreSQL stores it (`bigint`, checked to fit a `u32`).
pub fn account_id(stored: Option<i64>) -> Result<Option<u32>, StoreError> {
    stored
        .map(|a| u32::try_from(a).map_err(|e| StoreError::Corrupt(format!("account_id: {e}"))))
        .transpose()
}

/// The statuses a transition may start from, as a `text[]` parameter.
pub fn statuses(from: &[crate::domain::Status]) -> Vec<&'static str> {
    from.iter().map(|s| s.as_str()).collect()
}

pub async fn audit(conn: &mut PgConnection, c: &Change<'_>) -> Result<(), StoreError> {
    let actor = c.audit.actor.to_string();
    store::audit::record(
        conn,
        &NewAudit {
            request_id: c.id,
            at: c.at,
            actor: &actor,
            action: c.audit.action,
            from_status: c.from.map(|s| s.as_str()),
            to_status: c.to.as_str(),
            detail: c.audit.detail.as_deref(),
        },
    )
    .await?;
    Ok(())
}

pub async fn snapshot(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<RequestSnapshot>, StoreError> {
    let Some(r) = store::requests::snapshot(conn, id).await? else {
        return Ok(None);
    };
    Ok(Some(RequestSnapshot {
        request_id: id,
        client_name: r.client_name,
        hostname: r.hostname,
        scopes: Scopes::from_db(&r.scopes).as_slice().to_vec(),
        status: decode("status", &r.status)?,
        account_id: account_id(r.account_id)?,
        error: r.error,
    }))
}

pub async fn queue(
    conn: &mut PgConnection,
    d: &deliveries::NewDelivery<'_>,
) -> Result<(), StoreError> {
    let body: serde_json::Value = serde_json::from_str(&d.rendered.body)
        .map_err(|e| StoreError::Failed(format!("a webhook body is not JSON: {e}")))?;
    store::deliveries::insert(
        conn,
        &store::deliveries::NewDelivery {
            webhook: i64::from(d.rendered.webhook),
            webhook_key: &d.rendered.webhook_key,
            event_id: d.event_id,
            event_type: d.event_type,
            request_id: d.request_id,
            body: &body,
            at: d.at,
        },
    )
    .await?;
    Ok(())
}
