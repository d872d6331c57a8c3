//! Group commit for creating requests.
//!
//! With `synchronous = FULL` every commit waits for an fsync, and there is one writer, so
//! one create per transaction caps creation at one fsync each. Here a single task takes a
//! create, plus every create already queued behind it (up to [`MAX_BATCH`]), writes them all
//! in one transaction and commits once: they share the fsync. Each handler answers only
//! after that commit, so an acknowledged create is exactly as durable as one written alone.
//! (docs/performance.md has the figures with and without it.)

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::commit::{Change, WriteTx};
use super::requests::{Inserted, NewRow};
use super::Db;
use super::StoreError;
use crate::domain::time::to_db;
use crate::domain::Status;

/// The most creates one transaction takes.
const MAX_BATCH: usize = 64;
/// Creates waiting for the writer; beyond this, callers wait to enqueue.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Inserted, BatchError>>;

/// Why a batch failed, for every create in it (`sqlx::Error` cannot be cloned).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    /// The database was locked by another process for longer than the busy timeout.
    pub busy: bool,
    /// The database server could not be reached (PostgreSQL).
    pub unavailable: bool,
    pub message: String,
}

impl From<&StoreError> for BatchError {
    fn from(e: &StoreError) -> Self {
        Self {
            busy: e.is_busy(),
            unavailable: matches!(e, StoreError::Unavailable),
            message: e.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct InsertBatcher {
    to: Writer,
}

/// Where creates go: SQLite's one writer task, or (PostgreSQL, where many connections
/// write at once and the open-request limit is an advisory lock) straight to the store.
#[derive(Clone)]
enum Writer {
    Batched(mpsc::Sender<(NewRow, Reply)>),
    Direct(Db),
}

impl InsertBatcher {
    /// Starts the writer task, supervised: a panic restarts it on the same queue (the
    /// creates of the batch that panicked fail). It ends when the last `InsertBatcher` is
    /// dropped.
    pub fn spawn(db: Db) -> Self {
        if db.is_shared() {
            return Self {
                to: Writer::Direct(db),
            };
        }
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        crate::tasks::supervise("create writer", move || writer(db.clone(), jobs.clone()));
        Self {
            to: Writer::Batched(queue),
        }
    }

    /// Stores `row` with whatever else is waiting, and answers once that has committed.
    pub async fn insert(&self, row: NewRow) -> Result<Inserted, BatchError> {
        let queue = match &self.to {
            Writer::Batched(queue) => queue,
            Writer::Direct(db) => {
                return super::pg::requests::insert(db, &row)
                    .await
                    .map_err(|e| BatchError::from(&e))
            }
        };
        let stopped = || BatchError {
            busy: false,
            unavailable: false,
            message: "the writer has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        queue.send((row, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn writer(db: Db, jobs: Arc<Mutex<mpsc::Receiver<(NewRow, Reply)>>>) {
    let mut jobs = jobs.lock().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcome = write(&db, &batch).await;
        answer(&mut batch, outcome);
    }
}

/// Answers every create of `batch` with its outcome, or all of them with the error.
fn answer(batch: &mut Vec<(NewRow, Reply)>, outcome: Result<Vec<Inserted>, StoreError>) {
    match outcome {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let error = BatchError::from(&e);
            tracing::warn!(error = %error, creates = batch.len(), "a batch of creates failed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// The whole batch in one transaction; nothing is kept unless all of it commits.
async fn write(db: &Db, batch: &[(NewRow, Reply)]) -> Result<Vec<Inserted>, StoreError> {
    let rows: Vec<&NewRow> = batch.iter().map(|(row, _)| row).collect();
    let mut tx = WriteTx::begin(db).await?;
    let outcomes = insert_all(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Stores the rows that their open-request limit allows, in order, inside `tx`, each with
/// its audit row.
///
/// The limit is exact: the open requests of every key in the batch are counted in this
/// transaction (which holds the write lock), and each accepted row counts against the rows
/// after it, so no two creates can slip under a limit together. Each count stops at the
/// limit, so a hostname with thousands of open requests costs no more than one with ten.
///
/// Whatever the batch's size, it is a fixed number of statements (the counts, the requests,
/// their audit rows, the clients' last use), each taking its rows as one JSON array: sqlx
/// runs each statement as a trip to SQLite's thread, and one trip per row was most of a
/// create's cost (docs/performance.md).
pub(crate) async fn insert_all(
    tx: &mut WriteTx<'_>,
    rows: &[&NewRow],
) -> Result<Vec<Inserted>, StoreError> {
    let mut open = OpenCounts::read(tx.conn(), rows).await?;
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows {
        if row.max_open > 0 {
            let (count, next) = open.of(row);
            if *count >= i64::from(row.max_open) {
                outcomes.push(Inserted::TooManyOpen {
                    next_expiry: next.unwrap_or(row.expires_at),
                });
                continue;
            }
            *count += 1;
            *next = Some(next.map_or(row.expires_at, |n| n.min(row.expires_at)));
        }
        stored.push(*row);
        outcomes.push(Inserted::Created);
    }
    if stored.is_empty() {
        return Ok(outcomes);
    }
    let requests = json_array(stored.iter().map(|r| {
        serde_json::json!({
            "id": r.id.hyphenated().to_string(),
            "client_name": r.new.client_name,
            "hostname": r.new.hostname,
            "scopes": r.new.scopes.to_db(),
            "created_at": to_db(r.created_at),
            "expires_at": to_db(r.expires_at),
            "poll_token_hash": hex(&r.poll_token_hash),
            "peer_addr": r.peer_addr,
            "client_id": r.client_id.map(|c| c.hyphenated().to_string()),
            "token_lifetime_secs": r.new.lifetime_secs,
        })
    }));
    sqlx::query_file!("src/db/sql/insert_requests.sql", requests)
        .execute(tx.conn())
        .await?;
    let audits = json_array(stored.iter().map(|r| {
        serde_json::json!({
            "id": r.id.hyphenated().to_string(),
            "at": to_db(r.created_at),
            "actor": r.audit.actor.to_string(),
            "action": r.audit.action,
            "detail": r.audit.detail,
        })
    }));
    sqlx::query_file!("src/db/sql/insert_create_audits.sql", audits)
        .execute(tx.conn())
        .await?;
    let used: Vec<_> = stored
        .iter()
        .filter_map(|r| {
            let client = r.client_id?.hyphenated().to_string();
            Some(serde_json::json!({"client": client, "at": to_db(r.created_at)}))
        })
        .collect();
    if !used.is_empty() {
        let used = json_array(used.into_iter());
        sqlx::query_file!("src/db/sql/clients_used.sql", used)
            .execute(tx.conn())
            .await?;
    }
    for row in stored {
        tx.audited(&Change {
            id: row.id,
            at: row.created_at,
            audit: &row.audit,
            from: None,
            to: Status::Pending,
        })
        .await?;
    }
    Ok(outcomes)
}

fn json_array(values: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(values.collect()).to_string()
}

/// Lower-case hex, as SQLite's `unhex()` reads it.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The statement behind the clients' open-request counts; a plan test reads it.
pub const OPEN_FOR_CLIENT: &str = include_str!("sql/open_for_clients.sql");
/// The statement behind unverified hostnames' open-request counts; a plan test reads it.
pub const OPEN_FOR_HOSTNAME: &str = include_str!("sql/open_for_hostnames.sql");

/// Whose open requests a row's limit counts: its enrolled client's, or (unverified) its
/// hostname's requests made without a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    Client(String),
    Hostname(String),
}

impl LimitKey {
    fn of(row: &NewRow) -> Self {
        match row.client_id {
            Some(client) => Self::Client(client.hyphenated().to_string()),
            None => Self::Hostname(row.new.hostname.clone()),
        }
    }
}

/// The open requests of each key of a batch, counted before any row of the batch is
/// inserted, then kept up to date by the caller.
struct OpenCounts {
    counted: HashMap<LimitKey, (i64, Option<DateTime<Utc>>)>,
}

impl OpenCounts {
    /// Counts, in at most two statements, the open requests of every key a limited row
    /// has: those unexpired at the batch's earliest create, up to its highest limit.
    async fn read(conn: &mut SqliteConnection, rows: &[&NewRow]) -> Result<Self, StoreError> {
        let limited: Vec<&&NewRow> = rows.iter().filter(|r| r.max_open > 0).collect();
        let mut counted = HashMap::new();
        let Some(earliest) = limited.iter().map(|r| r.created_at).min() else {
            return Ok(Self { counted });
        };
        let now = to_db(earliest);
        let cap = limited
            .iter()
            .map(|r| i64::from(r.max_open))
            .max()
            .unwrap_or(0);
        let (mut clients, mut hostnames) = (Vec::new(), Vec::new());
        for row in &limited {
            match LimitKey::of(row) {
                LimitKey::Client(c) if !clients.contains(&c) => clients.push(c),
                LimitKey::Hostname(h) if !hostnames.contains(&h) => hostnames.push(h),
                _ => {}
            }
        }
        // Each key's count and soonest deadline, as the statements return them.
        let mut read: Vec<(LimitKey, i64, Option<String>)> = Vec::new();
        if !clients.is_empty() {
            let keys = serde_json::to_string(&clients).expect("strings serialize");
            let rows = sqlx::query_file!("src/db/sql/open_for_clients.sql", keys, now, cap)
                .fetch_all(&mut *conn)
                .await?;
            read.extend(
                rows.into_iter()
                    .map(|r| (LimitKey::Client(r.key), r.open, r.soonest)),
            );
        }
        if !hostnames.is_empty() {
            let keys = serde_json::to_string(&hostnames).expect("strings serialize");
            let rows = sqlx::query_file!("src/db/sql/open_for_hostnames.sql", keys, now, cap)
                .fetch_all(&mut *conn)
                .await?;
            read.extend(
                rows.into_iter()
                    .map(|r| (LimitKey::Hostname(r.key), r.open, r.soonest)),
            );
        }
        for (key, open, soonest) in read {
            let soonest = soonest
                .map(|s| super::decode_time("soonest", &s))
                .transpose()?;
            counted.insert(key, (open, soonest));
        }
        Ok(Self { counted })
    }

    /// `row`'s key's open requests and the soonest of their deadlines.
    fn of(&mut self, row: &NewRow) -> &mut (i64, Option<DateTime<Utc>>) {
        self.counted.entry(LimitKey::of(row)).or_insert((0, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, Audit, NewTokenRequest, Scopes};

    fn row(hostname: &str, max_open: u32, at: DateTime<Utc>) -> NewRow {
        NewRow {
            id: uuid::Uuid::new_v4(),
            new: NewTokenRequest {
                client_name: "cli \"quoted\" \\ name".into(),
                hostname: hostname.into(),
                scopes: Scopes::default(),
                lifetime_secs: Some(86_400),
            },
            poll_token_hash: vec![0x00, 0x7f, 0x80, 0xff],
            created_at: at,
            expires_at: at + chrono::Duration::seconds(600),
            client_id: None,
            max_open,
            peer_addr: "127.0.0.1".into(),
            audit: Audit::new(Actor::Client(hostname.into()), "create"),
        }
    }

    #[tokio::test]
    async fn one_batch_keeps_the_open_request_limit_exact_and_stores_every_field() {
        let (_dir, db) = crate::db::scratch().await;
        let now = crate::domain::time::now();
        // Made a minute earlier, so it is the soonest to end: refused creates must name it.
        let earlier = row("busy", 3, now - chrono::Duration::seconds(60));
        let mut tx = WriteTx::begin(&db).await.unwrap();
        insert_all(&mut tx, &[&earlier]).await.unwrap();
        tx.commit().await.unwrap();

        // One open already; of four more for the same hostname, two fit; other hosts and
        // unlimited rows are not held back by it.
        let rows = [
            row("busy", 3, now),
            row("other", 3, now),
            row("busy", 3, now),
            row("busy", 3, now),
            row("busy", 3, now),
            row("busy", 0, now),
        ];
        let refs: Vec<&NewRow> = rows.iter().collect();
        let mut tx = WriteTx::begin(&db).await.unwrap();
        let outcomes = insert_all(&mut tx, &refs).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            outcomes,
            [
                Inserted::Created,
                Inserted::Created,
                Inserted::Created,
                Inserted::TooManyOpen {
                    next_expiry: earlier.expires_at
                },
                Inserted::TooManyOpen {
                    next_expiry: earlier.expires_at
                },
                Inserted::Created,
            ]
        );

        let stored = crate::db::requests::find(&db, rows[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.request.client_name, rows[0].new.client_name);
        assert_eq!(stored.request.expires_at, rows[0].expires_at);
        assert_eq!(stored.poll_token_hash, rows[0].poll_token_hash);
        assert_eq!(stored.request.lifetime_secs, Some(86_400));
        assert!(crate::db::requests::find(&db, rows[3].id)
            .await
            .unwrap()
            .is_none());
        let audited: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM audit_events ORDER BY id")
                .fetch_all(&db.sqlite().unwrap().read)
                .await
                .unwrap();
        let expected: Vec<String> = [&earlier, &rows[0], &rows[1], &rows[2], &rows[5]]
            .iter()
            .map(|r| r.id.hyphenated().to_string())
            .collect();
        assert_eq!(
            audited, expected,
            "one audit row per stored create, in order"
        );
    }
}
