//! One suite, the same assertions, on both backends: each test runs against a fresh SQLite
//! file and a fresh PostgreSQL database (the throwaway cluster of
//! `claude_auth_router_postgres::testing`; without PostgreSQL these tests fail, never skip).
//! They cover the statements ported to PostgreSQL so far; each new port adds its case here.

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::batch::InsertBatcher;
use super::requests::{self, Inserted, NewLogin, NewRow};
use super::{audit, tokens, Db};
use crate::domain::time;
use crate::domain::{
    Actor, Audit, Identity, NewTokenRequest, Scopes, Status, TokenBundle, Transition,
};

/// A fresh store of each backend, with what keeps it alive.
async fn backends() -> Vec<(&'static str, Db, Option<tempfile::TempDir>)> {
    let (dir, sqlite) = super::scratch().await;
    let url = claude_auth_router_postgres::testing::scratch_database_url().await;
    let postgres = Db::connect(&url).await.expect("PostgreSQL store connects");
    assert!(postgres.is_shared() && !sqlite.is_shared());
    vec![("sqlite", sqlite, Some(dir)), ("postgres", postgres, None)]
}

fn row(hostname: &str, client_id: Option<Uuid>, max_open: u32, at: DateTime<Utc>) -> NewRow {
    NewRow {
        id: Uuid::now_v7(),
        new: NewTokenRequest {
            client_name: "cli \"quoted\" name".into(),
            hostname: hostname.into(),
            scopes: Scopes::from_db("user:inference user:profile"),
            lifetime_secs: Some(86_400),
        },
        poll_token_hash: vec![0x00, 0x7f, 0x80, 0xff],
        created_at: at,
        expires_at: at + Duration::seconds(600),
        client_id,
        max_open,
        peer_addr: "127.0.0.1".into(),
        audit: Audit::new(Actor::Client(hostname.into()), "create").with_detail("from a test"),
    }
}

async fn create(db: &Db, row: NewRow) -> Uuid {
    let id = row.id;
    let outcome = InsertBatcher::spawn(db.clone()).insert(row).await.unwrap();
    assert_eq!(outcome, Inserted::Created);
    id
}

fn bundle(access: &str, at: DateTime<Utc>) -> TokenBundle {
    TokenBundle {
        access_token: SecretString::from(access.to_owned()),
        refresh_token: Some(SecretString::from(format!("{access}-refresh"))),
        token_type: "Bearer".into(),
        scope: "user:inference".into(),
        expires_at: Some(at + Duration::hours(8)),
        obtained_at: at,
        refresh_expires_at: Some(at + Duration::days(29)),
        identity: Identity {
            account_email: Some("team@example.com".into()),
            ..Identity::default()
        },
    }
}

fn operator(action: &'static str) -> Audit {
    Audit::new(Actor::Admin, action)
}

#[tokio::test]
async fn a_created_request_reads_back_and_lists_the_same_on_both_backends() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let id = create(&db, row("laptop", None, 0, now)).await;

        let stored = requests::find(&db, id).await.unwrap().expect(name);
        assert_eq!(stored.request.status, Status::Pending, "{name}");
        assert_eq!(stored.request.client_name, "cli \"quoted\" name", "{name}");
        assert_eq!(stored.request.lifetime_secs, Some(86_400), "{name}");
        assert_eq!(
            stored.request.expires_at,
            now + Duration::seconds(600),
            "{name}"
        );
        assert_eq!(stored.poll_token_hash, [0x00, 0x7f, 0x80, 0xff], "{name}");
        assert!(requests::find(&db, Uuid::now_v7()).await.unwrap().is_none());

        let open = requests::list_open(&db, 10).await.unwrap();
        assert_eq!(open.len(), 1, "{name}");
        assert_eq!(open[0].request.id, id, "{name}");
        assert_eq!(open[0].peer_addr.as_deref(), Some("127.0.0.1"), "{name}");
        assert!(requests::list_finished(&db, 10).await.unwrap().is_empty());
        let pending = requests::list(&db, Some(Status::Pending), 10)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "{name}");
        let counts = requests::count_by_status(&db).await.unwrap();
        assert_eq!(counts, vec![("pending".to_owned(), 1)], "{name}");

        let trail = audit::list(&db, Some(id), 10).await.unwrap();
        assert_eq!(trail.len(), 1, "{name}");
        assert_eq!(trail[0].action, "create", "{name}");
        assert_eq!(trail[0].actor, "client:laptop", "{name}");
        assert_eq!(trail[0].detail.as_deref(), Some("from a test"), "{name}");
    }
}

