//! Group commit for creating requests.
//!
//! With `synchronous = FULL` every commit waits for an fsync, and there is one writer, so
//! one create per transaction caps creation at one fsync each. Here a single task takes a
//! create, plus every create already queued behind it (up to [`MAX_BATCH`]), writes them all
//! in one transaction and commits once: they share the fsync. Each handler answers only
//! after that commit, so an acknowledged create is exactly as durable as before.
//!
//! A batch is also written in a fixed number of trips to SQLite's connection thread, whatever
//! its size: `BEGIN`, one [`WriteTx::apply`] that runs every count, insert and audit row on
//! the connection's own handle ([`super::sync`]), and the commit. Each trip is a wake-up on
//! each side, and one trip per statement (then one per batch statement, with the rows sent as
//! JSON) made those trips the cost of a create (BENCHMARKS.md, "Throughput").

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::commit::{Change, WriteTx};
use super::requests::{Inserted, NewRow};
use super::Db;
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
    pub message: String,
}

#[derive(Clone)]
pub struct InsertBatcher {
    queue: mpsc::Sender<(NewRow, Reply)>,
}

impl InsertBatcher {
    /// Starts the writer on a thread of its own, supervised: a panic restarts it on the
    /// same queue (the creates of the batch that panicked fail). It ends when the last
    /// `InsertBatcher` is dropped.
    ///
    /// Its own thread, because the writer's cycle is a chain of waits: each statement is a
    /// trip to SQLite's connection thread and back. On the server's runtime every one of
    /// those wake-ups queued behind the connections' tasks; on a thread that does nothing
    /// else it runs at once (BENCHMARKS.md: 10.0–10.8k creates/s on the runtime, 13.9–14.5k
    /// here, alternated on one machine).
    pub fn spawn(db: Db) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name("create-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let task = move || writer(db.clone(), jobs.clone());
                    // The supervisor ends only when the writer returns (its queue closed).
                    let _ = crate::tasks::supervise("create writer", task).await;
                });
            })?;
        Ok(Self { queue })
    }

    /// Stores `row` with whatever else is waiting, and answers once that has committed.
    pub async fn insert(&self, row: NewRow) -> Result<Inserted, BatchError> {
        let stopped = || BatchError {
            busy: false,
            message: "the writer has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.queue.send((row, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The most batches the writer commits on the write connection before handing it back,
/// when creates keep queuing back to back: other writers wait at most that many commits.
const MAX_HELD_BATCHES: usize = 8;

async fn writer(db: Db, jobs: Arc<Mutex<mpsc::Receiver<(NewRow, Reply)>>>) {
    let mut jobs = jobs.lock().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut done = Vec::with_capacity(MAX_BATCH);
    loop {
        // Every batch taken was answered before the connection went back, so wait for the
        // next create (the held turns leave what queued during the last one to this call).
        if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // The connection is kept for the batches already waiting behind this one: giving it
        // back and taking it again costs a trip through the runtime (the pool returns it on a
        // task of its own), up to 1.5 ms of a 4 ms cycle under load.
        let mut conn = match db.write.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                answer(&mut batch, Err(e));
                continue;
            }
        };
        // The creates of the batch just committed, answered while the next one begins.
        let mut committed = None;
        for turn in 1..=MAX_HELD_BATCHES {
            // The next transaction begins before the last one's creates are answered: the
            // connection's thread is still awake from the commit, while after the answers
            // it has gone to sleep, and waking it again cost half a millisecond.
            let begun = match committed.take() {
                Some(outcome) => {
                    let (begun, ()) = tokio::join!(WriteTx::begin_on(&db, &mut conn), async {
                        answer(&mut done, outcome)
                    });
                    begun
                }
                None => WriteTx::begin_on(&db, &mut conn).await,
            };
            let outcome = match begun {
                Ok(tx) => write(tx, &batch).await,
                Err(e) => Err(e),
            };
            std::mem::swap(&mut batch, &mut done);
            if turn < MAX_HELD_BATCHES {
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
            }
            if batch.is_empty() {
                answer(&mut done, outcome);
                break;
            }
            committed = Some(outcome);
        }
    }
}

