//! The one path every change to a request takes.
//!
//! A [`WriteTx`] is a `BEGIN IMMEDIATE` transaction that also collects what the change means
//! for the rest of the process. In the transaction, [`WriteTx::record`] writes the change's
//! audit row and the outbox rows of the event it raises, rendered above the store by its
//! [`Hooks`]. After the commit, [`WriteTx::commit`] hands the [`Committed`] summary to those
//! hooks, which drop cached rows, wake long-poll waiters and wake the webhook sender. A write
//! path that uses it cannot forget any of those, and nothing happens for a transaction that
//! does not commit. The store itself knows nothing of caches, waiters or webhooks.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, SqliteConnection};
use uuid::Uuid;

use super::StoreError;
use super::{audit, deliveries, Backend, Db};
use crate::domain::event::{EventType, RequestSnapshot};
use crate::domain::time;
use crate::domain::{Audit, Scopes, Status};

/// What the layer above the store does around the store's commits. The store calls it; it
/// imports nothing of what implements it.
pub trait Hooks: Send + Sync {
    /// Whether any webhook wants `event`, so that nothing is read or written when none does.
    fn wants(&self, event: EventType) -> bool;

    /// The outbox rows of event `id` (one per webhook that wants it), with their bodies
    /// rendered from the request as the transaction sees it, and the event's own fields
    /// (`detail`, a JSON object: the account and deadline of `token.relogin_due`, say).
    fn deliveries(
        &self,
        event: EventType,
        id: Uuid,
        at: DateTime<Utc>,
        request: Option<&RequestSnapshot>,
        detail: Option<&serde_json::Value>,
    ) -> Vec<deliveries::Rendered>;

    /// After each commit, with what it changed: this router's, and (PostgreSQL) every other
    /// router's, as announced.
    fn committed(&self, committed: Committed);

    /// Whether this router hears other routers' commits now (PostgreSQL): while it does
    /// not, nothing cached may be trusted.
    fn listening(&self, _live: bool) {}
}

/// What one commit changed, for what must follow it.
#[derive(Debug, Default)]
pub struct Committed {
    /// Requests whose status (or outcome) changed: cached rows dropped, waiters woken.
    pub changed: Vec<Uuid>,
    /// Requests changed without a transition (a consumed state): cached rows dropped only,
    /// so a long poll is not answered with the same status it already has.
    pub touched: Vec<Uuid>,
    /// Requests were deleted (retention): every cached row may be stale.
    pub deleted: bool,
    /// Outbox rows were written: the webhook sender has work.
    pub queued: bool,
    /// Any request may have changed (another router's commit named too many, or changes
    /// were missed): every cached row dropped, every waiter woken.
    pub all_changed: bool,
}

impl Committed {
    /// Whether it changed nothing anyone needs to hear of.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
            && self.touched.is_empty()
            && !self.deleted
            && !self.queued
            && !self.all_changed
    }
}

/// No caches, no waiters, no webhooks: a store used by a command rather than the service.
#[derive(Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn wants(&self, _: EventType) -> bool {
        false
    }

    fn deliveries(
        &self,
        _: EventType,
        _: Uuid,
        _: DateTime<Utc>,
        _: Option<&RequestSnapshot>,
        _: Option<&serde_json::Value>,
    ) -> Vec<deliveries::Rendered> {
        Vec::new()
    }

    fn committed(&self, _: Committed) {}
}

/// One change to a request, as its audit row records it.
#[derive(Clone, Copy)]
pub struct Change<'a> {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub audit: &'a Audit,
    pub from: Option<Status>,
    pub to: Status,
}

