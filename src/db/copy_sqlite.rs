//! `copy-db`'s SQLite side: every row as a plain image, read in one snapshot, written in one
//! transaction. PostgreSQL's side is `claude_auth_router_postgres::copy`.

use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::pg::store::copy::{
    AccountImage, AdminEventImage, AuditImage, BundleImage, ClientImage, DeliveryImage, Image,
    RequestImage, SessionImage, SettingImage,
};
use super::{decode, StoreError};
use crate::domain::time::to_db;

fn uuid(column: &str, text: &str) -> Result<Uuid, StoreError> {
    decode(column, text)
}

fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(to_db)
}

/// The migrations applied to the file, by version.
pub async fn applied(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "n!: i64" FROM sqlite_master
           WHERE type = 'table' AND name = '_sqlx_migrations'"#
    )
    .fetch_one(pool)
    .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar!(
        r#"SELECT version AS "version!: i64" FROM _sqlx_migrations WHERE success ORDER BY version"#
    )
    .fetch_all(pool)
    .await?)
}

/// How many rows each table holds, in `TABLES`' order.
pub async fn counts(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let r = sqlx::query!(
        r#"SELECT (SELECT COUNT(*) FROM clients) AS "clients!: i64",
                  (SELECT COUNT(*) FROM auth_requests) AS "auth_requests!: i64",
                  (SELECT COUNT(*) FROM token_bundles) AS "token_bundles!: i64",
                  (SELECT COUNT(*) FROM audit_events) AS "audit_events!: i64",
                  (SELECT COUNT(*) FROM admin_events) AS "admin_events!: i64",
                  (SELECT COUNT(*) FROM account_state) AS "account_state!: i64",
                  (SELECT COUNT(*) FROM admin_sessions) AS "admin_sessions!: i64",
                  (SELECT COUNT(*) FROM webhook_deliveries) AS "webhook_deliveries!: i64",
                  (SELECT COUNT(*) FROM router_settings) AS "router_settings!: i64""#
    )
    .fetch_one(pool)
    .await?;
    Ok(vec![
        r.clients,
        r.auth_requests,
        r.token_bundles,
        r.audit_events,
        r.admin_events,
        r.account_state,
        r.admin_sessions,
        r.webhook_deliveries,
        r.router_settings,
    ])
}

