//! `claude-auth-router admin` as a subprocess against the real router.

use std::process::{Output, Stdio};

use fake_upstream::BrowserMode;
use serde_json::Value;
use tokio::process::Command;

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with, two_accounts, TestApp, ADMIN_TOKEN};

async fn admin(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-auth-router"));
    cmd.arg("admin").args(["--router", &app.base]).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTH_ROUTER_") {
            cmd.env_remove(key);
        }
    }
    if let Some(token) = token {
        cmd.env("AUTH_ROUTER_ADMIN_TOKEN", token);
    }
    cmd.stdin(Stdio::null()).output().await.unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[tokio::test]
async fn an_operator_can_run_the_day_from_the_admin_command() {
    let app = spawn_app().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let approved = app.create_ok().await;
    let denied = app.create_ok().await;

    let list = admin(&app, Some(ADMIN_TOKEN), &["list", "--status", "pending"]).await;
    let approve = admin(
        &app,
        Some(ADMIN_TOKEN),
        &["approve", &approved.id, "--account", "4"],
    )
    .await;
    let deny = admin(&app, Some(ADMIN_TOKEN), &["deny", &denied.id]).await;
    let revoke = admin(&app, Some(ADMIN_TOKEN), &["revoke", &approved.id]).await;
    let audit = admin(&app, Some(ADMIN_TOKEN), &["audit", &approved.id]).await;

    assert_eq!(list.status.code(), Some(0), "{}", err(&list));
    let table = out(&list);
    assert!(table.starts_with("ID  "), "{table}");
    assert!(
        table.contains(&approved.id) && table.contains(&denied.id) && table.contains("laptop"),
        "{table}"
    );
    assert!(
        out(&approve).contains("in_progress with account 4"),
        "{}",
        out(&approve)
    );
    assert!(out(&deny).contains("denied"));
    assert!(out(&revoke).contains("revoked"));
    let trail = out(&audit);
    for line in ["create", "select_account", "approve", "revoke"] {
        assert!(trail.contains(line), "{trail}");
    }
    assert_eq!(app.db_status(&approved.id).await, "revoked");
    assert_eq!(app.db_status(&denied.id).await, "denied");
}

#[tokio::test]
async fn json_output_is_the_routers_answer_for_scripts() {
    let app = spawn_app().await;
    let created = app.create_ok().await;

    let list = admin(&app, Some(ADMIN_TOKEN), &["list", "--json"]).await;

    let body: Value = serde_json::from_slice(&list.stdout).expect("JSON on stdout");
    assert_eq!(body["requests"][0]["request_id"], created.id.as_str());
}

#[tokio::test]
async fn a_missing_token_is_a_usage_error_and_a_wrong_one_an_error_that_says_so() {
    let app = spawn_app().await;
    let created = app.create_ok().await;

    let missing = admin(&app, None, &["list"]).await;
    let wrong = admin(&app, Some("wrong"), &["deny", &created.id]).await;
    let conflict = admin(&app, Some(ADMIN_TOKEN), &["revoke", &created.id]).await;
    let bad_id = admin(&app, Some(ADMIN_TOKEN), &["deny", "not-a-uuid"]).await;

    assert_eq!(missing.status.code(), Some(2));
    assert!(err(&missing).contains("AUTH_ROUTER_ADMIN_TOKEN"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        err(&wrong).contains("401") && err(&wrong).contains("unauthorized"),
        "{}",
        err(&wrong)
    );
    assert_eq!(conflict.status.code(), Some(1));
    assert!(
        err(&conflict).contains("invalid_status"),
        "{}",
        err(&conflict)
    );
    assert_eq!(bad_id.status.code(), Some(2));
    assert_eq!(app.db_status(&created.id).await, "pending");
}

#[tokio::test]
async fn clients_are_enrolled_from_the_terminal_with_the_key_shown_once_and_accounts_paused() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;

    let added = admin(
        &app,
        Some(ADMIN_TOKEN),
        &["clients", "add", "laptop-7", "--account", "1"],
    )
    .await;
    let listed = admin(&app, Some(ADMIN_TOKEN), &["clients", "list"]).await;
    let paused = admin(&app, Some(ADMIN_TOKEN), &["accounts", "pause", "2"]).await;
    let accounts = admin(&app, Some(ADMIN_TOKEN), &["accounts", "list"]).await;

    assert_eq!(added.status.code(), Some(0), "{}", err(&added));
    let shown = out(&added);
    let key = shown
        .split("key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the key is printed")
        .to_owned();
    assert_eq!(key.len(), 43, "{shown}");
    assert!(shown.contains("shown this once"));
    let listed = out(&listed);
    assert!(
        listed.contains("laptop-7") && !listed.contains(&key),
        "{listed}"
    );
    assert_eq!(paused.status.code(), Some(0), "{}", err(&paused));
    let accounts = out(&accounts);
    let backup = accounts.lines().find(|l| l.starts_with("2 ")).unwrap();
    assert!(backup.contains("true"), "{accounts}");
    let verified = app
        .create_as(
            &key,
            serde_json::json!({"client_name": "x", "hostname": "h"}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn admin_events_show_who_changed_which_client_or_account_newest_first() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;
    let (client_id, _) = app.enroll(serde_json::json!({"name": "laptop-7"})).await;
    let subject = format!("client:{client_id}");
    let rotated = app
        .admin_post(
            &format!("/v1/clients/{client_id}/rotate-key"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    assert_eq!(
        app.admin_post("/v1/accounts/2/pause", serde_json::json!({}))
            .await
            .status(),
        StatusCode::OK
    );

    let all = app.admin_get("/v1/admin-events").await;
    let actions: Vec<(&str, &str)> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("account:2", "pause"),
            (subject.as_str(), "rotate_key"),
            (subject.as_str(), "add"),
        ],
        "newest first"
    );
    assert_eq!(all["events"][0]["actor"], "admin");
    let one = app
        .admin_get(&format!("/v1/admin-events?subject={subject}&limit=1"))
        .await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["events"][0]["action"], "rotate_key");
    let bad = app
        .http
        .get(app.url("/v1/admin-events?limit=0"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(bad, StatusCode::BAD_REQUEST, "invalid_request").await;

    let printed = admin(
        &app,
        Some(ADMIN_TOKEN),
        &["events", "--subject", "account:2"],
    )
    .await;
    assert_eq!(printed.status.code(), Some(0), "{}", err(&printed));
    let printed = out(&printed);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        lines[0].starts_with("AT") && lines[0].contains("SUBJECT"),
        "{printed}"
    );
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(
        lines[1].contains("account:2") && lines[1].contains("pause"),
        "{printed}"
    );
}