/// The statements a [`WriteTx`] writes besides the change's own, for each backend.
pub(crate) trait TxStatements: sqlx::Database {
    /// The change's audit row.
    fn audit<'a>(
        conn: &'a mut Self::Connection,
        change: &'a Change<'a>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// A request's public fields as the transaction sees them, for an event's body.
    fn snapshot(
        conn: &mut Self::Connection,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<RequestSnapshot>, StoreError>> + Send + '_;

    /// One outbox row.
    fn queue<'a>(
        conn: &'a mut Self::Connection,
        delivery: &'a deliveries::NewDelivery<'a>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// Tells every other router what the transaction changed, when it commits.
    fn announce<'a>(
        conn: &'a mut Self::Connection,
        db: &'a Db,
        committed: &'a Committed,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

impl TxStatements for sqlx::Sqlite {
    async fn audit<'a>(
        conn: &'a mut SqliteConnection,
        c: &'a Change<'a>,
    ) -> Result<(), StoreError> {
        audit::record(conn, c.id, c.at, c.audit, c.from, c.to).await
    }

    async fn snapshot(
        conn: &mut SqliteConnection,
        id: Uuid,
    ) -> Result<Option<RequestSnapshot>, StoreError> {
        snapshot(conn, id).await
    }

    async fn queue<'a>(
        conn: &'a mut SqliteConnection,
        delivery: &'a deliveries::NewDelivery<'a>,
    ) -> Result<(), StoreError> {
        deliveries::insert(conn, delivery).await
    }

    /// One router per SQLite file: nobody else to tell.
    async fn announce<'a>(
        _: &'a mut SqliteConnection,
        _: &'a Db,
        _: &'a Committed,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

impl TxStatements for sqlx::Postgres {
    async fn audit<'a>(conn: &'a mut PgConnection, c: &'a Change<'a>) -> Result<(), StoreError> {
        super::pg::audit(conn, c).await
    }

    async fn snapshot(
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<Option<RequestSnapshot>, StoreError> {
        super::pg::snapshot(conn, id).await
    }

    async fn queue<'a>(
        conn: &'a mut PgConnection,
        delivery: &'a deliveries::NewDelivery<'a>,
    ) -> Result<(), StoreError> {
        super::pg::queue(conn, delivery).await
    }

    async fn announce<'a>(
        conn: &'a mut PgConnection,
        db: &'a Db,
        committed: &'a Committed,
    ) -> Result<(), StoreError> {
        super::pg::changes::announce(conn, db.origin, committed).await
    }
}

/// A write transaction on either backend (SQLite's by default), with what it changed.
pub(crate) struct WriteTx<'c, D: sqlx::Database = sqlx::Sqlite> {
    tx: sqlx::Transaction<'c, D>,
    db: Db,
    /// Requests whose status (or outcome) changed: cached rows dropped, waiters woken.
    changed: Vec<Uuid>,
    /// Requests changed without a transition (a consumed state): cached rows dropped only,
    /// so a long poll is not answered with the same status it already has.
    touched: Vec<Uuid>,
    /// Whether outbox rows were written.
    queued: bool,
}

impl WriteTx<'static> {
    /// Takes SQLite's write lock at once, so reading the old status and changing it can
    /// never be interleaved with another writer. For a SQLite store only: a PostgreSQL
    /// store's functions begin theirs with [`WriteTx::begin_pg`].
    pub async fn begin(db: &Db) -> Result<Self, StoreError> {
        let Backend::Sqlite(s) = &db.backend else {
            return Err(StoreError::Failed(
                "a SQLite transaction on a PostgreSQL store".into(),
            ));
        };
        Ok(Self::new(db, s.write.begin_with("BEGIN IMMEDIATE").await?))
    }
}

impl WriteTx<'static, sqlx::Postgres> {
    /// A transaction on PostgreSQL. Its statements are conditional writes, which take row
    /// locks, so two routers' changes to one row are serialized by the server.
    pub async fn begin_pg(db: &Db, pool: &PgPool) -> Result<Self, StoreError> {
        Ok(Self::new(db, super::pg::begin(pool).await?))
    }
}

