use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn an_admin_holding_the_write_lock_gets_writers_a_503_and_readers_keep_working() {
    let app = spawn_app().await;
    let created = app.create_ok().await;
    let mut admin = app.hold_write_lock().await;

    let started = Instant::now();
    let response = app.deny(&created.id).await;
    let waited = started.elapsed();
    let polled = app.status(&created.id, &created.poll_token).await;

    let body = assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
    assert!(body["message"].as_str().unwrap().contains("retry"));
    assert!(
        waited >= Duration::from_secs(4),
        "it waited for the busy timeout first: {waited:?}"
    );
    assert_eq!(polled.status(), StatusCode::OK, "WAL lets reads through");

    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    assert_eq!(
        app.deny(&created.id).await.status(),
        StatusCode::OK,
        "nothing was half-written"
    );
}
