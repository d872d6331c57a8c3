use fake_upstream::BrowserMode;
use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_callback_that_arrives_after_a_restart_completes_the_flow() {
    let mut app = spawn_app().await;
    let created = app.create_ok().await;
    let callback = app.callback_url_for(&created.id, 4).await;

    app.restart().await;

    assert_eq!(app.get(&callback).await.status(), StatusCode::OK);
    let status = app.status_ok(&created).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["account_id"], 4);
}

#[tokio::test]
async fn requests_and_tokens_survive_a_restart() {
    let mut app = spawn_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let approved = app.create_ok().await;
    app.select(&approved.id, 1).await;
    let pending = app.create_ok().await;
    let token_before = app.status_ok(&approved).await["token"].clone();
    assert!(token_before["access_token"].is_string());

    app.restart().await;

    assert_eq!(app.status_ok(&approved).await["token"], token_before);
    assert_eq!(app.status_ok(&pending).await["status"], "pending");
    assert_eq!(app.deny(&pending.id).await.status(), StatusCode::OK);
}