impl<'c> WriteTx<'c> {
    /// The transaction's connection, for the change's own statements.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl<'c> WriteTx<'c, sqlx::Postgres> {
    /// The transaction's connection, for the change's own statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl<'c, D: TxStatements> WriteTx<'c, D> {
    fn new(db: &Db, tx: sqlx::Transaction<'c, D>) -> Self {
        Self {
            tx,
            db: db.clone(),
            changed: Vec::new(),
            touched: Vec::new(),
            queued: false,
        }
    }

    /// A change to request `id` that is no transition of its own (a consumed state): the
    /// cache hears of it, the waiters do not.
    pub fn touched(&mut self, id: Uuid) {
        self.touched.push(id);
    }

    /// Writes the audit row of a change to request `id`, and the outbox rows of the event
    /// the change raises (if any webhook wants it).
    pub async fn record(
        &mut self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &Audit,
        from: Option<Status>,
        to: Status,
    ) -> Result<(), StoreError> {
        let change = Change {
            id,
            at,
            audit,
            from,
            to,
        };
        D::audit(&mut self.tx, &change).await?;
        self.audited(&change).await
    }

    /// What follows a change whose audit row is written: the change is noted for after the
    /// commit, and its event (if any) queued. For changes audited set-wise (the reaper's).
    pub async fn audited(&mut self, change: &Change<'_>) -> Result<(), StoreError> {
        self.changed.push(change.id);
        if !change.audit.quiet {
            if let Some(event) = EventType::of_change(change.audit.action, change.from, change.to) {
                self.raise(Some(change.id), event, change.at).await?;
            }
        }
        Ok(())
    }

    /// Queues `event` about request `id` (none for a test event) to every webhook that
    /// wants it, with the request's fields as this transaction sees them.
    pub async fn raise(
        &mut self,
        id: Option<Uuid>,
        event: EventType,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.raise_with(id, event, at, None).await
    }

    /// [`Self::raise`], with the event's own fields beside the request's.
    pub async fn raise_with(
        &mut self,
        id: Option<Uuid>,
        event: EventType,
        at: DateTime<Utc>,
        detail: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let hooks = self.db.hooks.clone();
        if !hooks.wants(event) {
            return Ok(());
        }
        let snapshot = match id {
            Some(id) => D::snapshot(&mut self.tx, id).await?,
            None => None,
        };
        let event_id = Uuid::new_v4();
        // Queued (and so due) now, whatever time the change itself is stamped with.
        let now = time::now();
        for rendered in hooks.deliveries(event, event_id, at, snapshot.as_ref(), detail) {
            let row = deliveries::NewDelivery {
                rendered: &rendered,
                event_id,
                event_type: event.as_str(),
                request_id: id,
                at: now,
            };
            D::queue(&mut self.tx, &row).await?;
            self.queued = true;
        }
        Ok(())
    }

    /// Commits, then tells the layer above what changed ([`Hooks::committed`]).
    pub async fn commit(self) -> Result<(), StoreError> {
        let WriteTx {
            mut tx,
            db,
            changed,
            touched,
            queued,
        } = self;
        let committed = Committed {
            changed,
            touched,
            queued,
            ..Committed::default()
        };
        D::announce(&mut tx, &db, &committed).await?;
        tx.commit().await?;
        db.hooks.committed(committed);
        Ok(())
    }
}

/// A request's public fields inside the transaction, for an event's body.
async fn snapshot(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<RequestSnapshot>, StoreError> {
    let hyphenated = id.hyphenated();
    let row = sqlx::query!(
        r#"SELECT client_name, hostname, scopes, status, account_id AS "account_id: u32", error
           FROM auth_requests WHERE id = ?"#,
        hyphenated,
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(RequestSnapshot {
            request_id: id,
            client_name: r.client_name,
            hostname: r.hostname,
            scopes: Scopes::from_db(&r.scopes).as_slice().to_vec(),
            status: super::decode("status", &r.status)?,
            account_id: r.account_id,
            error: r.error,
        })
    })
    .transpose()
}
