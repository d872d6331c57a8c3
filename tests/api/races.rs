//! Concurrent actions on one request leave exactly one winner.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use fake_upstream::{BrowserMode, TokenFault};
use futures::future::join_all;
use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn deny_cancel_callback_and_reaper_racing_on_one_request_have_one_winner() {
    let app = spawn_app().await;
    let db = app.db().await;
    for round in 0..12 {
        let created = app.create_ok().await;
        let callback = app.callback_url_for(&created.id, 1).await;

        let (deny, cancel, cb, reaped) = tokio::join!(
            app.deny(&created.id),
            app.cancel(&created.id, &created.poll_token),
            app.get(&callback),
            claude_auth_router::reaper::reap_once(
                &db,
                chrono::Utc::now() + ChronoDuration::hours(1)
            ),
        );

        let wins = [
            (deny.status() == StatusCode::OK, "denied"),
            (cancel.status() == StatusCode::OK, "cancelled"),
            (cb.status() == StatusCode::OK, "approved"),
            (reaped.unwrap() == 1, "expired"),
        ];
        let winners: Vec<&str> = wins
            .iter()
            .filter(|(won, _)| *won)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        for (response, _) in [(deny, ()), (cancel, ())] {
            assert!(matches!(
                response.status(),
                StatusCode::OK | StatusCode::CONFLICT
            ));
        }
        assert!(matches!(
            cb.status(),
            StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::CONFLICT
        ));
        assert_eq!(
            app.db_status(&created.id).await,
            winners[0],
            "round {round}"
        );
        let bundles: i64 = app.count("token_bundles").await;
        let approved = app
            .list("?status=approved&limit=1000")
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(
            bundles as usize,
            approved["requests"].as_array().unwrap().len()
        );
    }
}

#[tokio::test]
async fn concurrent_replays_of_one_callback_exchange_the_code_once() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;

    let responses = join_all((0..8).map(|_| app.get(&callback))).await;

    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let bad = responses
        .iter()
        .filter(|r| r.status() == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((ok, bad), (1, 7));
    assert_eq!(app.fake.token_calls(), 1);
    assert_eq!(app.status_ok(&created).await["status"], "approved");
}

#[tokio::test]
async fn concurrent_selects_leave_exactly_one_working_state() {
    let app = spawn_app().await;
    let created = app.create_ok().await;

    let responses = join_all((1..=4).map(|account| app.select(&created.id, account))).await;

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let opened = app.fake.opened();
    assert_eq!(opened.len(), 4);
    let mut working = 0;
    for o in &opened {
        let callback = app.fake.authorize(&o.auth_url, o.account_id, false).await;
        if app.get(&callback).await.status() == StatusCode::OK {
            working += 1;
        }
    }
    assert_eq!(working, 1);
    assert_eq!(app.fake.token_calls(), 1);
}

/// The interleaving the security review found: a callback claims the login and starts its
/// exchange; the operator re-selects and the control browser fails, so the request is put
/// back; then the exchange finishes. The claimed login must win, not be dropped and leave
/// the request stuck in progress with no state.
#[tokio::test]
async fn a_claimed_login_still_wins_when_a_reselect_fails_during_its_exchange() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    app.fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(1_200))));

    let exchange = app.call_later(&callback);
    tokio::time::sleep(Duration::from_millis(300)).await; // the state is claimed
    app.fake.set_browser_mode(BrowserMode::Fail);
    let reselect = app.select(&created.id, 2).await;

    assert_eq!(
        reselect.status(),
        StatusCode::BAD_GATEWAY,
        "the control browser failed"
    );
    assert_eq!(
        exchange.await.unwrap(),
        StatusCode::OK,
        "the login completes"
    );
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["account_id"], 1, "the account of the login that won");
    assert!(status["token"]["access_token"].is_string());
}

/// The same race with a re-select that works: the claimed login still wins, and the newer
/// login's state is gone, so its callback cannot approve a second time.
#[tokio::test]
async fn a_claimed_login_wins_over_a_reselect_that_opened_a_newer_login() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 1).await;
    app.fake
        .set_token_fault(Some(TokenFault::Delay(Duration::from_millis(1_200))));

    let exchange = app.call_later(&callback);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newer = app.select_and_capture(&created.id, 2).await;

    assert_eq!(exchange.await.unwrap(), StatusCode::OK);
    app.fake.set_token_fault(None);
    assert_eq!(app.status_ok(&created).await["account_id"], 1);
    let late = app.fake.authorize(&newer, 2, false).await;
    assert_eq!(app.get(&late).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.status_ok(&created).await["account_id"], 1);
}
