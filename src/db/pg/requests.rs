//! The PostgreSQL arms of [`crate::db::requests`]: the same transactions, the same audit
//! rows and events, through the same [`WriteTx`] commit path.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use super::{account_id, statuses, store};
use crate::db::commit::{Change, WriteTx};
use crate::db::requests::{
    lifetime, Claim, FlowSnapshot, Inserted, Listed, NewLogin, NewRow, StartedLogin, StoredRequest,
};
use crate::db::{decode, decode_time, Backend, Db, StoreError, PKCE_VERIFIER};
use crate::domain::event::EventType;
use crate::domain::time::to_db;
use crate::domain::{Audit, Scopes, Status, TokenBundle, TokenRequest, Transition};

/// Stores a create in its own transaction, under its owner's open-request limit (an
/// advisory lock, exact across routers), and raises its event.
pub async fn insert(db: &Db, row: &NewRow) -> Result<Inserted, StoreError> {
    let Backend::Postgres(pool) = &db.backend else {
        return Err(StoreError::Failed(
            "a PostgreSQL create on a SQLite store".into(),
        ));
    };
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let actor = row.audit.actor.to_string();
    let scopes = row.new.scopes.to_db();
    let lifetime_secs = row
        .new
        .lifetime_secs
        .map(|s| i64::try_from(s).map_err(|e| StoreError::Failed(format!("lifetime_secs: {e}"))))
        .transpose()?;
    let new = store::requests::NewRequest {
        id: row.id,
        client_name: &row.new.client_name,
        hostname: &row.new.hostname,
        scopes: &scopes,
        created_at: row.created_at,
        expires_at: row.expires_at,
        poll_token_hash: &row.poll_token_hash,
        peer_addr: Some(&row.peer_addr),
        client_id: row.client_id,
        token_lifetime_secs: lifetime_secs,
        actor: &actor,
        detail: row.audit.detail.as_deref(),
    };
    if row.max_open == 0 {
        store::requests::insert(tx.conn(), &new).await?;
    } else {
        let owner = match row.client_id {
            Some(client) => store::requests::Owner::Client(client),
            None => store::requests::Owner::Hostname(&row.new.hostname),
        };
        let max_open = i64::from(row.max_open);
        match store::requests::insert_within_limit(tx.conn(), &new, owner, max_open).await? {
            store::requests::Inserted::Created => {}
            store::requests::Inserted::TooManyOpen { next_expiry } => {
                return Ok(Inserted::TooManyOpen { next_expiry });
            }
        }
    }
    tx.audited(&Change {
        id: row.id,
        at: row.created_at,
        audit: &row.audit,
        from: None,
        to: Status::Pending,
    })
    .await?;
    tx.commit().await?;
    Ok(Inserted::Created)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<StoredRequest>, StoreError> {
    let Some(r) = store::requests::find(pool, id).await? else {
        return Ok(None);
    };
    Ok(Some(StoredRequest {
        poll_token_hash: r.poll_token_hash,
        request: TokenRequest {
            id: r.id,
            client_id: r.client_id,
            client_name: r.client_name,
            hostname: r.hostname,
            scopes: Scopes::from_db(&r.scopes),
            status: decode("status", &r.status)?,
            account_id: account_id(r.account_id)?,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            lifetime_secs: lifetime(r.token_lifetime_secs)?,
        },
    }))
}

/// A listing's rows as domain values.
pub fn listed(rows: Vec<store::requests::ListRow>) -> Result<Vec<Listed>, StoreError> {
    rows.into_iter()
        .map(|r| {
            Ok(Listed {
                request: TokenRequest {
                    id: r.id,
                    client_id: r.client_id,
                    client_name: r.client_name,
                    hostname: r.hostname,
                    scopes: Scopes::from_db(&r.scopes),
                    status: decode("status", &r.status)?,
                    account_id: account_id(r.account_id)?,
                    error: r.error,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    expires_at: r.expires_at,
                    lifetime_secs: lifetime(r.token_lifetime_secs)?,
                },
                account_email: r.account_email,
                organization_name: r.organization_name,
                peer_addr: r.peer_addr,
                refresh_expires_at: r.refresh_expires_at,
            })
        })
        .collect()
}

pub async fn find_flow(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<FlowSnapshot>, StoreError> {
    let Some(r) = store::requests::find_flow(pool, id).await? else {
        return Ok(None);
    };
    Ok(Some(FlowSnapshot {
        client_id: r.client_id,
        status: decode("status", &r.status)?,
        account_id: account_id(r.account_id)?,
        state_hash: r.state_hash,
        pkce_verifier: r
            .pkce_verifier
            .map(|v| db.open(PKCE_VERIFIER, id, &v))
            .transpose()?,
        updated_at: to_db(r.updated_at),
        expires_at: r.expires_at,
        scopes: Scopes::from_db(&r.scopes),
        version: r.version,
    }))
}

pub async fn start_login(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    before: &FlowSnapshot,
    login: &NewLogin<'_>,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<Option<i64>, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let verifier = db.seal(PKCE_VERIFIER, id, login.pkce_verifier);
    let version = store::requests::start_login(
        tx.conn(),
        id,
        before.version,
        i64::from(login.account_id),
        login.state_hash,
        &verifier,
        now,
        &statuses(Transition::SelectAccount.from()),
    )
    .await?;
    let Some(version) = version else {
        return Ok(None);
    };
    tx.record(id, now, audit, Some(before.status), Status::InProgress)
        .await?;
    tx.commit().await?;
    Ok(Some(version))
}

pub async fn restore(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    started: &StartedLogin<'_>,
    before: &FlowSnapshot,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let verifier = before
        .pkce_verifier
        .as_ref()
        .map(|v| db.seal(PKCE_VERIFIER, id, v.expose_secret()));
    let columns = store::requests::FlowColumns {
        status: before.status.as_str(),
        account_id: before.account_id.map(i64::from),
        state_hash: before.state_hash.as_deref(),
        pkce_verifier: verifier.as_deref(),
        updated_at: decode_time("updated_at", &before.updated_at)?,
    };
    let done = store::requests::restore(
        tx.conn(),
        id,
        started.version,
        started.state_hash,
        &columns,
        &statuses(Transition::Restore.from()),
    )
    .await?;
    if !done {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(Status::InProgress), before.status)
        .await?;
    let reason = audit.detail.as_deref().unwrap_or(audit.action);
    store::accounts::record_failure(tx.conn(), i64::from(started.account_id), reason, now).await?;
    tx.commit().await?;
    Ok(true)
}

fn claim(db: &Db, r: store::requests::ClaimRow) -> Result<Claim, StoreError> {
    Ok(Claim {
        id: r.id,
        version: r.version,
        account_id: account_id(r.account_id)?,
        pkce_verifier: db.open(PKCE_VERIFIER, r.id, &r.pkce_verifier)?,
        scopes: Scopes::from_db(&r.scopes),
        lifetime_secs: lifetime(r.token_lifetime_secs)?,
    })
}

pub async fn claim_state(
    db: &Db,
    pool: &PgPool,
    state_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Claim>, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let from = statuses(Transition::Approve.from());
    let Some(r) = store::requests::claim_state(tx.conn(), state_hash, now, &from).await? else {
        return Ok(None);
    };
    tx.touched(r.id);
    tx.commit().await?;
    claim(db, r).map(Some)
}

pub async fn claim_for_code(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    state_hash: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<Option<Claim>, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let from = statuses(Transition::Approve.from());
    let row = store::requests::claim_for_code(tx.conn(), id, state_hash, now, &from).await?;
    let Some(r) = row else { return Ok(None) };
    tx.touched(id);
    tx.commit().await?;
    claim(db, r).map(Some)
}

pub async fn approve(
    db: &Db,
    pool: &PgPool,
    claim: &Claim,
    bundle: &TokenBundle,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let id = claim.id;
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let from = statuses(Transition::Approve.from());
    let account = claim.account_id.map(i64::from);
    if !store::requests::approve(tx.conn(), id, account, now, &from).await? {
        return Ok(false);
    }
    super::tokens::insert(db, tx.conn(), id, bundle).await?;
    tx.record(id, now, audit, Some(Status::InProgress), Status::Approved)
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
pub async fn fail_claimed(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    version: i64,
    failed_account: Option<u32>,
    error: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let from = statuses(Transition::Fail.from());
    if !store::requests::fail_claimed(tx.conn(), id, version, error, now, &from).await? {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(Status::InProgress), Status::Error)
        .await?;
    if let Some(account) = failed_account {
        let reason = audit.detail.as_deref().unwrap_or(audit.action);
        store::accounts::record_failure(tx.conn(), i64::from(account), reason, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn finish_by_state(
    db: &Db,
    pool: &PgPool,
    state_hash: &[u8],
    transition: Transition,
    error: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<Option<Uuid>, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let to = transition.to().unwrap_or(Status::Error);
    let from = statuses(transition.from());
    let id =
        store::requests::finish_by_state(tx.conn(), state_hash, to.as_str(), error, now, &from)
            .await?;
    let Some(id) = id else { return Ok(None) };
    tx.record(id, now, audit, Some(Status::InProgress), to)
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

pub async fn hold(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    if !store::requests::lock_pending(tx.conn(), id).await? {
        return Ok(false);
    }
    let audit = Audit::new(crate::domain::Actor::Policy, "hold").with_detail(reason);
    tx.record(id, now, &audit, Some(Status::Pending), Status::Pending)
        .await?;
    tx.raise(Some(id), EventType::RequestPending, now).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn transition(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    transition: Transition,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let to = transition.to().unwrap_or(Status::Error);
    let from = statuses(transition.from());
    let before = store::requests::transition(tx.conn(), id, to.as_str(), now, &from).await?;
    let Some(before) = before else {
        return Ok(false);
    };
    tx.record(id, now, audit, Some(decode("status", &before)?), to)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn revoke(
    db: &Db,
    pool: &PgPool,
    id: Uuid,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let from = statuses(Transition::Revoke.from());
    if !store::requests::revoke(tx.conn(), id, now, &from).await? {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(Status::Approved), Status::Revoked)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// One transaction of the reaper's expiry: the due rows, locked and skipped by any other
/// router's pass, expired with their audit rows in one statement.
pub async fn expire_chunk(
    db: &Db,
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let mut tx = WriteTx::begin_pg(db, pool).await?;
    let audit = Audit::new(crate::domain::Actor::Reaper, "expire");
    let actor = audit.actor.to_string();
    let expired = store::requests::expire_due(tx.conn(), now, limit, &actor, audit.action).await?;
    for id in &expired {
        tx.audited(&Change {
            id: *id,
            at: now,
            audit: &audit,
            from: None,
            to: Status::Expired,
        })
        .await?;
    }
    tx.commit().await?;
    Ok(expired.len() as u64)
}