/// Reads every row, in one read transaction (one snapshot).
pub async fn read(pool: &SqlitePool) -> Result<Image, StoreError> {
    let mut tx = pool.begin().await?;
    let conn: &mut SqliteConnection = &mut tx;
    let mut image = Image::default();
    for c in sqlx::query!(
        r#"SELECT id, name, key_hash, scopes, accounts, auto_approve AS "auto_approve: bool",
                  disabled AS "disabled: bool", created_at AS "created_at: DateTime<Utc>",
                  last_used_at AS "last_used_at: DateTime<Utc>", max_token_lifetime_secs
           FROM clients ORDER BY id"#
    )
    .fetch_all(&mut *conn)
    .await?
    {
        image.clients.push(ClientImage {
            id: uuid("clients.id", &c.id)?,
            name: c.name,
            key_hash: c.key_hash,
            scopes: c.scopes,
            accounts: c.accounts,
            auto_approve: c.auto_approve,
            disabled: c.disabled,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
            max_token_lifetime_secs: c.max_token_lifetime_secs,
        });
    }
    for r in sqlx::query!(
        r#"SELECT id, client_name, hostname, scopes, status, account_id, error,
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>", poll_token_hash, state_hash,
                  pkce_verifier, version, peer_addr, client_id, token_lifetime_secs
           FROM auth_requests ORDER BY id"#
    )
    .fetch_all(&mut *conn)
    .await?
    {
        image.requests.push(RequestImage {
            id: uuid("auth_requests.id", &r.id)?,
            client_name: r.client_name,
            hostname: r.hostname,
            scopes: r.scopes,
            status: r.status,
            account_id: r.account_id,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            poll_token_hash: r.poll_token_hash,
            state_hash: r.state_hash,
            pkce_verifier: r.pkce_verifier,
            version: r.version,
            peer_addr: r.peer_addr,
            client_id: r
                .client_id
                .map(|c| uuid("auth_requests.client_id", &c))
                .transpose()?,
            token_lifetime_secs: r.token_lifetime_secs,
        });
    }
    for b in sqlx::query!(
        r#"SELECT request_id, access_token, refresh_token, token_type, scope,
                  expires_at AS "expires_at: DateTime<Utc>",
                  obtained_at AS "obtained_at: DateTime<Utc>", generation, refresh_error,
                  account_uuid, account_email, organization_uuid, organization_name,
                  refresh_expires_at AS "refresh_expires_at: DateTime<Utc>",
                  relogin_warned_at AS "relogin_warned_at: DateTime<Utc>"
           FROM token_bundles ORDER BY request_id"#
    )
    .fetch_all(&mut *conn)
    .await?
    {
        image.bundles.push(BundleImage {
            request_id: uuid("token_bundles.request_id", &b.request_id)?,
            access_token: b.access_token,
            refresh_token: b.refresh_token,
            token_type: b.token_type,
            scope: b.scope,
            expires_at: b.expires_at,
            obtained_at: b.obtained_at,
            generation: b.generation,
            refresh_error: b.refresh_error,
            account_uuid: b.account_uuid,
            account_email: b.account_email,
            organization_uuid: b.organization_uuid,
            organization_name: b.organization_name,
            refresh_expires_at: b.refresh_expires_at,
            relogin_warned_at: b.relogin_warned_at,
        });
    }
    for a in sqlx::query!(
        r#"SELECT id AS "id!: i64", request_id, at AS "at: DateTime<Utc>", actor, action,
                  from_status, to_status, detail FROM audit_events ORDER BY id"#
    )
    .fetch_all(&mut *conn)
    .await?
    {
        image.audit.push(AuditImage {
            id: a.id,
            request_id: uuid("audit_events.request_id", &a.request_id)?,
            at: a.at,
            actor: a.actor,
            action: a.action,
            from_status: a.from_status,
            to_status: a.to_status,
            detail: a.detail,
        });
    }
    image.admin_events = sqlx::query_as!(
        AdminEventImage,
        r#"SELECT id AS "id!: i64", at AS "at: DateTime<Utc>", actor, subject, action, detail
           FROM admin_events ORDER BY id"#
    )
    .fetch_all(&mut *conn)
    .await?;
    image.accounts = sqlx::query_as!(
        AccountImage,
        r#"SELECT account_id AS "account_id!: i64", paused AS "paused: bool",
                  last_failure_at AS "last_failure_at: DateTime<Utc>", last_failure,
                  updated_at AS "updated_at: DateTime<Utc>", five_hour_utilization,
                  five_hour_resets_at AS "five_hour_resets_at: DateTime<Utc>",
                  seven_day_utilization,
                  seven_day_resets_at AS "seven_day_resets_at: DateTime<Utc>",
                  usage_read_at AS "usage_read_at: DateTime<Utc>", usage_error,
                  five_hour_warned_for, seven_day_warned_for
           FROM account_state ORDER BY account_id"#
    )
    .fetch_all(&mut *conn)
    .await?;
    image.sessions = sqlx::query_as!(
        SessionImage,
        r#"SELECT token_hash, csrf_token, created_at AS "created_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>", admin_token_hash
           FROM admin_sessions ORDER BY token_hash"#
    )
    .fetch_all(&mut *conn)
    .await?;
    for d in sqlx::query!(
        r#"SELECT id AS "id!: i64", webhook, webhook_key, event_id, event_type, request_id, body,
                  status, attempts, next_attempt_at AS "next_attempt_at: DateTime<Utc>",
                  last_error, created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>"
           FROM webhook_deliveries ORDER BY id"#
    )
    .fetch_all(&mut *conn)
    .await?
    {
        image.deliveries.push(DeliveryImage {
            id: d.id,
            webhook: d.webhook,
            webhook_key: d.webhook_key,
            event_id: uuid("webhook_deliveries.event_id", &d.event_id)?,
            event_type: d.event_type,
            request_id: d
                .request_id
                .map(|r| uuid("webhook_deliveries.request_id", &r))
                .transpose()?,
            body: d.body,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        });
    }
    image.settings = sqlx::query_as!(
        SettingImage,
        "SELECT name, value FROM router_settings ORDER BY name"
    )
    .fetch_all(&mut *conn)
    .await?;
    tx.commit().await?;
    Ok(image)
}

