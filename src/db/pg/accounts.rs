//! The PostgreSQL arms of [`crate::db::accounts`].

use std::collections::HashMap;

use sqlx::PgPool;

use super::store;
use crate::db::accounts::Facts;
use crate::db::StoreError;
use crate::domain::usage::{Reading, Window};

fn id(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|e| StoreError::Corrupt(format!("account_id: {e}")))
}

pub async fn facts(pool: &PgPool) -> Result<HashMap<u32, Facts>, StoreError> {
    let mut out: HashMap<u32, Facts> = HashMap::new();
    for s in store::accounts::states(pool).await? {
        let f = out.entry(id(s.account_id)?).or_default();
        f.paused = s.paused;
        f.last_failure_at = s.last_failure_at;
        f.last_failure = s.last_failure;
        let window = |utilization: Option<f64>, resets_at| {
            utilization.map(|utilization| Window {
                utilization,
                resets_at,
            })
        };
        f.usage = Reading {
            five_hour: window(s.five_hour_utilization, s.five_hour_resets_at),
            seven_day: window(s.seven_day_utilization, s.seven_day_resets_at),
        };
        f.usage_read_at = s.usage_read_at;
        f.usage_error = s.usage_error;
    }
    for l in store::accounts::live(pool).await? {
        let f = out.entry(id(l.account_id)?).or_default();
        f.live_tokens = l.live_tokens;
        f.soonest_relogin_at = l.soonest;
    }
    for (account, at) in store::accounts::last_approved(pool).await? {
        out.entry(id(account)?).or_default().last_approved_at = Some(at);
    }
    Ok(out)
}
