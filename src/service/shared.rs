//! Several routers on one PostgreSQL database: hearing the others' commits, and the fallback
//! for an announcement that was lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Effects;
use crate::db::Db;

/// Until `stop` turns true: hands other routers' announced commits to `effects` (dropping
/// cached rows, waking long polls and the webhook sender), and every `every` re-reads the
/// requests long polls wait on, waking those that changed unheard. Returns at once on SQLite.
pub async fn run(db: Db, effects: Arc<Effects>, every: Duration, stop: watch::Receiver<bool>) {
    let Some(listen) = db.listen_for_changes(stop.clone()) else {
        return;
    };
    let fallback = async {
        let mut stop = stop.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            match effects.recheck_waited(&db).await {
                Ok(0) => {}
                Ok(woken) => tracing::info!(woken, "the fallback re-check woke long polls"),
                Err(e) => tracing::warn!(error = %e, "the fallback re-check failed"),
            }
        }
    };
    tokio::join!(listen, fallback);
}