/// Answers every create of `batch` with its outcome, or all of them with the error.
fn answer(batch: &mut Vec<(NewRow, Reply)>, outcome: Result<Vec<Inserted>, sqlx::Error>) {
    match outcome {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let error = BatchError {
                busy: crate::error::is_busy(&e),
                message: e.to_string(),
            };
            tracing::warn!(error = %error, creates = batch.len(), "a batch of creates failed");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// The whole batch in the transaction `tx`; nothing is kept unless all of it commits.
async fn write(
    mut tx: WriteTx<'_>,
    batch: &[(NewRow, Reply)],
) -> Result<Vec<Inserted>, sqlx::Error> {
    let rows: Vec<&NewRow> = batch.iter().map(|(row, _)| row).collect();
    let outcomes = insert_all(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Stores the rows that their open-request limit allows, in order, inside `tx`.
///
/// The limit is exact: the open requests of every key in the batch are counted in this
/// transaction (which holds the write lock), and each accepted row counts against the rows
/// after it, so no two creates can slip under a limit together. Each count stops at the
/// limit, so a hostname with thousands of open requests costs no more than one with ten.
///
/// Every statement runs through [`WriteTx::apply`], which also writes the audit rows: the
/// whole batch is one trip to SQLite's thread (BEGIN and the commit are two more).
pub async fn insert_all(
    tx: &mut WriteTx<'_>,
    rows: &[&NewRow],
) -> Result<Vec<Inserted>, sqlx::Error> {
    tx.apply(|conn| {
        let mut open = OpenCounts::new(conn, rows)?;
        let mut insert = conn.prepare(INSERT_REQUEST)?;
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            if row.max_open > 0 {
                let (count, next) = open.of(row)?;
                if *count >= i64::from(row.max_open) {
                    outcomes.push(Inserted::TooManyOpen {
                        next_expiry: next.unwrap_or(row.expires_at),
                    });
                    continue;
                }
                *count += 1;
                *next = Some(next.map_or(row.expires_at, |n| n.min(row.expires_at)));
            }
            let created = to_db(row.created_at);
            insert.execute(rusqlite::params![
                row.id.hyphenated().to_string(),
                row.new.client_name,
                row.new.hostname,
                row.new.scopes.to_db(),
                created,
                to_db(row.expires_at),
                row.poll_token_hash,
                row.peer_addr,
                row.client_id.map(|c| c.hyphenated().to_string()),
            ])?;
            if let Some(client) = row.client_id {
                conn.prepare_cached(CLIENT_USED)?
                    .execute(rusqlite::params![created, client.hyphenated().to_string()])?;
            }
            outcomes.push(Inserted::Created);
            changes.push(Change {
                id: row.id,
                at: row.created_at,
                audit: &row.audit,
                from: None,
                to: Status::Pending,
            });
        }
        Ok((outcomes, changes))
    })
    .await
}

pub(crate) const INSERT_REQUEST: &str = "INSERT INTO auth_requests
     (id, client_name, hostname, scopes, status, created_at, updated_at, expires_at,
      poll_token_hash, peer_addr, client_id)
     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?6, ?7, ?8, ?9)";

pub(crate) const CLIENT_USED: &str = "UPDATE clients SET last_used_at = ?1 WHERE id = ?2";

/// Open requests of an enrolled client, up to `?3`, with the soonest of their deadlines.
/// One read of the partial index of its kind of key, which stops at the limit. The rows are
/// taken soonest first (the index's own order, so no sort), so the limit never cuts off the
/// soonest deadline.
pub const OPEN_FOR_CLIENT: &str = "SELECT COUNT(*), MIN(expires_at)
     FROM (SELECT expires_at FROM auth_requests
       WHERE client_id = ?1 AND status IN ('pending', 'in_progress') AND expires_at > ?2
       ORDER BY expires_at LIMIT ?3)";

/// [`OPEN_FOR_CLIENT`] for a hostname's requests made without a client.
pub const OPEN_FOR_HOSTNAME: &str = "SELECT COUNT(*), MIN(expires_at)
     FROM (SELECT expires_at FROM auth_requests
       WHERE hostname = ?1 AND client_id IS NULL
         AND status IN ('pending', 'in_progress') AND expires_at > ?2
       ORDER BY expires_at LIMIT ?3)";

/// Whose open requests a row's limit counts: its enrolled client's, or (unverified) its
/// hostname's requests made without a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    Client(uuid::Uuid),
    Hostname(String),
}

impl LimitKey {
    fn of(row: &NewRow) -> Self {
        match row.client_id {
            Some(client) => Self::Client(client),
            None => Self::Hostname(row.new.hostname.clone()),
        }
    }
}

/// The open requests of each key of a batch, counted the first time a row of that key comes
/// up (before any row of it is inserted), then kept up to date by the caller.
struct OpenCounts<'c> {
    conn: &'c rusqlite::Connection,
    /// The open requests are those unexpired at the batch's earliest create.
    now: String,
    /// Counted up to the batch's highest limit.
    cap: i64,
    counted: HashMap<LimitKey, (i64, Option<DateTime<Utc>>)>,
}

impl<'c> OpenCounts<'c> {
    fn new(conn: &'c rusqlite::Connection, rows: &[&NewRow]) -> rusqlite::Result<Self> {
        let limited = rows.iter().filter(|r| r.max_open > 0);
        Ok(Self {
            conn,
            now: to_db(
                limited
                    .clone()
                    .map(|r| r.created_at)
                    .min()
                    .unwrap_or_default(),
            ),
            cap: limited.map(|r| i64::from(r.max_open)).max().unwrap_or(0),
            counted: HashMap::new(),
        })
    }

    /// `row`'s key's open requests and the soonest of their deadlines.
    fn of(&mut self, row: &NewRow) -> rusqlite::Result<&mut (i64, Option<DateTime<Utc>>)> {
        let key = LimitKey::of(row);
        if !self.counted.contains_key(&key) {
            let (sql, id) = match &key {
                LimitKey::Client(c) => (OPEN_FOR_CLIENT, c.hyphenated().to_string()),
                LimitKey::Hostname(h) => (OPEN_FOR_HOSTNAME, h.clone()),
            };
            let (count, next): (i64, Option<String>) = self
                .conn
                .prepare_cached(sql)?
                .query_row(rusqlite::params![id, self.now, self.cap], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let next = next.map(|n| parse_time(&n, 1)).transpose()?;
            self.counted.insert(key.clone(), (count, next));
        }
        Ok(self.counted.get_mut(&key).expect("counted above"))
    }
}

/// A stored deadline (RFC 3339, as [`to_db`] writes it), read from result column `column`.
fn parse_time(text: &str, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| super::sync::unreadable(column, e))
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
        assert!(crate::db::requests::find(&db, rows[3].id)
            .await
            .unwrap()
            .is_none());
        let audited: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM audit_events ORDER BY id")
                .fetch_all(&db.read)
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
