//! Revoke for real: the provider withdraws the tokens (RFC 7009), and the router's copy is
//! gone from the database files, not only from the table.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{contains_bytes, spawn_app_with, TestApp};

async fn revoke_trail_detail(app: &TestApp, id: &str) -> String {
    let revoke = app.audit_row(id, "revoke").await;
    revoke["detail"].as_str().unwrap_or_default().to_owned()
}

/// An app whose configuration revokes at the fake provider.
async fn app_revoking_at_the_provider() -> TestApp {
    let mut app = spawn_app_with(|_| {}).await;
    let revocation_url = app.fake.revocation_url();
    app.restart_with(|c| c.oauth.revocation_url = revocation_url)
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn revoke_asks_the_provider_to_revoke_the_refresh_and_the_access_token() {
    let app = app_revoking_at_the_provider().await;
    let created = app.approved(1).await;
    let issued = app.fake.secrets();

    let response = app.revoke(&created.id).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["provider_revoked"], true);
    assert_eq!(
        app.fake.revoked(),
        vec![
            issued.refresh_tokens[0].clone(),
            issued.access_tokens[0].clone()
        ],
        "refresh token first, as RFC 7009 advises"
    );
    let detail = revoke_trail_detail(&app, &created.id).await;
    assert!(
        detail.contains("revoked the refresh and access tokens"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_provider_that_fails_to_revoke_is_reported_and_the_local_revoke_still_happens() {
    let app = app_revoking_at_the_provider().await;
    let created = app.approved(1).await;
    app.fake.set_revocation_fails(true);

    let response = app.revoke(&created.id).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["provider_revoked"], false);
    assert_eq!(app.fake.revocation_calls(), 2, "both tokens were tried");
    assert_eq!(app.status_ok(&created).await["status"], "revoked");
    assert_eq!(app.count("token_bundles").await, 0);
    let detail = revoke_trail_detail(&app, &created.id).await;
    assert!(detail.contains("did not revoke"), "{detail}");
}

#[tokio::test]
async fn a_revoked_token_is_in_none_of_the_database_files_once_revoke_answers() {
    let app = spawn_app_with(|_| {}).await;
    let created = app.approved(1).await;
    assert_eq!(
        app.refresh(&created.id, &created.poll_token).await.status(),
        StatusCode::OK
    );
    let issued = app.fake.secrets();
    let tokens = [issued.access_tokens, issued.refresh_tokens].concat();
    assert_eq!(tokens.len(), 4, "two generations of tokens");
    let before = app.database_bytes();
    assert!(
        tokens.iter().any(|t| contains_bytes(&before, t)),
        "without encryption the files hold the tokens, so the check below can fail"
    );

    assert_eq!(app.revoke(&created.id).await.status(), StatusCode::OK);

    let after = app.database_bytes();
    for token in &tokens {
        assert!(
            !contains_bytes(&after, token),
            "{token} is still in the files"
        );
    }
}
