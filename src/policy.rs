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
        Err(Choice::Quota) => format!(
            "quota: every eligible account is at or over policy.max_utilization ({}%) in a usage window",
            app.config.policy.max_utilization
        ),
        Err(Choice::Store(e)) => format!("the accounts could not be read: {e}"),
    };
    tracing::warn!(request_id = %id, ?reason, "the policy left the request to an operator");
    if let Err(e) = db::requests::hold(&app.db, id, &reason, time::now()).await {
        tracing::warn!(request_id = %id, error = %e, "could not record why the policy held the request");
    }
}

/// Why the policy picked no account, beside there being none eligible.
enum Choice {
    /// Every eligible account is at or over `policy.max_utilization`.
    Quota,
    Store(crate::db::StoreError),
}

/// The account the policy picks for `client`, if any is eligible.
async fn choose(app: &AppState, client: &Client) -> Result<Option<u32>, Choice> {
    let facts = db::accounts::facts(&app.db).await.map_err(Choice::Store)?;
    let candidates: Vec<u32> = if client.accounts.is_empty() {
        app.config.accounts.iter().map(|a| a.id).collect()
    } else {
        client.accounts.clone()
    };
    let cooldown = chrono::Duration::seconds(
        i64::try_from(app.config.policy.unhealthy_cooldown_secs).unwrap_or(i64::MAX / 1000),
    );
    let rules = Rules {
        strategy: app.config.policy.account_strategy,
        healthy_since: time::now() - cooldown,
        max_utilization: app.config.policy.max_utilization,
    };
    pick(&candidates, &facts, &rules, |id| {
        app.config.account_allowed(id) && !app.config.accounts.is_empty()
    })
}

/// How the policy picks.
struct Rules {
    strategy: AccountStrategy,
    /// An account whose last login failed after this is unhealthy.
    healthy_since: DateTime<Utc>,
    /// An account at or over this in either usage window is skipped.
    max_utilization: f64,
}

/// Among `candidates` that are configured, not paused, healthy (no failure since
/// `healthy_since`) and under `max_utilization`, the one `strategy` prefers; ties go to the
/// lower id. `Err(Quota)` when some are eligible but every one is too full.
fn pick(
    candidates: &[u32],
    facts: &HashMap<u32, Facts>,
    rules: &Rules,
    configured: impl Fn(u32) -> bool,
) -> Result<Option<u32>, Choice> {
    let none = Facts::default();
    let fact = |id: &u32| facts.get(id).unwrap_or(&none);
    let mut eligible: Vec<u32> = candidates
        .iter()
        .copied()
        .filter(|id| configured(*id))
        .filter(|id| !fact(id).paused)
        .filter(|id| {
            fact(id)
                .last_failure_at
                .is_none_or(|at| at < rules.healthy_since)
        })
        .collect();
    let any_eligible = !eligible.is_empty();
    eligible.retain(|id| fact(id).usage.fullest() < rules.max_utilization);
    if any_eligible && eligible.is_empty() {
        return Err(Choice::Quota);
    }
    eligible.sort_by_key(|id| *id);
    Ok(match rules.strategy {
        // Never approved sorts first: `None` is less than any time.
        AccountStrategy::LeastRecentlyUsed => eligible
            .into_iter()
            .min_by_key(|id| fact(id).last_approved_at),
        AccountStrategy::FewestLiveTokens => {
            eligible.into_iter().min_by_key(|id| fact(id).live_tokens)
        }
        AccountStrategy::MostHeadroom => eligible.into_iter().min_by(|a, b| {
            let (a, b) = (fact(a), fact(b));
            a.usage
                .fullest()
                .total_cmp(&b.usage.fullest())
                .then(a.last_approved_at.cmp(&b.last_approved_at))
        }),
    })
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
        let rules = |strategy, healthy_since| Rules {
            strategy,
            healthy_since,
            max_utilization: 95.0,
        };
        let pick = |candidates: &[u32], facts, strategy, healthy_since| {
            pick(candidates, facts, &rules(strategy, healthy_since), |_| true)
                .ok()
                .flatten()
        };
        let lru = pick(
            &all,
            &known,
            AccountStrategy::LeastRecentlyUsed,
            healthy_since,
        );
        let fewest = pick(
            &all,
            &known,
            AccountStrategy::FewestLiveTokens,
            healthy_since,
        );
        assert_eq!(lru, Some(2), "the oldest approval; 3 paused, 4 unhealthy");
        assert_eq!(fewest, Some(5), "the fewest live tokens among the eligible");
        let never = pick(
            &[1, 6],
            &known,
            AccountStrategy::LeastRecentlyUsed,
            healthy_since,
        );
        assert_eq!(never, Some(6), "never approved comes first");
        assert_eq!(
            pick(
                &[3, 4],
                &known,
                AccountStrategy::LeastRecentlyUsed,
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
                later - chrono::Duration::minutes(5)
            ),
            Some(4),
            "healthy again after the cooldown"
        );
    }

    fn used(five_hour: f64, seven_day: f64, approved: Option<DateTime<Utc>>) -> Facts {
        let window = |utilization| {
            Some(crate::domain::usage::Window {
                utilization,
                resets_at: None,
            })
        };
        Facts {
            usage: crate::domain::usage::Reading {
                five_hour: window(five_hour),
                seven_day: window(seven_day),
            },
            last_approved_at: approved,
            ..Facts::default()
        }
    }

    #[test]
    fn most_headroom_takes_the_emptiest_fuller_window_and_skips_accounts_over_quota() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let rules = |strategy| Rules {
            strategy,
            healthy_since: now - hour,
            max_utilization: 95.0,
        };
        let known = facts(&[
            (1, used(10.0, 80.0, None)),
            (2, used(40.0, 30.0, Some(now))),
            (3, used(96.0, 0.0, None)),
            (4, used(40.0, 40.0, Some(now - hour))),
        ]);
        let chosen = |ids: &[u32], strategy| pick(ids, &known, &rules(strategy), |_| true);

        assert_eq!(
            chosen(&[1, 2, 3, 4], AccountStrategy::MostHeadroom).ok(),
            Some(Some(4)),
            "2 and 4 tie at 40%: the least recently used wins; 1's week is at 80%"
        );
        assert_eq!(
            chosen(&[1, 3], AccountStrategy::LeastRecentlyUsed).ok(),
            Some(Some(1)),
            "every strategy skips 3, at 96%"
        );
        assert_eq!(
            pick(
                &[5, 1],
                &known,
                &rules(AccountStrategy::MostHeadroom),
                |_| true
            )
            .ok(),
            Some(Some(5)),
            "no reading counts as empty"
        );
        assert!(matches!(
            chosen(&[3], AccountStrategy::FewestLiveTokens),
            Err(Choice::Quota)
        ));
    }
}
