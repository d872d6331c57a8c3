//! `auth_requests`: one function per statement, or per transaction where a change and its
//! audit row are written together.
//!
//! Every status change is one conditional `UPDATE` inside a `BEGIN IMMEDIATE` transaction
//! that also writes its `audit_events` row. The `WHERE` names the statuses the transition
//! may start from (bound from [`Transition::from`]) and, where a flow read the row first,
//! the `version` it read. Whoever's statement matches first wins; the others see zero rows
//! affected and report a conflict. Every change bumps `version`.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::commit::{Change, WriteTx};
use super::StoreError;
use super::{accounts, decode, decode_time, tokens, Db, PKCE_VERIFIER};
use super::{pg, Backend};
use crate::domain::event::EventType;
use crate::domain::time::to_db;
use crate::domain::{
    Audit, NewTokenRequest, Scopes, Status, TokenBundle, TokenRequest, Transition,
};

/// A request as the poll endpoints need it: the public fields and the poll token's hash.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub request: TokenRequest,
    pub poll_token_hash: Vec<u8>,
}

/// The flow columns of a request, read before a select-account so that a failed control
/// browser call can put them back exactly.
#[derive(Debug, Clone)]
pub struct FlowSnapshot {
    /// The enrolled client that made the request, whose allowed accounts bound the choice.
    pub client_id: Option<Uuid>,
    pub status: Status,
    pub account_id: Option<u32>,
    pub state_hash: Option<Vec<u8>>,
    pub pkce_verifier: Option<SecretString>,
    pub updated_at: String,
    pub expires_at: DateTime<Utc>,
    pub scopes: Scopes,
    pub version: i64,
}

/// What a login holds once it has consumed a state (or a pasted code has): enough to finish
/// the exchange.
#[derive(Debug)]
pub struct Claim {
    pub id: Uuid,
    pub version: i64,
    pub account_id: Option<u32>,
    pub pkce_verifier: SecretString,
    pub scopes: Scopes,
    /// The lifetime of the long-lived token the request asks for, if it does.
    pub lifetime_secs: Option<u64>,
}

/// The request's status inside a write transaction, for the audit row's `from_status`.
async fn status_of(conn: &mut SqliteConnection, id: Uuid) -> Result<Option<Status>, StoreError> {
    let id = id.hyphenated();
    let status = sqlx::query_scalar!("SELECT status FROM auth_requests WHERE id = ?", id)
        .fetch_optional(conn)
        .await?;
    status.map(|s| decode("status", &s)).transpose()
}

/// The outcome of [`insert`].
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Created,
    /// The hostname already has `max_open_for_host` open requests; the soonest ends then.
    TooManyOpen {
        next_expiry: DateTime<Utc>,
    },
}

/// A request to store, as the create handler hands it to the [`super::batch`] writer.
#[derive(Debug)]
pub struct NewRow {
    pub id: Uuid,
    pub new: NewTokenRequest,
    pub poll_token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The enrolled client that makes it, if any: the open-request limit then counts its
    /// requests rather than its hostname's.
    pub client_id: Option<Uuid>,
    /// The most open requests its client (or, unverified, its hostname) may have (0: no
    /// limit).
    pub max_open: u32,
    /// The client's address (see [`crate::routes`]' peer resolution).
    pub peer_addr: String,
    pub audit: Audit,
}

/// The columns of a request as stored, before they become domain values.
struct RequestRow {
    id: uuid::fmt::Hyphenated,
    client_id: Option<uuid::fmt::Hyphenated>,
    client_name: String,
    hostname: String,
    scopes: String,
    status: String,
    account_id: Option<u32>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    poll_token_hash: Vec<u8>,
    token_lifetime_secs: Option<i64>,
}

impl TryFrom<RequestRow> for StoredRequest {
    type Error = StoreError;

    fn try_from(r: RequestRow) -> Result<Self, StoreError> {
        Ok(StoredRequest {
            poll_token_hash: r.poll_token_hash,
            request: TokenRequest {
                id: r.id.into_uuid(),
                client_id: r.client_id.map(uuid::fmt::Hyphenated::into_uuid),
                client_name: r.client_name,
                hostname: r.hostname,
                scopes: Scopes::from_db(&r.scopes),
                status: decode("status", &r.status)?,
                account_id: r.account_id,
                error: r.error,
                created_at: r.created_at,
                updated_at: r.updated_at,
                expires_at: r.expires_at,
                lifetime_secs: lifetime(r.token_lifetime_secs)?,
            },
        })
    }
}

