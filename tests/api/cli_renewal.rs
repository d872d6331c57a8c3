//! The CLI with long-lived tokens (`--lifetime`) and logins near their refresh deadline,
//! which it renews by itself while the old token stays in use.

use fake_upstream::{BrowserMode, Options};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::cli::{exec_command, finish, stderr, stdout, token_command};
use crate::helpers::{spawn_claude_app_with, two_accounts, TestApp};

/// A claude app with an auto-approved enrolled client that may hold year-long tokens, its
/// key in a file under `dir`; the key file's path.
async fn auto_approving_app(dir: &TempDir, options: Options) -> (TestApp, String) {
    let app = spawn_claude_app_with(options, |c| {
        c.accounts = two_accounts();
        c.requests.max_token_lifetime_secs = 31_536_000;
    })
    .await;
    let (_, key) = app
        .enroll(json!({"name": "ci", "auto_approve": true, "max_token_lifetime_secs": 31_536_000}))
        .await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, &key).unwrap();
    (app, key_file.to_str().unwrap().to_owned())
}

async fn requests(app: &TestApp) -> Vec<Value> {
    let listed: Value = app.list("").await.json().await.unwrap();
    listed["requests"].as_array().unwrap().clone()
}

#[tokio::test]
async fn token_and_exec_ask_for_a_long_lived_token_and_keep_it_until_it_expires() {
    let dir = TempDir::new().unwrap();
    let (app, key_file) = auto_approving_app(&dir, Options::default()).await;
    let cache = dir.path().join("cache");
    let options = ["--client-key-file", key_file.as_str(), "--lifetime", "365d"];

    let first = finish(token_command(&app, &cache, &options).spawn().unwrap()).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let listed = requests(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["lifetime_secs"], 31_536_000);
    assert_eq!(listed[0]["status"], "approved");

    let again = finish(
        exec_command(
            &app,
            &cache,
            &options,
            &["sh", "-c", "printf %s \"$CLAUDE_CODE_OAUTH_TOKEN\""],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(
        stdout(&again),
        stdout(&first).trim_end(),
        "{}",
        stderr(&again)
    );
    assert_eq!(requests(&app).await.len(), 1, "served from the cache");

    let bad = finish(
        token_command(&app, &cache, &["--lifetime", "1y"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("365d"), "{}", stderr(&bad));
}

#[tokio::test]
async fn a_login_near_its_refresh_deadline_is_renewed_while_the_old_token_stays_in_use() {
    let dir = TempDir::new().unwrap();
    let (app, key_file) = auto_approving_app(
        &dir,
        Options {
            refresh_token_expires_in: Some(3600),
            ..Options::default()
        },
    )
    .await;
    let cache = dir.path().join("cache");
    let options = ["--client-key-file", key_file.as_str()];
    let first = finish(token_command(&app, &cache, &options).spawn().unwrap()).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    app.fake.set_refresh_token_expires_in(None);

    let second = finish(token_command(&app, &cache, &options).spawn().unwrap()).await;

    assert_eq!(stdout(&second), stdout(&first), "the old token, meanwhile");
    let said = stderr(&second);
    let lines = said.lines().filter(|l| l.contains("stops refreshing"));
    assert_eq!(lines.count(), 1, "{said}");
    let listed = requests(&app).await;
    assert_eq!(listed.len(), 2, "one new request, approved by the policy");

    let third = finish(token_command(&app, &cache, &options).spawn().unwrap()).await;

    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_ne!(stdout(&third), stdout(&first), "the renewed login's token");
    assert!(
        stderr(&third).contains("new login was approved"),
        "{}",
        stderr(&third)
    );
    assert!(
        !stderr(&third).contains("stops refreshing"),
        "{}",
        stderr(&third)
    );
    assert_eq!(requests(&app).await.len(), 2, "no third request");
}