#[tokio::test]
async fn a_login_runs_from_select_to_approved_and_its_state_is_consumed_once() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let id = create(&db, row("laptop", None, 0, now)).await;
        let before = requests::find_flow(&db, id).await.unwrap().expect(name);
        let state_hash = [7u8; 32];
        let login = NewLogin {
            account_id: 3,
            state_hash: &state_hash,
            pkce_verifier: "the-verifier",
        };

        let version = requests::start_login(&db, id, &before, &login, now, &operator("select"))
            .await
            .unwrap()
            .expect(name);
        assert!(
            requests::start_login(&db, id, &before, &login, now, &operator("select"))
                .await
                .unwrap()
                .is_none(),
            "{name}: a second select from the same version loses"
        );
        let flow = requests::find_flow(&db, id).await.unwrap().unwrap();
        assert_eq!(flow.version, version, "{name}");
        assert_eq!(flow.account_id, Some(3), "{name}");
        assert_eq!(
            flow.pkce_verifier.unwrap().expose_secret(),
            "the-verifier",
            "{name}"
        );

        let claim = requests::claim_state(&db, &state_hash, now)
            .await
            .unwrap()
            .expect(name);
        assert!(
            requests::claim_state(&db, &state_hash, now)
                .await
                .unwrap()
                .is_none(),
            "{name}: a replayed callback claims nothing"
        );
        assert_eq!(claim.id, id, "{name}");
        assert_eq!(
            claim.pkce_verifier.expose_secret(),
            "the-verifier",
            "{name}"
        );
        assert_eq!(claim.lifetime_secs, Some(86_400), "{name}");

        let tokens = bundle("access-1", now);
        assert!(
            requests::approve(&db, &claim, &tokens, now, &operator("approve"))
                .await
                .unwrap()
        );
        let stored = requests::find(&db, id).await.unwrap().unwrap();
        assert_eq!(stored.request.status, Status::Approved, "{name}");
        assert_eq!(stored.request.account_id, Some(3), "{name}");
        let read = tokens::find(&db, id).await.unwrap().expect(name);
        assert_eq!(read.access_token.expose_secret(), "access-1", "{name}");
        assert_eq!(read.refresh_expires_at, tokens.refresh_expires_at, "{name}");
        assert_eq!(read.identity.account_email, tokens.identity.account_email);
        let listed = requests::list_finished(&db, 10).await.unwrap();
        assert_eq!(listed[0].account_email.as_deref(), Some("team@example.com"));

        let actions: Vec<_> = audit::list(&db, Some(id), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.action, a.to_status))
            .collect();
        assert_eq!(
            actions,
            [
                ("create".to_owned(), "pending".to_owned()),
                ("select".to_owned(), "in_progress".to_owned()),
                ("approve".to_owned(), "approved".to_owned()),
            ],
            "{name}"
        );

        assert!(requests::revoke(&db, id, now, &operator("revoke"))
            .await
            .unwrap());
        assert!(tokens::find(&db, id).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn racing_deny_and_cancel_have_exactly_one_winner_and_one_audit_row() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let id = create(&db, row("laptop", None, 0, now)).await;

        let racers: Vec<_> = (0..8)
            .map(|i| {
                let db = db.clone();
                let (transition, action) = if i % 2 == 0 {
                    (Transition::Deny, "deny")
                } else {
                    (Transition::Cancel, "cancel")
                };
                tokio::spawn(async move {
                    requests::transition(&db, id, transition, now, &operator(action))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            wins += usize::from(racer.await.unwrap());
        }

        assert_eq!(wins, 1, "{name}");
        let trail = audit::list(&db, Some(id), 10).await.unwrap();
        assert_eq!(trail.len(), 2, "{name}: the create and one outcome");
        let status = requests::find(&db, id)
            .await
            .unwrap()
            .unwrap()
            .request
            .status;
        assert_eq!(trail[1].to_status, status.as_str(), "{name}");
    }
}

#[tokio::test]
async fn a_refresh_lands_only_on_the_generation_it_read() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let id = create(&db, row("laptop", None, 0, now)).await;
        let before = requests::find_flow(&db, id).await.unwrap().unwrap();
        let login = NewLogin {
            account_id: 1,
            state_hash: &[1; 32],
            pkce_verifier: "v",
        };
        requests::start_login(&db, id, &before, &login, now, &operator("select"))
            .await
            .unwrap()
            .unwrap();
        let claim = requests::claim_state(&db, &[1; 32], now)
            .await
            .unwrap()
            .unwrap();
        requests::approve(&db, &claim, &bundle("old", now), now, &operator("approve"))
            .await
            .unwrap();
        let state = tokens::refresh_state(&db, id).await.unwrap().unwrap();

        let refresh = Audit::new(Actor::Client("laptop".into()), "refresh");
        let mut renewed = bundle("new", now);
        renewed.refresh_token = None;
        assert!(
            tokens::store_refreshed(&db, id, state.generation, &renewed, &refresh)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tokens::store_refreshed(&db, id, state.generation, &bundle("late", now), &refresh)
                .await
                .unwrap(),
            "{name}: a second refresh of the same generation is refused"
        );
        let read = tokens::find(&db, id).await.unwrap().unwrap();
        assert_eq!(read.access_token.expose_secret(), "new", "{name}");
        assert_eq!(
            read.refresh_token.unwrap().expose_secret(),
            "old-refresh",
            "{name}: no new refresh token keeps the old one"
        );

        let next = tokens::refresh_state(&db, id).await.unwrap().unwrap();
        assert!(tokens::mark_refresh_rejected(
            &db,
            id,
            next.generation,
            "invalid_grant",
            now,
            &refresh
        )
        .await
        .unwrap());
        let last = tokens::refresh_state(&db, id).await.unwrap().unwrap();
        assert_eq!(
            last.refresh_error.as_deref(),
            Some("invalid_grant"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_open_request_limit_is_exact_under_sixteen_racing_creates() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let creates: Vec<_> = (0..16)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    InsertBatcher::spawn(db)
                        .insert(row("runner", None, 5, now))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for create in creates {
            created += usize::from(create.await.unwrap() == Inserted::Created);
        }

        assert_eq!(created, 5, "{name}");
        assert_eq!(
            requests::list_open(&db, 100).await.unwrap().len(),
            5,
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_reaper_expires_each_due_request_once_and_no_open_one() {
    for (name, db, _keep) in backends().await {
        let past = time::now() - Duration::seconds(700);
        let due: Vec<Uuid> = {
            let mut ids = Vec::new();
            for _ in 0..5 {
                ids.push(create(&db, row("laptop", None, 0, past)).await);
            }
            ids
        };
        let open = create(&db, row("laptop", None, 0, time::now())).await;

        let now = time::now();
        let (a, b) = tokio::join!(
            requests::expire_due(&db, now),
            requests::expire_due(&db, now)
        );

        assert_eq!(a.unwrap() + b.unwrap(), 5, "{name}");
        for id in due {
            let stored = requests::find(&db, id).await.unwrap().unwrap();
            assert_eq!(stored.request.status, Status::Expired, "{name}");
            let trail = audit::list(&db, Some(id), 10).await.unwrap();
            assert_eq!(trail.len(), 2, "{name}: one expire row");
        }
        let stored = requests::find(&db, open).await.unwrap().unwrap();
        assert_eq!(stored.request.status, Status::Pending, "{name}");
    }
}

#[tokio::test]
async fn console_sessions_are_found_only_while_bound_unexpired_and_kept() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let later = now + Duration::hours(1);
        super::sessions::create(&db, &[1; 32], "csrf-1", &[9; 32], now, later)
            .await
            .unwrap();
        super::sessions::create(&db, &[2; 32], "csrf-2", &[9; 32], now, now)
            .await
            .unwrap();

        let find = |token: [u8; 32], admin: [u8; 32]| {
            let db = db.clone();
            async move {
                super::sessions::find(&db, &token, &admin, now)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            find([1; 32], [9; 32]).await.as_deref(),
            Some("csrf-1"),
            "{name}"
        );
        assert_eq!(
            find([1; 32], [8; 32]).await,
            None,
            "{name}: another admin token"
        );
        assert_eq!(find([2; 32], [9; 32]).await, None, "{name}: expired");
        assert_eq!(super::sessions::delete_expired(&db, now).await.unwrap(), 1);
        super::sessions::delete(&db, &[1; 32]).await.unwrap();
        assert_eq!(find([1; 32], [9; 32]).await, None, "{name}: signed out");

        let salt = super::settings::session_salt(&db).await.unwrap();
        assert_eq!(salt.len(), 16, "{name}");
        assert_eq!(
            super::settings::session_salt(&db).await.unwrap(),
            salt,
            "{name}"
        );
    }
}

#[tokio::test]
async fn pausing_an_account_is_one_change_on_the_trail_and_facts_follow_its_logins() {
    for (name, db, _keep) in backends().await {
        let now = time::now();
        assert!(super::accounts::set_paused(&db, 4, true, now)
            .await
            .unwrap());
        assert!(
            !super::accounts::set_paused(&db, 4, true, now)
                .await
                .unwrap(),
            "{name}: already paused"
        );
        assert!(super::accounts::is_paused(&db, 4).await.unwrap(), "{name}");
        assert!(!super::accounts::is_paused(&db, 5).await.unwrap(), "{name}");
        let trail = super::admin_events::list(&db, Some("account:4"), 10)
            .await
            .unwrap();
        assert_eq!(trail.len(), 1, "{name}");
        assert_eq!(trail[0].action, "pause", "{name}");

        // One approved login on account 2, one failed on account 3.
        for (account, approve) in [(2u32, true), (3, false)] {
            let id = create(&db, row("laptop", None, 0, now)).await;
            let before = requests::find_flow(&db, id).await.unwrap().unwrap();
            let state = [account as u8; 32];
            let login = NewLogin {
                account_id: account,
                state_hash: &state,
                pkce_verifier: "v",
            };
            requests::start_login(&db, id, &before, &login, now, &operator("select"))
                .await
                .unwrap()
                .unwrap();
            let claim = requests::claim_state(&db, &state, now)
                .await
                .unwrap()
                .unwrap();
            if approve {
                requests::approve(&db, &claim, &bundle("a", now), now, &operator("approve"))
                    .await
                    .unwrap();
            } else {
                let failed = Audit::new(Actor::Provider, "fail").with_detail("exchange failed");
                let fail = requests::fail_claimed(
                    &db,
                    id,
                    claim.version,
                    Some(account),
                    "exchange failed",
                    now,
                    &failed,
                );
                assert!(fail.await.unwrap(), "{name}");
            }
        }

        let facts = super::accounts::facts(&db).await.unwrap();
        assert!(facts[&4].paused, "{name}");
        assert_eq!(facts[&2].live_tokens, 1, "{name}");
        assert_eq!(facts[&2].last_approved_at, Some(now), "{name}");
        assert_eq!(
            facts[&2].soonest_relogin_at,
            Some(now + Duration::days(29)),
            "{name}"
        );
        assert_eq!(facts[&3].live_tokens, 0, "{name}");
        assert_eq!(facts[&3].last_failure.as_deref(), Some("exchange failed"));
    }
}

#[tokio::test]
async fn a_client_is_enrolled_changed_found_by_key_and_removed_with_its_trail() {
    use super::clients::{self, Change, NewClient};
    for (name, db, _keep) in backends().await {
        let now = time::now();
        let id = Uuid::now_v7();
        let new = NewClient {
            id,
            name: "ci-runner",
            key_hash: &[3; 32],
            scopes: &["user:inference".to_owned()],
            accounts: &[1, 2],
            auto_approve: true,
            max_token_lifetime_secs: 3600,
        };
        assert!(clients::insert(&db, &new, now).await.unwrap(), "{name}");
        let taken = NewClient {
            id: Uuid::now_v7(),
            ..new
        };
        assert!(
            !clients::insert(&db, &taken, now).await.unwrap(),
            "{name}: the name is taken"
        );

        let found = clients::find_by_key(&db, &[3; 32])
            .await
            .unwrap()
            .expect(name);
        assert_eq!(found.client_id, id, "{name}");
        assert_eq!(found.accounts, [1, 2], "{name}");
        assert_eq!(found.max_token_lifetime_secs, 3600, "{name}");
        assert!(clients::find_by_key(&db, &[4; 32]).await.unwrap().is_none());

        let update = Change::Update {
            scopes: None,
            accounts: Some(&[7]),
            auto_approve: Some(false),
            max_token_lifetime_secs: None,
        };
        assert!(
            clients::change(&db, id, update, now).await.unwrap(),
            "{name}"
        );
        assert!(clients::change(&db, id, Change::RotateKey(&[5; 32]), now)
            .await
            .unwrap());
        assert!(clients::change(&db, id, Change::Disabled(true), now)
            .await
            .unwrap());
        let changed = clients::find(&db, id).await.unwrap().unwrap();
        assert_eq!(changed.accounts, [7], "{name}");
        assert_eq!(changed.scopes, ["user:inference"], "{name}");
        assert!(!changed.auto_approve && changed.disabled, "{name}");
        assert!(clients::find_by_key(&db, &[3; 32]).await.unwrap().is_none());

        create(&db, row("runner", Some(id), 0, now)).await;
        let listed = clients::list(&db).await.unwrap();
        assert_eq!(
            listed[0].last_used_at,
            Some(now),
            "{name}: a create uses it"
        );

        assert!(clients::delete(&db, id, now).await.unwrap(), "{name}");
        assert!(!clients::delete(&db, id, now).await.unwrap(), "{name}");
        let subject = format!("client:{}", id.hyphenated());
        let actions: Vec<_> = super::admin_events::list(&db, Some(&subject), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["remove", "disable", "rotate_key", "update", "add"],
            "{name}"
        );
    }
}