/// A request as listings show it, with whose tokens it got, when the provider said.
#[derive(Debug, Clone)]
pub struct Listed {
    pub request: TokenRequest,
    pub account_email: Option<String>,
    pub organization_name: Option<String>,
    /// The address it came from, when recorded.
    pub peer_addr: Option<String>,
    /// When an approved request's refresh token dies for good, when known.
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// A row of the `request_listing` view, as SQLite types it: the one column list and the one
/// mapping of every listing.
struct ListRow {
    id: String,
    client_id: Option<String>,
    client_name: String,
    hostname: String,
    scopes: String,
    status: String,
    account_id: Option<i64>,
    error: Option<String>,
    created_at: String,
    updated_at: String,
    expires_at: String,
    peer_addr: Option<String>,
    account_email: Option<String>,
    organization_name: Option<String>,
    token_lifetime_secs: Option<i64>,
    refresh_expires_at: Option<String>,
}

impl TryFrom<ListRow> for Listed {
    type Error = StoreError;

    fn try_from(r: ListRow) -> Result<Self, StoreError> {
        let id = |column: &str, text: &str| {
            Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        };
        Ok(Listed {
            request: TokenRequest {
                id: id("id", &r.id)?,
                client_id: r.client_id.map(|c| id("client_id", &c)).transpose()?,
                client_name: r.client_name,
                hostname: r.hostname,
                scopes: Scopes::from_db(&r.scopes),
                status: decode("status", &r.status)?,
                account_id: r
                    .account_id
                    .map(|a| {
                        u32::try_from(a)
                            .map_err(|e| StoreError::Corrupt(format!("account_id: {e}")))
                    })
                    .transpose()?,
                error: r.error,
                created_at: decode_time("created_at", &r.created_at)?,
                updated_at: decode_time("updated_at", &r.updated_at)?,
                expires_at: decode_time("expires_at", &r.expires_at)?,
                lifetime_secs: lifetime(r.token_lifetime_secs)?,
            },
            account_email: r.account_email,
            organization_name: r.organization_name,
            peer_addr: r.peer_addr,
            refresh_expires_at: r
                .refresh_expires_at
                .map(|t| decode_time("refresh_expires_at", &t))
                .transpose()?,
        })
    }
}

/// A stored lifetime, which the create checked to be positive.
pub(super) fn lifetime(secs: Option<i64>) -> Result<Option<u64>, StoreError> {
    secs.map(|s| {
        u64::try_from(s).map_err(|e| StoreError::Corrupt(format!("token_lifetime_secs: {e}")))
    })
    .transpose()
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<StoredRequest>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::find(pool, id).await;
    }
    let id = id.hyphenated();
    let row = sqlx::query_as!(
        RequestRow,
        r#"SELECT id AS "id: uuid::fmt::Hyphenated",
                  client_id AS "client_id: uuid::fmt::Hyphenated", client_name, hostname, scopes, status,
                  account_id AS "account_id: u32", error,
                  created_at AS "created_at: DateTime<Utc>",
                  updated_at AS "updated_at: DateTime<Utc>",
                  expires_at AS "expires_at: DateTime<Utc>",
                  poll_token_hash, token_lifetime_secs
           FROM auth_requests WHERE id = ?"#,
        id,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(StoredRequest::try_from).transpose()
}

/// Newest first, optionally of one status.
pub async fn list(db: &Db, status: Option<Status>, limit: u32) -> Result<Vec<Listed>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::listed(
            pg::store::requests::list(pool, status.map(Status::as_str), i64::from(limit)).await?,
        );
    }
    let status = status.map(Status::as_str);
    let rows = sqlx::query_as!(
        ListRow,
        "SELECT * FROM request_listing
         WHERE ?1 IS NULL OR status = ?1
         ORDER BY created_at DESC, id DESC
         LIMIT ?2",
        status,
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    rows.into_iter().map(Listed::try_from).collect()
}

