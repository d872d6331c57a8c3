//! Every row of every table, as plain values ("images"), for `copy-db`: read from one store
//! and written to another, PostgreSQL's side here. Sealed values stay the text they are,
//! byte for byte; ids keep their values (the identity columns are set past them after).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The tables, in the order a copy writes them (each after what it refers to).
pub const TABLES: [&str; 9] = [
    "clients",
    "auth_requests",
    "token_bundles",
    "audit_events",
    "admin_events",
    "account_state",
    "admin_sessions",
    "webhook_deliveries",
    "router_settings",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ClientImage {
    pub id: Uuid,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub scopes: String,
    pub accounts: String,
    pub auto_approve: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub max_token_lifetime_secs: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestImage {
    pub id: Uuid,
    pub client_name: String,
    pub hostname: String,
    pub scopes: String,
    pub status: String,
    pub account_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub poll_token_hash: Vec<u8>,
    pub state_hash: Option<Vec<u8>>,
    pub pkce_verifier: Option<String>,
    pub version: i64,
    pub peer_addr: Option<String>,
    pub client_id: Option<Uuid>,
    pub token_lifetime_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BundleImage {
    pub request_id: Uuid,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub obtained_at: DateTime<Utc>,
    pub generation: i64,
    pub refresh_error: Option<String>,
    pub account_uuid: Option<String>,
    pub account_email: Option<String>,
    pub organization_uuid: Option<String>,
    pub organization_name: Option<String>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub relogin_warned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditImage {
    pub id: i64,
    pub request_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminEventImage {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub subject: String,
    pub action: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountImage {
    pub account_id: i64,
    pub paused: bool,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub five_hour_utilization: Option<f64>,
    pub five_hour_resets_at: Option<DateTime<Utc>>,
    pub seven_day_utilization: Option<f64>,
    pub seven_day_resets_at: Option<DateTime<Utc>>,
    pub usage_read_at: Option<DateTime<Utc>>,
    pub usage_error: Option<String>,
    pub five_hour_warned_for: Option<String>,
    pub seven_day_warned_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionImage {
    pub token_hash: Vec<u8>,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub admin_token_hash: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryImage {
    pub id: i64,
    pub webhook: i64,
    pub webhook_key: Vec<u8>,
    pub event_id: Uuid,
    pub event_type: String,
    pub request_id: Option<Uuid>,
    /// The JSON body, as text.
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SettingImage {
    pub name: String,
    pub value: Vec<u8>,
}

/// Everything a store holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Image {
    pub clients: Vec<ClientImage>,
    pub requests: Vec<RequestImage>,
    pub bundles: Vec<BundleImage>,
    pub audit: Vec<AuditImage>,
    pub admin_events: Vec<AdminEventImage>,
    pub accounts: Vec<AccountImage>,
    pub sessions: Vec<SessionImage>,
    pub deliveries: Vec<DeliveryImage>,
    pub settings: Vec<SettingImage>,
}

/// The migrations applied to the database, by version.
pub async fn applied(pool: &PgPool) -> Result<Vec<i64>, crate::Error> {
    let exists =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "exists!""#)
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let versions =
        sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    Ok(versions)
}

/// How many rows each of [`TABLES`] holds, in that order.
pub async fn counts(pool: &PgPool) -> Result<Vec<i64>, crate::Error> {
    let row = sqlx::query!(
        r#"SELECT (SELECT COUNT(*) FROM clients) AS "clients!",
                  (SELECT COUNT(*) FROM auth_requests) AS "auth_requests!",
                  (SELECT COUNT(*) FROM token_bundles) AS "token_bundles!",
                  (SELECT COUNT(*) FROM audit_events) AS "audit_events!",
                  (SELECT COUNT(*) FROM admin_events) AS "admin_events!",
                  (SELECT COUNT(*) FROM account_state) AS "account_state!",
                  (SELECT COUNT(*) FROM admin_sessions) AS "admin_sessions!",
                  (SELECT COUNT(*) FROM webhook_deliveries) AS "webhook_deliveries!",
                  (SELECT COUNT(*) FROM router_settings) AS "router_settings!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(vec![
        row.clients,
        row.auth_requests,
        row.token_bundles,
        row.audit_events,
        row.admin_events,
        row.account_state,
        row.admin_sessions,
        row.webhook_deliveries,
        row.router_settings,
    ])
}

/// Reads every row.
pub async fn read(pool: &PgPool) -> Result<Image, crate::Error> {
    let mut conn = pool.begin().await?;
    // One snapshot for every table.
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *conn)
        .await?;
    let image = Image {
        clients: sqlx::query_as!(
            ClientImage,
            "SELECT id, name, key_hash, scopes, accounts, auto_approve, disabled, created_at,
                    last_used_at, max_token_lifetime_secs FROM clients ORDER BY id"
        )
        .fetch_all(&mut *conn)
        .await?,
        requests: sqlx::query_as!(
            RequestImage,
            "SELECT id, client_name, hostname, scopes, status, account_id, error, created_at,
                    updated_at, expires_at, poll_token_hash, state_hash, pkce_verifier, version,
                    peer_addr, client_id, token_lifetime_secs FROM auth_requests ORDER BY id"
        )
        .fetch_all(&mut *conn)
        .await?,
        bundles: sqlx::query_as!(
            BundleImage,
            "SELECT request_id, access_token, refresh_token, token_type, scope, expires_at,
                    obtained_at, generation, refresh_error, account_uuid, account_email,
                    organization_uuid, organization_name, refresh_expires_at, relogin_warned_at
             FROM token_bundles ORDER BY request_id"
        )
        .fetch_all(&mut *conn)
        .await?,
        audit: sqlx::query_as!(
            AuditImage,
            "SELECT id, request_id, at, actor, action, from_status, to_status, detail
             FROM audit_events ORDER BY id"
        )
        .fetch_all(&mut *conn)
        .await?,
        admin_events: sqlx::query_as!(
            AdminEventImage,
            "SELECT id, at, actor, subject, action, detail FROM admin_events ORDER BY id"
        )
        .fetch_all(&mut *conn)
        .await?,
        accounts: sqlx::query_as!(
            AccountImage,
            "SELECT account_id, paused, last_failure_at, last_failure, updated_at,
                    five_hour_utilization, five_hour_resets_at, seven_day_utilization,
                    seven_day_resets_at, usage_read_at, usage_error, five_hour_warned_for,
                    seven_day_warned_for FROM account_state ORDER BY account_id"
        )
        .fetch_all(&mut *conn)
        .await?,
        sessions: sqlx::query_as!(
            SessionImage,
            "SELECT token_hash, csrf_token, created_at, expires_at, admin_token_hash
             FROM admin_sessions ORDER BY token_hash"
        )
        .fetch_all(&mut *conn)
        .await?,
        deliveries: sqlx::query_as!(
            DeliveryImage,
            r#"SELECT id, webhook, webhook_key, event_id, event_type, request_id,
                      body::text AS "body!", status, attempts, next_attempt_at, last_error,
                      created_at, updated_at FROM webhook_deliveries ORDER BY id"#
        )
        .fetch_all(&mut *conn)
        .await?,
        settings: sqlx::query_as!(
            SettingImage,
            "SELECT name, value FROM router_settings ORDER BY name"
        )
        .fetch_all(&mut *conn)
        .await?,
    };
    conn.commit().await?;
    Ok(image)
}

/// Writes every row of `image` in the caller's transaction; the identity columns then
/// continue past the copied ids. Settings replace those the target's first start chose.
pub async fn write(conn: &mut PgConnection, image: &Image) -> Result<(), crate::Error> {
    for c in &image.clients {
        sqlx::query!(
            "INSERT INTO clients (id, name, key_hash, scopes, accounts, auto_approve, disabled,
                                  created_at, last_used_at, max_token_lifetime_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            c.id,
            c.name,
            c.key_hash,
            c.scopes,
            c.accounts,
            c.auto_approve,
            c.disabled,
            c.created_at,
            c.last_used_at,
            c.max_token_lifetime_secs,
        )
        .execute(&mut *conn)
        .await?;
    }
    for r in &image.requests {
        sqlx::query!(
            "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, account_id,
                 error, created_at, updated_at, expires_at, poll_token_hash, state_hash,
                 pkce_verifier, version, peer_addr, client_id, token_lifetime_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            r.id,
            r.client_name,
            r.hostname,
            r.scopes,
            r.status,
            r.account_id,
            r.error,
            r.created_at,
            r.updated_at,
            r.expires_at,
            r.poll_token_hash,
            r.state_hash,
            r.pkce_verifier,
            r.version,
            r.peer_addr,
            r.client_id,
            r.token_lifetime_secs,
        )
        .execute(&mut *conn)
        .await?;
    }
    for b in &image.bundles {
        sqlx::query!(
            "INSERT INTO token_bundles (request_id, access_token, refresh_token, token_type,
                 scope, expires_at, obtained_at, generation, refresh_error, account_uuid,
                 account_email, organization_uuid, organization_name, refresh_expires_at,
                 relogin_warned_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            b.request_id,
            b.access_token,
            b.refresh_token,
            b.token_type,
            b.scope,
            b.expires_at,
            b.obtained_at,
            b.generation,
            b.refresh_error,
            b.account_uuid,
            b.account_email,
            b.organization_uuid,
            b.organization_name,
            b.refresh_expires_at,
            b.relogin_warned_at,
        )
        .execute(&mut *conn)
        .await?;
    }
    for a in &image.audit {
        sqlx::query!(
            "INSERT INTO audit_events (id, request_id, at, actor, action, from_status,
                 to_status, detail)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            a.id,
            a.request_id,
            a.at,
            a.actor,
            a.action,
            a.from_status,
            a.to_status,
            a.detail,
        )
        .execute(&mut *conn)
        .await?;
    }
    for e in &image.admin_events {
        sqlx::query!(
            "INSERT INTO admin_events (id, at, actor, subject, action, detail)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6)",
            e.id,
            e.at,
            e.actor,
            e.subject,
            e.action,
            e.detail,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.accounts {
        sqlx::query!(
            "INSERT INTO account_state (account_id, paused, last_failure_at, last_failure,
                 updated_at, five_hour_utilization, five_hour_resets_at, seven_day_utilization,
                 seven_day_resets_at, usage_read_at, usage_error, five_hour_warned_for,
                 seven_day_warned_for)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            s.account_id,
            s.paused,
            s.last_failure_at,
            s.last_failure,
            s.updated_at,
            s.five_hour_utilization,
            s.five_hour_resets_at,
            s.seven_day_utilization,
            s.seven_day_resets_at,
            s.usage_read_at,
            s.usage_error,
            s.five_hour_warned_for,
            s.seven_day_warned_for,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.sessions {
        sqlx::query!(
            "INSERT INTO admin_sessions (token_hash, csrf_token, created_at, expires_at,
                 admin_token_hash) VALUES ($1, $2, $3, $4, $5)",
            s.token_hash,
            s.csrf_token,
            s.created_at,
            s.expires_at,
            s.admin_token_hash,
        )
        .execute(&mut *conn)
        .await?;
    }
    for d in &image.deliveries {
        sqlx::query!(
            "INSERT INTO webhook_deliveries (id, webhook, webhook_key, event_id, event_type,
                 request_id, body, status, attempts, next_attempt_at, last_error, created_at,
                 updated_at)
             OVERRIDING SYSTEM VALUE
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11, $12, $13)",
            d.id,
            d.webhook,
            d.webhook_key,
            d.event_id,
            d.event_type,
            d.request_id,
            d.body,
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.last_error,
            d.created_at,
            d.updated_at,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.settings {
        sqlx::query!(
            "INSERT INTO router_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            s.name,
            s.value,
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), GREATEST(MAX(id), 1))
         FROM audit_events"
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('admin_events', 'id'), GREATEST(MAX(id), 1))
         FROM admin_events"
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), GREATEST(MAX(id), 1))
         FROM webhook_deliveries"
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}
