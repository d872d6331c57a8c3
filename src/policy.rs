//! The approval policy: a request from an enrolled client with `auto_approve` does not wait
//! for an operator. Right after its create commits, the policy picks an account and starts
//! the login exactly as an operator's select-account does (audit actor `policy`). When no
//! account is eligible, or the control browser fails, the request simply waits for an
//! operator, with an audit row saying why (and the `request.pending` event it skipped).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::AccountStrategy;
use crate::db;
use crate::db::accounts::Facts;
use crate::db::clients::Client;
use crate::domain::{time, Actor};
use crate::service::flow::login;
use crate::service::AppState;

/// Starts the login of request `id` for `client`, or leaves it to an operator.
pub async fn approve(app: &AppState, id: Uuid, client: &Client) {
    let reason = match choose(app, client).await {
        Ok(Some(account)) => match login::open(app, id, account, Actor::Policy).await {
            Ok(_) => {
                tracing::info!(request_id = %id, account, "the policy started the login");
                return;
            }
            Err(e) => format!("the login with account {account} did not start: {e}"),
        },
        Ok(None) => {
            "no eligible account: every allowed one is paused, unhealthy or unconfigured".to_owned()
        }
        Err(e) => format!("the accounts could not be read: {e}"),
    };
    tracing::warn!(request_id = %id, ?reason, "the policy left the request to an operator");
    if let Err(e) = db::requests::hold(&app.db, id, &reason, time::now()).await {
        tracing::warn!(request_id = %id, error = %e, "could not record why the policy held the request");
    }
}

/// The account the policy picks for `client`, if any is eligible.
async fn choose(app: &AppState, client: &Client) -> Result<Option<u32>, crate::db::StoreError> {
    let facts = db::accounts::facts(&app.db).await?;
    let candidates: Vec<u32> = if client.accounts.is_empty() {
        app.config.accounts.iter().map(|a| a.id).collect()
    } else {
        client.accounts.clone()
    };
    let cooldown = chrono::Duration::seconds(
        i64::try_from(app.config.policy.unhealthy_cooldown_secs).unwrap_or(i64::MAX / 1000),
    );
    Ok(pick(
        &candidates,
        &facts,
        app.config.policy.account_strategy,
        |id| app.config.account_allowed(id) && !app.config.accounts.is_empty(),
        time::now() - cooldown,
    ))
}

/// Among `candidates` that are configured, not paused and healthy (no failure since
/// `healthy_since`), the one `strategy` prefers; ties go to the lower id.
fn pick(
    candidates: &[u32],
    facts: &HashMap<u32, Facts>,
    strategy: AccountStrategy,
    configured: impl Fn(u32) -> bool,
    healthy_since: DateTime<Utc>,
) -> Option<u32> {
    let none = Facts::default();
    let fact = |id: &u32| facts.get(id).unwrap_or(&none);
    let mut eligible: Vec<u32> = candidates
        .iter()
        .copied()
        .filter(|id| configured(*id))
        .filter(|id| !fact(id).paused)
        .filter(|id| fact(id).last_failure_at.is_none_or(|at| at < healthy_since))
        .collect();
    eligible.sort_by_key(|id| *id);
    match strategy {
        // Never approved sorts first: `None` is less than any time.
        AccountStrategy::LeastRecentlyUsed => eligible
            .into_iter()
            .min_by_key(|id| fact(id).last_approved_at),
        AccountStrategy::FewestLiveTokens => {
            eligible.into_iter().min_by_key(|id| fact(id).live_tokens)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(list: &[(u32, Facts)]) -> HashMap<u32, Facts> {
        list.iter().cloned().collect()
    }

    #[test]
    fn the_strategies_pick_as_specified_and_skip_paused_and_unhealthy_accounts() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let known = facts(&[
            (
                1,
                Facts {
                    last_approved_at: Some(now - hour),
                    live_tokens: 5,
                    ..Facts::default()
                },
            ),
            (
                2,
                Facts {
                    last_approved_at: Some(now - hour * 3),
                    live_tokens: 9,
                    ..Facts::default()
                },
            ),
            (
                3,
                Facts {
                    paused: true,
                    ..Facts::default()
                },
            ),
            (
                4,
                Facts {
                    last_failure_at: Some(now),
                    live_tokens: 0,
                    ..Facts::default()
                },
            ),
            (
                5,
                Facts {
                    last_approved_at: Some(now),
                    live_tokens: 2,
                    ..Facts::default()
                },
            ),
        ]);
        let all = [1, 2, 3, 4, 5];
        let healthy_since = now - chrono::Duration::minutes(5);
        let lru = pick(
            &all,
            &known,
            AccountStrategy::LeastRecentlyUsed,
            |_| true,
            healthy_since,
        );
        let fewest = pick(
            &all,
            &known,
            AccountStrategy::FewestLiveTokens,
            |_| true,
            healthy_since,
        );
        assert_eq!(lru, Some(2), "the oldest approval; 3 paused, 4 unhealthy");
        assert_eq!(fewest, Some(5), "the fewest live tokens among the eligible");
        let never = pick(
            &[1, 6],
            &known,
            AccountStrategy::LeastRecentlyUsed,
            |_| true,
            healthy_since,
        );
        assert_eq!(never, Some(6), "never approved comes first");
        assert_eq!(
            pick(
                &[3, 4],
                &known,
                AccountStrategy::LeastRecentlyUsed,
                |_| true,
                healthy_since
            ),
            None
        );
        let later = now + chrono::Duration::minutes(10);
        assert_eq!(
            pick(
                &[4],
                &known,
                AccountStrategy::FewestLiveTokens,
                |_| true,
                later - chrono::Duration::minutes(5)
            ),
            Some(4),
            "healthy again after the cooldown"
        );
    }
}