/// Open requests (pending, in progress), oldest first: what waits for an operator.
pub async fn list_open(db: &Db, limit: u32) -> Result<Vec<Listed>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::listed(pg::store::requests::list_open(pool, i64::from(limit)).await?);
    }
    let rows = sqlx::query_as!(
        ListRow,
        "SELECT * FROM request_listing
         WHERE status IN ('pending', 'in_progress')
         ORDER BY created_at ASC, id ASC
         LIMIT ?",
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    rows.into_iter().map(Listed::try_from).collect()
}

/// Finished requests, most recently changed first: the console's history.
pub async fn list_finished(db: &Db, limit: u32) -> Result<Vec<Listed>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::listed(
            pg::store::requests::list_finished(pool, i64::from(limit)).await?,
        );
    }
    let rows = sqlx::query_as!(
        ListRow,
        "SELECT * FROM request_listing
         WHERE status NOT IN ('pending', 'in_progress')
         ORDER BY updated_at DESC, id DESC
         LIMIT ?",
        limit,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?;
    rows.into_iter().map(Listed::try_from).collect()
}

/// How many requests the database holds in each status (for `/metrics`).
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return Ok(pg::store::requests::count_by_status(pool).await?);
    }
    let rows =
        sqlx::query!(r#"SELECT status, COUNT(*) AS "n!: i64" FROM auth_requests GROUP BY status"#)
            .fetch_all(&db.sqlite()?.read)
            .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

pub async fn find_flow(db: &Db, id: Uuid) -> Result<Option<FlowSnapshot>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::find_flow(db, pool, id).await;
    }
    let id_uuid = id;
    let id = id.hyphenated();
    let row = sqlx::query!(
        r#"SELECT status, account_id AS "account_id: u32", state_hash, pkce_verifier,
                  updated_at, expires_at AS "expires_at: DateTime<Utc>", scopes, version,
                  client_id AS "client_id: uuid::fmt::Hyphenated"
           FROM auth_requests WHERE id = ?"#,
        id,
    )
    .fetch_all(&db.sqlite()?.read)
    .await?
    .into_iter()
    .next();
    row.map(|r| {
        Ok(FlowSnapshot {
            client_id: r.client_id.map(uuid::fmt::Hyphenated::into_uuid),
            status: decode("status", &r.status)?,
            account_id: r.account_id,
            state_hash: r.state_hash,
            pkce_verifier: r
                .pkce_verifier
                .map(|v| db.open(PKCE_VERIFIER, id_uuid, &v))
                .transpose()?,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            scopes: Scopes::from_db(&r.scopes),
            version: r.version,
        })
    })
    .transpose()
}

/// A login about to be opened, as stored: the account and the callback's secrets.
pub struct NewLogin<'a> {
    pub account_id: u32,
    pub state_hash: &'a [u8],
    pub pkce_verifier: &'a str,
}

/// Starts a login with a new state and verifier, if the row is still at `before.version`
/// and open. Returns the new version.
pub async fn start_login(
    db: &Db,
    id: Uuid,
    before: &FlowSnapshot,
    login: &NewLogin<'_>,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<Option<i64>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::start_login(db, pool, id, before, login, now, audit).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let at = to_db(now);
    let from = Transition::SelectAccount.from_json();
    let verifier = db.seal(PKCE_VERIFIER, id, login.pkce_verifier);
    let version = sqlx::query_scalar!(
        r#"UPDATE auth_requests
           SET status = 'in_progress', account_id = ?1, state_hash = ?2, pkce_verifier = ?3,
               updated_at = ?4, version = version + 1
           WHERE id = ?5 AND version = ?6 AND expires_at > ?4
             AND status IN (SELECT value FROM json_each(?7))
           RETURNING version AS "version!: i64""#,
        login.account_id,
        login.state_hash,
        verifier,
        at,
        hyphenated,
        before.version,
        from,
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some(version) = version else {
        return Ok(None);
    };
    tx.record(id, now, audit, Some(before.status), Status::InProgress)
        .await?;
    tx.commit().await?;
    Ok(Some(version))
}

/// The login a select-account started, as [`start_login`] left the row.
pub struct StartedLogin<'a> {
    pub version: i64,
    pub state_hash: &'a [u8],
    pub account_id: u32,
}

