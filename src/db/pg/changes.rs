//! Several routers on one database: each announces its commits on a `LISTEN/NOTIFY` channel,
//! in the committing transaction, and each listens, so a change made on one router drops the
//! others' cached rows and wakes their long polls as it does its own.
//!
//! A notification can be lost (a dropped listener connection). While the listener is not
//! connected, the layer above reads through its cache ([`Hooks::listening`]); on every
//! (re)connection it drops the whole cache and wakes every waiter, since what was announced
//! meanwhile is gone; and its fallback re-check (`storage.fallback_poll_secs`) catches what
//! a wait missed.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use super::store;
use crate::db::commit::{Committed, Hooks};
use crate::db::StoreError;

/// A `NOTIFY` payload is at most 8000 bytes; past this, one announcement stands for all.
const MAX_PAYLOAD: usize = 7_900;
/// How long the listener waits before connecting again after a failure.
const RECONNECT: Duration = Duration::from_secs(1);

/// What one commit changed, as announced: [`Committed`] with the announcing router's id.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Announcement {
    /// The router that committed, which ignores its own announcements.
    from: Uuid,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    touched: Vec<Uuid>,
    /// Every row may have changed (retention, or too many ids for one payload).
    #[serde(default)]
    all: bool,
    #[serde(default)]
    queued: bool,
}

impl Announcement {
    fn of(from: Uuid, c: &Committed) -> Self {
        Self {
            from,
            changed: c.changed.clone(),
            touched: c.touched.clone(),
            all: c.deleted || c.all_changed,
            queued: c.queued,
        }
    }

    fn payload(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        if text.len() <= MAX_PAYLOAD {
            return text;
        }
        let all = Announcement {
            from: self.from,
            all: true,
            queued: self.queued,
            ..Default::default()
        };
        serde_json::to_string(&all).unwrap_or_default()
    }

    fn into_committed(self) -> Committed {
        Committed {
            changed: self.changed,
            touched: self.touched,
            deleted: self.all,
            all_changed: self.all,
            queued: self.queued,
        }
    }
}

/// Announces `committed` in the committing transaction (nothing when it changed nothing).
pub async fn announce(
    conn: &mut PgConnection,
    from: Uuid,
    committed: &Committed,
) -> Result<(), StoreError> {
    if committed.is_empty() {
        return Ok(());
    }
    let payload = Announcement::of(from, committed).payload();
    Ok(store::announce(conn, &payload).await?)
}

/// Listens until `stop` turns true, handing every other router's announcement to `hooks`.
pub async fn listen(
    pool: PgPool,
    me: Uuid,
    hooks: std::sync::Arc<dyn Hooks>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        hooks.listening(false);
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(store::CHANGES).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other routers' changes; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT) => continue,
                        _ = stop.changed() => return,
                    }
                }
            },
            _ = stop.changed() => return,
        };
        // Connected: whatever was announced while we were not is lost.
        hooks.listening(true);
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = stop.changed() => return,
            };
            match received {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Announcement>(notification.payload()) {
                        Ok(a) if a.from == me => {}
                        Ok(a) => hooks.committed(a.into_committed()),
                        Err(e) => tracing::warn!(error = %e, "an unreadable change announcement"),
                    }
                }
                Ok(None) => {
                    tracing::warn!("the change listener lost its connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_too_long_for_one_payload_stands_for_every_row() {
        let changed: Vec<Uuid> = (0..500).map(|_| Uuid::new_v4()).collect();
        let committed = Committed {
            changed,
            queued: true,
            ..Default::default()
        };
        let payload = Announcement::of(Uuid::new_v4(), &committed).payload();
        assert!(payload.len() <= MAX_PAYLOAD);
        let back: Announcement = serde_json::from_str(&payload).unwrap();
        let back = back.into_committed();
        assert!(back.all_changed && back.deleted && back.queued);
        assert!(back.changed.is_empty());
    }

    #[test]
    fn a_short_announcement_names_its_rows() {
        let id = Uuid::new_v4();
        let committed = Committed {
            changed: vec![id],
            ..Default::default()
        };
        let back: Announcement =
            serde_json::from_str(&Announcement::of(Uuid::new_v4(), &committed).payload()).unwrap();
        let back = back.into_committed();
        assert_eq!(back.changed, [id]);
        assert!(!back.all_changed && !back.queued);
    }
}
