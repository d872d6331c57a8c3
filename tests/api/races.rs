//! Concurrent actions on one request leave exactly one winner.

use chrono::Duration as ChronoDuration;
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