/// Puts back the flow columns of `before`, unless anything touched the row since our own
/// `start_login` (which left it at `version`, waiting for `state_hash`).
pub async fn restore(
    db: &Db,
    id: Uuid,
    started: &StartedLogin<'_>,
    before: &FlowSnapshot,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::restore(db, pool, id, started, before, now, audit).await;
    }
    let (version, state_hash, failed_account) =
        (started.version, started.state_hash, started.account_id);
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let status = before.status.as_str();
    let verifier = before
        .pkce_verifier
        .as_ref()
        .map(|v| db.seal(PKCE_VERIFIER, id, v.expose_secret()));
    let from = Transition::Restore.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = ?1, account_id = ?2, state_hash = ?3, pkce_verifier = ?4,
             updated_at = ?5, version = version + 1
         WHERE id = ?6 AND version = ?7 AND state_hash = ?8
           AND status IN (SELECT value FROM json_each(?9))",
        status,
        before.account_id,
        before.state_hash,
        verifier,
        before.updated_at,
        hyphenated,
        version,
        state_hash,
        from,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(Status::InProgress), before.status)
        .await?;
    if let Some(account) = Some(failed_account) {
        let reason = audit.detail.as_deref().unwrap_or(audit.action);
        accounts::record_failure(tx.conn(), account, reason, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Consumes a state: the first caller gets the verifier, every later one gets `None`, so a
/// replayed callback can never cause a second exchange. Not a status change: no audit row.
pub async fn claim_state(
    db: &Db,
    state_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<Claim>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::claim_state(db, pool, state_hash, now).await;
    }
    let now = to_db(now);
    let from = Transition::Approve.from_json();
    let mut tx = WriteTx::begin(db).await?;
    let row = sqlx::query!(
        r#"UPDATE auth_requests
           SET state_hash = NULL, updated_at = ?1, version = version + 1
           WHERE state_hash = ?2 AND expires_at > ?1 AND pkce_verifier IS NOT NULL
             AND status IN (SELECT value FROM json_each(?3))
           RETURNING id AS "id!: uuid::fmt::Hyphenated", version AS "version!: i64",
                     pkce_verifier AS "pkce_verifier!", scopes AS "scopes!",
                     account_id AS "account_id: u32", token_lifetime_secs"#,
        now,
        state_hash,
        from,
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let id = r.id.into_uuid();
    tx.touched(id);
    tx.commit().await?;
    Ok(Some(Claim {
        id,
        version: r.version,
        account_id: r.account_id,
        pkce_verifier: db.open(PKCE_VERIFIER, id, &r.pkce_verifier)?,
        scopes: Scopes::from_db(&r.scopes),
        lifetime_secs: lifetime(r.token_lifetime_secs)?,
    }))
}

/// Consumes the current login of request `id` for a code an operator pasted. When the
/// pasted text carried a state, it must be the current one (`state_hash`).
pub async fn claim_for_code(
    db: &Db,
    id: Uuid,
    state_hash: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<Option<Claim>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::claim_for_code(db, pool, id, state_hash, now).await;
    }
    let hyphenated = id.hyphenated();
    let now = to_db(now);
    let from = Transition::Approve.from_json();
    let mut tx = WriteTx::begin(db).await?;
    let row = sqlx::query!(
        r#"UPDATE auth_requests
           SET state_hash = NULL, updated_at = ?1, version = version + 1
           WHERE id = ?2 AND state_hash IS NOT NULL AND (?3 IS NULL OR state_hash = ?3)
             AND expires_at > ?1 AND pkce_verifier IS NOT NULL
             AND status IN (SELECT value FROM json_each(?4))
           RETURNING version AS "version!: i64", pkce_verifier AS "pkce_verifier!",
                     scopes AS "scopes!", account_id AS "account_id: u32",
                     token_lifetime_secs"#,
        now,
        hyphenated,
        state_hash,
        from,
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some(r) = row else { return Ok(None) };
    tx.touched(id);
    tx.commit().await?;
    Ok(Some(Claim {
        id,
        version: r.version,
        account_id: r.account_id,
        pkce_verifier: db.open(PKCE_VERIFIER, id, &r.pkce_verifier)?,
        scopes: Scopes::from_db(&r.scopes),
        lifetime_secs: lifetime(r.token_lifetime_secs)?,
    }))
}

/// Approves a claimed request and stores its tokens, in one transaction. `false` when the
/// request ended (denied, cancelled, expired, or approved by another login) during the
/// exchange.
///
/// A claimed login wins over whatever an operator started meanwhile: once the provider has
/// sent a code for the account the operator chose, the exchange's tokens are good, and a
/// re-select (succeeded, failed and restored, or still in flight) must not throw them away.
/// So this checks the status and the deadline, not the row's version, and puts back the
/// claim's account and clears any newer login's state. The failure path,
/// [`fail_claimed`], does check the version, so a failed exchange never ends a newer login.
pub async fn approve(
    db: &Db,
    claim: &Claim,
    bundle: &TokenBundle,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::approve(db, pool, claim, bundle, now, audit).await;
    }
    let id = claim.id;
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let at = to_db(now);
    let from = Transition::Approve.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'approved', account_id = ?1, state_hash = NULL, pkce_verifier = NULL,
             error = NULL, updated_at = ?2, version = version + 1
         WHERE id = ?3 AND expires_at > ?2
           AND status IN (SELECT value FROM json_each(?4))",
        claim.account_id,
        at,
        hyphenated,
        from,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tokens::insert(db, tx.conn(), id, bundle).await?;
    tx.record(id, now, audit, Some(Status::InProgress), Status::Approved)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks a claimed request as failed, unless it moved on meanwhile.
pub async fn fail_claimed(
    db: &Db,
    id: Uuid,
    version: i64,
    failed_account: Option<u32>,
    error: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::fail_claimed(
            db,
            pool,
            id,
            version,
            failed_account,
            error,
            now,
            audit,
        )
        .await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let at = to_db(now);
    let from = Transition::Fail.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = 'error', error = ?1, pkce_verifier = NULL, state_hash = NULL,
             updated_at = ?2, version = version + 1
         WHERE id = ?3 AND version = ?4 AND status IN (SELECT value FROM json_each(?5))",
        error,
        at,
        hyphenated,
        version,
        from,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(Status::InProgress), Status::Error)
        .await?;
    if let Some(account) = failed_account {
        let reason = audit.detail.as_deref().unwrap_or(audit.action);
        accounts::record_failure(tx.conn(), account, reason, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Ends the request waiting for `state_hash` with the provider's answer (`Deny` or `Fail`),
/// consuming the state. Returns the request's id when there was one.
pub async fn finish_by_state(
    db: &Db,
    state_hash: &[u8],
    transition: Transition,
    error: &str,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<Option<Uuid>, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::finish_by_state(db, pool, state_hash, transition, error, now, audit)
            .await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let to = transition.to().unwrap_or(Status::Error);
    let to_name = to.as_str();
    let at = to_db(now);
    let from = transition.from_json();
    let id = sqlx::query_scalar!(
        r#"UPDATE auth_requests
           SET status = ?1, error = ?2, state_hash = NULL, pkce_verifier = NULL,
               updated_at = ?3, version = version + 1
           WHERE state_hash = ?4 AND expires_at > ?3
             AND status IN (SELECT value FROM json_each(?5))
           RETURNING id AS "id!: uuid::fmt::Hyphenated""#,
        to_name,
        error,
        at,
        state_hash,
        from,
    )
    .fetch_optional(tx.conn())
    .await?;
    let Some(id) = id.map(|h| h.into_uuid()) else {
        return Ok(None);
    };
    // Only `in_progress` requests hold a state, so that is where this one came from.
    tx.record(id, now, audit, Some(Status::InProgress), to)
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Leaves a request pending for an operator, with an audit row saying why the approval
/// policy could not start its login; raises the `request.pending` its quiet create did not.
pub async fn hold(db: &Db, id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::hold(db, pool, id, reason, now).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let pending = sqlx::query_scalar!(
        "SELECT COUNT(*) FROM auth_requests WHERE id = ? AND status = 'pending'",
        hyphenated
    )
    .fetch_one(tx.conn())
    .await?;
    if pending != 1 {
        return Ok(false);
    }
    let audit = Audit::new(crate::domain::Actor::Policy, "hold").with_detail(reason);
    tx.record(id, now, &audit, Some(Status::Pending), Status::Pending)
        .await?;
    tx.raise(Some(id), EventType::RequestPending, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// Applies an id-addressed terminal transition (deny, cancel) to an open, unexpired request.
pub async fn transition(
    db: &Db,
    id: Uuid,
    transition: Transition,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::transition(db, pool, id, transition, now, audit).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let Some(before) = status_of(tx.conn(), id).await? else {
        return Ok(false);
    };
    let hyphenated = id.hyphenated();
    let to = transition.to().unwrap_or(Status::Error);
    let to_name = to.as_str();
    let at = to_db(now);
    let from = transition.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests
         SET status = ?1, state_hash = NULL, pkce_verifier = NULL, updated_at = ?2,
             version = version + 1
         WHERE id = ?3 AND expires_at > ?2 AND status IN (SELECT value FROM json_each(?4))",
        to_name,
        at,
        hyphenated,
        from,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    tx.record(id, now, audit, Some(before), to).await?;
    tx.commit().await?;
    Ok(true)
}

/// Revokes an approved request: its tokens are deleted with the status change, and then
/// scrubbed from the files ([`Db::scrub`]).
pub async fn revoke(
    db: &Db,
    id: Uuid,
    now: DateTime<Utc>,
    audit: &Audit,
) -> Result<bool, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::revoke(db, pool, id, now, audit).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let hyphenated = id.hyphenated();
    let at = to_db(now);
    let from = Transition::Revoke.from_json();
    let done = sqlx::query!(
        "UPDATE auth_requests SET status = 'revoked', updated_at = ?1, version = version + 1
         WHERE id = ?2 AND status IN (SELECT value FROM json_each(?3))",
        at,
        hyphenated,
        from,
    )
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query!("DELETE FROM token_bundles WHERE request_id = ?", hyphenated)
        .execute(tx.conn())
        .await?;
    tx.record(id, now, audit, Some(Status::Approved), Status::Revoked)
        .await?;
    tx.commit().await?;
    db.scrub().await?;
    Ok(true)
}

/// Requests one expiry transaction takes at most. A pass over a backlog (a million requests
/// that expired while the router was down) is then many short transactions: the ids in
/// memory and the time other writers wait on the lock stay bounded.
pub const EXPIRE_CHUNK: i64 = 10_000;

/// Expires every open request whose deadline has passed, with one audit row each and a
/// `request.expired` event each for the webhooks that want it, [`EXPIRE_CHUNK`] requests
/// per transaction.
pub async fn expire_due(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let expired = expire_chunk(db, now).await?;
        total += expired;
        if expired < EXPIRE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// One transaction of [`expire_due`], set-based: the audit rows are inserted from one read
/// of the due rows ([`EXPIRE_AUDIT`]), then exactly those requests are expired in one
/// `UPDATE … RETURNING` ([`EXPIRE_UPDATE`]), and the changes go through the one commit path
/// (cache, waiters, events).
///
/// The statuses are spelled out instead of bound from [`Transition::Expire`] because SQLite
/// can only use the partial index `auth_requests_open_by_expiry` when the statuses are
/// literals; a unit test keeps the two lists equal, and an API test checks both plans.
async fn expire_chunk(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    if let Backend::Postgres(pool) = &db.backend {
        return pg::requests::expire_chunk(db, pool, now, EXPIRE_CHUNK).await;
    }
    let mut tx = WriteTx::begin(db).await?;
    let at = to_db(now);
    let audit = Audit::new(crate::domain::Actor::Reaper, "expire");
    let actor = audit.actor.to_string();
    let last_audit =
        sqlx::query_scalar!(r#"SELECT COALESCE(MAX(id), 0) AS "id!: i64" FROM audit_events"#)
            .fetch_one(tx.conn())
            .await?;
    sqlx::query_file!(
        "src/db/sql/expire_audit.sql",
        at,
        EXPIRE_CHUNK,
        actor,
        audit.action
    )
    .execute(tx.conn())
    .await?;
    let expired = sqlx::query_file!("src/db/sql/expire_update.sql", at, last_audit)
        .fetch_all(tx.conn())
        .await?;
    for row in &expired {
        // Only open requests are due, and the audit row says which one it was; the event
        // and the waiters need only the change's end.
        tx.audited(&Change {
            id: row.id.into_uuid(),
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

/// The reaper's read of the due requests, writing their audit rows; a plan test reads it.
pub const EXPIRE_AUDIT: &str = include_str!("sql/expire_audit.sql");
/// The reaper's update of the requests [`EXPIRE_AUDIT`] audited; a plan test reads it.
pub const EXPIRE_UPDATE: &str = include_str!("sql/expire_update.sql");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reapers_literal_status_list_matches_the_expire_transition() {
        assert_eq!(
            Transition::Expire.from(),
            &[Status::Pending, Status::InProgress]
        );
    }
}
