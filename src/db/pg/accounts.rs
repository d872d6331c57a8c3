//! The PostgreSQL arms of [`crate::db::accounts`].

use std::collections::HashMap;

use sqlx::PgPool;

use super::store;
use crate::db::accounts::{facts_from, Facts};
use crate::db::StoreError;

pub async fn facts(pool: &PgPool) -> Result<HashMap<u32, Facts>, StoreError> {
    let states = store::accounts::states(pool).await?;
    let live = store::accounts::live(pool).await?;
    let approved = store::accounts::last_approved(pool).await?;
    facts_from(states, live, approved)
}
