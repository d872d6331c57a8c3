//! Tokens and verifiers encrypted at rest.

use base64::Engine;
use fake_upstream::BrowserMode;
use reqwest::StatusCode;
use secrecy::SecretString;

use crate::helpers::{contains_bytes, spawn_app, spawn_app_with, TestApp};

fn new_key() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Approves one request through the callback and leaves another with its login open.
async fn approve_one_and_open_another(
    app: &TestApp,
) -> (crate::helpers::Created, crate::helpers::Created) {
    let approved = app.approved(1).await;
    assert_eq!(
        app.refresh(&approved.id, &approved.poll_token)
            .await
            .status(),
        StatusCode::OK
    );
    let open = app.create_ok().await;
    app.select_and_capture(&open.id, 2).await;
    (approved, open)
}

async fn stored_verifier(app: &TestApp, id: &str) -> String {
    let pool = app.sql_pool().await;
    sqlx::query_scalar("SELECT pkce_verifier FROM auth_requests WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn with_a_key_no_token_or_verifier_reaches_the_database_files() {
    let app = spawn_app_with(|c| c.storage.encryption_key = new_key()).await;

    let (approved, open) = approve_one_and_open_another(&app).await;

    let token = app.status_ok(&approved).await["token"].clone();
    assert_eq!(
        token["access_token"],
        app.fake.secrets().access_tokens[1].as_str(),
        "served decrypted"
    );
    assert!(stored_verifier(&app, &open.id).await.starts_with("enc:v1:"));
    let files = app.database_bytes();
    let s = app.fake.secrets();
    let secrets = [s.access_tokens, s.refresh_tokens, s.verifiers].concat();
    assert_eq!(secrets.len(), 5);
    for secret in secrets {
        assert!(
            !contains_bytes(&files, &secret),
            "{secret} is readable in the database files"
        );
    }
}

#[tokio::test]
async fn without_a_key_the_same_check_finds_the_tokens_in_plaintext() {
    let app = spawn_app().await;

    let (approved, open) = approve_one_and_open_another(&app).await;

    let access = app.status_ok(&approved).await["token"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        contains_bytes(&app.database_bytes(), &access),
        "the check above would see a plaintext token"
    );
    assert!(!stored_verifier(&app, &open.id).await.starts_with("enc:"));
}

#[tokio::test]
async fn a_restart_with_the_same_key_serves_the_tokens_and_a_wrong_or_missing_key_refuses_to_start()
{
    let key = new_key();
    let mut app = spawn_app_with(|c| c.storage.encryption_key = key.clone()).await;
    let (approved, open) = approve_one_and_open_another(&app).await;
    let token = app.status_ok(&approved).await["token"].clone();

    let wrong = app
        .restart_with(|c| c.storage.encryption_key = new_key())
        .await
        .unwrap_err();
    let missing = app
        .restart_with(|c| c.storage.encryption_key = SecretString::from(""))
        .await
        .unwrap_err();
    app.restart_with(|c| c.storage.encryption_key = key.clone())
        .await
        .unwrap();

    assert!(
        format!("{wrong:#}").contains("storage.previous_keys"),
        "{wrong:#}"
    );
    assert!(
        format!("{missing:#}").contains("no storage.encryption_key"),
        "{missing:#}"
    );
    assert_eq!(app.status_ok(&approved).await["token"], token);
    let callback = app
        .fake
        .authorize(&app.fake.opened().last().unwrap().auth_url, 2, false)
        .await;
    assert_eq!(
        app.get(&callback).await.status(),
        StatusCode::OK,
        "the sealed verifier still works"
    );
    assert_eq!(app.status_ok(&open).await["status"], "approved");
}

#[tokio::test]
async fn rotation_with_previous_keys_then_rekey_moves_every_row_to_the_new_key() {
    let (old, new) = (new_key(), new_key());
    let mut app = spawn_app_with(|c| c.storage.encryption_key = old.clone()).await;
    let (first, _) = approve_one_and_open_another(&app).await;
    let first_token = app.status_ok(&first).await["token"].clone();

    app.restart_with(|c| {
        c.storage.encryption_key = new.clone();
        c.storage.previous_keys = vec![old.clone()];
    })
    .await
    .unwrap();
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let second = app.approved(3).await;
    assert_eq!(
        app.status_ok(&first).await["token"],
        first_token,
        "old rows open with the previous key"
    );

    let db = app.db_sealed().await;
    let report = claude_auth_router::db::keys::rekey(&db).await.unwrap();
    assert_eq!(
        report.resealed, 3,
        "access, refresh and the open login's verifier: {report:?}"
    );
    assert_eq!(
        report.already_current, 2,
        "the second approval's tokens: {report:?}"
    );

    app.restart_with(|c| c.storage.previous_keys = vec![])
        .await
        .expect("the old key is no longer needed");
    assert_eq!(app.status_ok(&first).await["token"], first_token);
    assert!(app.status_ok(&second).await["token"]["access_token"].is_string());
}

#[tokio::test]
async fn with_a_key_plaintext_rows_refuse_the_start_until_rekey_seals_them() {
    let mut app = spawn_app().await;
    let approved = app.approved(1).await;
    let key = new_key();

    let refused = app
        .restart_with(|c| c.storage.encryption_key = key.clone())
        .await
        .unwrap_err();

    let message = format!("{refused:#}");
    assert!(
        message.contains("storage.require_sealed") && message.contains("rekey"),
        "{message}"
    );
    let lenient = app
        .restart_with(|c| c.storage.require_sealed = Some(false))
        .await;
    assert!(lenient.is_ok(), "the weaker setting lets it start");
    app.stop().await;
    let report = claude_auth_router::db::keys::rekey(&app.db_sealed_to_reseal().await)
        .await
        .unwrap();
    assert_eq!(report.resealed, 2, "access and refresh token");
    app.restart_with(|c| c.storage.require_sealed = None)
        .await
        .expect("starts once everything is sealed");
    assert_eq!(app.status_ok(&approved).await["status"], "approved");
}

#[tokio::test]
async fn with_a_key_a_token_planted_in_plaintext_is_never_served() {
    let app = spawn_app_with(|c| c.storage.encryption_key = new_key()).await;
    let approved = app.approved(1).await;
    let pool = app.sql_pool().await;
    sqlx::query("UPDATE token_bundles SET access_token = 'planted-token'")
        .execute(&pool)
        .await
        .unwrap();

    let response = app.status(&approved.id, &approved.poll_token).await;

    let text = response.text().await.unwrap();
    assert!(!text.contains("planted-token"), "{text}");
}