/// Writes every row of `image` in the caller's transaction. Settings replace those the
/// target's first start chose.
pub async fn write(conn: &mut SqliteConnection, image: &Image) -> Result<(), StoreError> {
    for c in &image.clients {
        let (id, created, used) = (
            c.id.hyphenated().to_string(),
            to_db(c.created_at),
            time(c.last_used_at),
        );
        sqlx::query!(
            "INSERT INTO clients (id, name, key_hash, scopes, accounts, auto_approve, disabled,
                                  created_at, last_used_at, max_token_lifetime_secs)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            id,
            c.name,
            c.key_hash,
            c.scopes,
            c.accounts,
            c.auto_approve,
            c.disabled,
            created,
            used,
            c.max_token_lifetime_secs,
        )
        .execute(&mut *conn)
        .await?;
    }
    for r in &image.requests {
        let id = r.id.hyphenated().to_string();
        let client = r.client_id.map(|c| c.hyphenated().to_string());
        let (created, updated, expires) = (
            to_db(r.created_at),
            to_db(r.updated_at),
            to_db(r.expires_at),
        );
        sqlx::query!(
            "INSERT INTO auth_requests (id, client_name, hostname, scopes, status, account_id,
                 error, created_at, updated_at, expires_at, poll_token_hash, state_hash,
                 pkce_verifier, version, peer_addr, client_id, token_lifetime_secs)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            id,
            r.client_name,
            r.hostname,
            r.scopes,
            r.status,
            r.account_id,
            r.error,
            created,
            updated,
            expires,
            r.poll_token_hash,
            r.state_hash,
            r.pkce_verifier,
            r.version,
            r.peer_addr,
            client,
            r.token_lifetime_secs,
        )
        .execute(&mut *conn)
        .await?;
    }
    for b in &image.bundles {
        let id = b.request_id.hyphenated().to_string();
        let (expires, obtained) = (time(b.expires_at), to_db(b.obtained_at));
        let (deadline, warned) = (time(b.refresh_expires_at), time(b.relogin_warned_at));
        sqlx::query!(
            "INSERT INTO token_bundles (request_id, access_token, refresh_token, token_type,
                 scope, expires_at, obtained_at, generation, refresh_error, account_uuid,
                 account_email, organization_uuid, organization_name, refresh_expires_at,
                 relogin_warned_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            id,
            b.access_token,
            b.refresh_token,
            b.token_type,
            b.scope,
            expires,
            obtained,
            b.generation,
            b.refresh_error,
            b.account_uuid,
            b.account_email,
            b.organization_uuid,
            b.organization_name,
            deadline,
            warned,
        )
        .execute(&mut *conn)
        .await?;
    }
    for a in &image.audit {
        let (request, at) = (a.request_id.hyphenated().to_string(), to_db(a.at));
        sqlx::query!(
            "INSERT INTO audit_events (id, request_id, at, actor, action, from_status,
                 to_status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            a.id,
            request,
            at,
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
        let at = to_db(e.at);
        sqlx::query!(
            "INSERT INTO admin_events (id, at, actor, subject, action, detail)
             VALUES (?, ?, ?, ?, ?, ?)",
            e.id,
            at,
            e.actor,
            e.subject,
            e.action,
            e.detail,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.accounts {
        let (failed, updated) = (time(s.last_failure_at), to_db(s.updated_at));
        let (five, seven, read) = (
            time(s.five_hour_resets_at),
            time(s.seven_day_resets_at),
            time(s.usage_read_at),
        );
        sqlx::query!(
            "INSERT INTO account_state (account_id, paused, last_failure_at, last_failure,
                 updated_at, five_hour_utilization, five_hour_resets_at, seven_day_utilization,
                 seven_day_resets_at, usage_read_at, usage_error, five_hour_warned_for,
                 seven_day_warned_for)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            s.account_id,
            s.paused,
            failed,
            s.last_failure,
            updated,
            s.five_hour_utilization,
            five,
            s.seven_day_utilization,
            seven,
            read,
            s.usage_error,
            s.five_hour_warned_for,
            s.seven_day_warned_for,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.sessions {
        let (created, expires) = (to_db(s.created_at), to_db(s.expires_at));
        sqlx::query!(
            "INSERT INTO admin_sessions (token_hash, csrf_token, created_at, expires_at,
                 admin_token_hash) VALUES (?, ?, ?, ?, ?)",
            s.token_hash,
            s.csrf_token,
            created,
            expires,
            s.admin_token_hash,
        )
        .execute(&mut *conn)
        .await?;
    }
    for d in &image.deliveries {
        let event = d.event_id.hyphenated().to_string();
        let request = d.request_id.map(|r| r.hyphenated().to_string());
        let (next, created, updated) = (
            to_db(d.next_attempt_at),
            to_db(d.created_at),
            to_db(d.updated_at),
        );
        sqlx::query!(
            "INSERT INTO webhook_deliveries (id, webhook, webhook_key, event_id, event_type,
                 request_id, body, status, attempts, next_attempt_at, last_error, created_at,
                 updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            d.id,
            d.webhook,
            d.webhook_key,
            event,
            d.event_type,
            request,
            d.body,
            d.status,
            d.attempts,
            next,
            d.last_error,
            created,
            updated,
        )
        .execute(&mut *conn)
        .await?;
    }
    for s in &image.settings {
        sqlx::query!(
            "INSERT INTO router_settings (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            s.name,
            s.value,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
