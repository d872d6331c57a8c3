//! `copy-db`, the real command: everything a router stored moves from SQLite to PostgreSQL
//! and back, and a router started on the copy serves the old requests, tokens and poll
//! tokens unchanged. Refusals change nothing.

use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{spawn_app_with, two_accounts, webhook, TestApp, ADMIN_TOKEN};

const KEY: &str = "dGhpcyBpcyAzMiBieXRlcyBvZiB0ZXN0IGtleSEhISE=";

fn copy_db(from: &str, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claude-auth-router"))
        .args(["copy-db", "--from", from, "--to", to])
        .env_remove("AUTH_ROUTER_DATABASE_URL")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Rows in every table: a client, an approved request with sealed tokens, a pending one, a
/// paused account, an admin change, a webhook delivery, the audit trail.
async fn a_router_with_history() -> (TestApp, crate::helpers::Created, crate::helpers::Created) {
    let app = spawn_app_with(|c| {
        c.storage.encryption_key = KEY.to_owned().into();
        c.accounts = two_accounts();
        c.notify.webhooks = vec![webhook(
            "http://127.0.0.1:9/hook",
            &["request.pending"],
            "s",
        )];
    })
    .await;
    let approved = app.approved(1).await;
    let pending = app.create_ok().await;
    app.enroll(json!({"name": "ci-runner"})).await;
    let paused = app.admin_post("/v1/accounts/2/pause", json!({})).await;
    assert!(paused.status().is_success());
    let session = app
        .http
        .post(app.url("/admin/session"))
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert!(session.status().is_success(), "a console session");
    (app, approved, pending)
}

#[tokio::test]
async fn everything_moves_to_postgres_and_back_and_is_served_unchanged() {
    let (mut app, approved, pending) = a_router_with_history().await;
    let token = app.status_ok(&approved).await["token"]["access_token"].clone();
    app.stop().await;
    let sqlite = app.config.database_url.expose().to_owned();
    let postgres = claude_auth_router_postgres::testing::scratch_database_url().await;

    let there = copy_db(&sqlite, &postgres);
    assert!(there.status.success(), "{}", text(&there));
    let report = text(&there);
    for table in [
        "auth_requests",
        "token_bundles",
        "audit_events",
        "clients",
        "admin_events",
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(table))
            .unwrap_or_else(|| panic!("{table} in {report}"));
        let counts: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(counts[0], counts[1], "{line}");
        assert_ne!(counts[0], "0", "{line}");
    }

    app.restart_with(|c| c.database_url = postgres.clone().into())
        .await
        .expect("a router starts on the copy");
    let served = app.status_ok(&approved).await;
    assert_eq!(served["status"], "approved");
    assert_eq!(
        served["token"]["access_token"], token,
        "the sealed token, byte for byte"
    );
    assert_eq!(app.status_ok(&pending).await["status"], "pending");
    let refreshed = app.refresh_ok(&approved).await;
    assert_ne!(refreshed["access_token"], token);
    let trail = app.audit_trail(&approved.id).await;
    assert_eq!(
        trail.len(),
        4,
        "create, select, approve (copied), then refresh: {trail:?}"
    );
    app.stop().await;

    let back = format!("{}.back", sqlite);
    let back_again = copy_db(&postgres, &back);
    assert!(back_again.status.success(), "{}", text(&back_again));
    app.restart_with(|c| c.database_url = back.clone().into())
        .await
        .expect("a router starts on the copy back");
    let served = app.status_ok(&approved).await;
    assert_eq!(served["token"]["access_token"], refreshed["access_token"]);
    assert_eq!(app.status_ok(&pending).await["status"], "pending");
}

#[tokio::test]
async fn a_target_with_rows_a_source_in_use_and_another_schema_are_refused() {
    let (mut app, _, _) = a_router_with_history().await;
    let sqlite = app.config.database_url.expose().to_owned();
    let postgres = claude_auth_router_postgres::testing::scratch_database_url().await;

    let in_use = copy_db(&sqlite, &postgres);
    assert!(!in_use.status.success());
    assert!(text(&in_use).contains("in use"), "{}", text(&in_use));

    app.stop().await;
    let first = copy_db(&sqlite, &postgres);
    assert!(first.status.success(), "{}", text(&first));
    let again = copy_db(&sqlite, &postgres);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already holds rows"),
        "{}",
        text(&again)
    );

    let pool = app.sql_pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (29991231000000, 'from a newer router', 1, X'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let other = claude_auth_router_postgres::testing::scratch_database_url().await;
    let newer = copy_db(&sqlite, &other);
    assert!(!newer.status.success());
    assert!(text(&newer).contains("29991231000000"), "{}", text(&newer));
}
