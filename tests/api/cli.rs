//! The `claude-auth-router token` command as a subprocess, against the real router and the
//! fake upstream, with the test playing the operator through the admin API.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use fake_upstream::{BrowserMode, Options};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::helpers::{spawn_app_with, spawn_app_with_options, TestApp, ADMIN_TOKEN};

pub(crate) fn token_command(app: &TestApp, cache: &Path, extra: &[&str]) -> Command {
    command_for(&app.base, Some(cache), extra)
}

/// The command against `router`, with `cache` as --cache-dir (or none, for --no-cache).
fn command_for(router: &str, cache: Option<&Path>, extra: &[&str]) -> Command {
    subcommand_for("token", router, cache, extra)
}

/// `exec` with the test's token options, then `-- command…`.
pub(crate) fn exec_command(
    app: &TestApp,
    cache: &Path,
    options: &[&str],
    command: &[&str],
) -> Command {
    let mut cmd = subcommand_for("exec", &app.base, Some(cache), options);
    cmd.arg("--").args(command);
    cmd
}

fn subcommand_for(sub: &str, router: &str, cache: Option<&Path>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-auth-router"));
    cmd.arg(sub).args([
        "--router",
        router,
        "--client-name",
        "alice",
        "--hostname",
        "alice-laptop",
    ]);
    if let Some(cache) = cache {
        cmd.arg("--cache-dir").arg(cache);
    }
    cmd.args(extra);
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTH_ROUTER_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub(crate) async fn finish(child: Child) -> Output {
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the command finished")
        .unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Waits for `count` pending requests to appear and returns their ids, oldest first.
async fn pending_requests(app: &TestApp, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = app.list("?status=pending").await.json().await.unwrap();
        let ids: Vec<String> = body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() >= count {
            return ids;
        }
        assert!(Instant::now() < deadline, "no pending request appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator approves the oldest pending request with `account`.
async fn operator_approves(app: &TestApp, account: u32) -> String {
    let id = pending_requests(app, 1).await.remove(0);
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    assert_eq!(app.select(&id, account).await.status(), StatusCode::OK);
    id
}

async fn fast_app(options: Options) -> TestApp {
    spawn_app_with_options(options, |c| c.requests.poll_interval_secs = 1).await
}

/// Runs the command while the operator approves, and returns its output.
async fn first_token(app: &TestApp, cache: &Path, extra: &[&str]) -> Output {
    let child = token_command(app, cache, extra).spawn().unwrap();
    operator_approves(app, 7).await;
    finish(child).await
}

#[tokio::test]
async fn the_first_token_is_printed_alone_on_stdout_and_cached_owner_only() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let dir = cache.path().join("tokens");

    let output = first_token(&app, &dir, &[]).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = app.fake.secrets().access_tokens[0].clone();
    assert_eq!(stdout(&output), format!("{token}\n"));
    assert!(
        stderr(&output).contains("approved with account 7"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "json")));
    for file in files {
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file:?}"
        );
    }
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["client_name"], "alice");
    assert_eq!(listed["requests"][0]["hostname"], "alice-laptop");
}

#[tokio::test]
async fn a_second_call_is_answered_from_the_cache_without_contacting_the_router() {
    let mut app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let first = first_token(&app, cache.path(), &[]).await;
    app.stop().await;

    let second = finish(token_command(&app, cache.path(), &[]).spawn().unwrap()).await;

    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), stdout(&first));
    assert_eq!(app.count("auth_requests").await, 1);
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_through_the_router_without_a_new_request() {
    let app = fast_app(Options {
        expires_in: Some(120),
        ..Options::default()
    })
    .await;
    let cache = TempDir::new().unwrap();
    let first = first_token(&app, cache.path(), &["--min-validity", "60"]).await;
    assert_eq!(first.status.code(), Some(0));

    let cached = finish(
        token_command(&app, cache.path(), &["--min-validity", "60"])
            .spawn()
            .unwrap(),
    )
    .await;
    let refreshed = finish(
        token_command(&app, cache.path(), &["--min-validity", "300"])
            .spawn()
            .unwrap(),
    )
    .await;
    let again = finish(
        token_command(&app, cache.path(), &["--min-validity", "60"])
            .spawn()
            .unwrap(),
    )
    .await;

    assert_eq!(
        stdout(&cached),
        stdout(&first),
        "120 s left is more than 60"
    );
    assert_eq!(refreshed.status.code(), Some(0), "{}", stderr(&refreshed));
    let new_token = app.fake.secrets().access_tokens[1].clone();
    assert_eq!(stdout(&refreshed), format!("{new_token}\n"));
    assert!(stderr(&refreshed).contains("refreshed"));
    assert_eq!(
        stdout(&again),
        stdout(&refreshed),
        "the refreshed token was cached"
    );
    assert_eq!(app.count("auth_requests").await, 1, "no new request");
    assert_eq!(app.fake.token_calls(), 2);
}

#[tokio::test]
async fn a_rejected_refresh_falls_back_to_a_new_request() {
    let app = fast_app(Options {
        expires_in: Some(120),
        ..Options::default()
    })
    .await;
    let cache = TempDir::new().unwrap();
    first_token(&app, cache.path(), &[]).await;
    app.fake.revoke_refresh_tokens();
    app.fake.set_browser_mode(BrowserMode::Record);

    let child = token_command(&app, cache.path(), &[]).spawn().unwrap();
    let ids = pending_requests(&app, 1).await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    assert_eq!(app.select(&ids[0], 8).await.status(), StatusCode::OK);
    let output = finish(child).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("fake-at-8-"));
    assert!(
        stderr(&output).contains("could not be refreshed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(app.count("auth_requests").await, 2);
}

#[tokio::test]
async fn a_denied_request_exits_3_an_expired_one_4_and_a_cancelled_one_5() {
    let app = spawn_app_with(|c| {
        c.requests.poll_interval_secs = 1;
        c.requests.ttl_secs = 3;
    })
    .await;
    let no_cache = |app: &TestApp| {
        command_for(&app.base, None, &["--no-cache"])
            .spawn()
            .unwrap()
    };

    let denied = no_cache(&app);
    let id = pending_requests(&app, 1).await.remove(0);
    app.deny(&id).await;
    let denied = finish(denied).await;

    let cancelled = no_cache(&app);
    let id = pending_requests(&app, 1).await.remove(0);
    app.cancel(&id, ADMIN_TOKEN).await;
    let cancelled = finish(cancelled).await;

    let expired = finish(no_cache(&app)).await;

    for (output, code, word) in [
        (&denied, 3, "denied"),
        (&cancelled, 5, "cancelled"),
        (&expired, 4, "expired"),
    ] {
        assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
        assert!(stdout(output).is_empty());
        let last = stderr(output).lines().last().unwrap().to_owned();
        assert!(last.contains(word), "{last}");
        assert!(!stderr(output).contains("panicked"));
    }
}

#[tokio::test]
async fn sigint_while_waiting_cancels_the_request_on_the_router_and_exits_130() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let child = token_command(&app, cache.path(), &[]).spawn().unwrap();
    let id = pending_requests(&app, 1).await.remove(0);

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGINT) },
        0
    );
    let output = finish(child).await;

    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted"));
    assert_eq!(app.db_status(&id).await, "cancelled");
}

#[tokio::test]
async fn a_timeout_cancels_the_request_and_exits_4() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();

    let output = finish(
        token_command(&app, cache.path(), &["--timeout", "2"])
            .spawn()
            .unwrap(),
    )
    .await;

    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("--timeout"));
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["status"], "cancelled");
}

#[tokio::test]
async fn an_unreachable_router_exits_1_with_a_message_that_says_what_to_do() {
    let cache = TempDir::new().unwrap();

    let output = finish(
        command_for("http://127.0.0.1:9", Some(cache.path()), &[])
            .spawn()
            .unwrap(),
    )
    .await;

    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("cannot reach the router at http://127.0.0.1:9") && text.contains("--router"),
        "{text}"
    );
}

#[tokio::test]
async fn a_usage_error_exits_2() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let cases = [
        (app.base.as_str(), vec!["--min-validity", "soon"]),
        ("not a url", vec![]),
        (app.base.as_str(), vec!["--bogus"]),
        (app.base.as_str(), vec!["--no-cache"]),
    ];
    for (router, extra) in cases {
        let output = finish(
            command_for(router, Some(cache.path()), &extra)
                .spawn()
                .unwrap(),
        )
        .await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(app.count("auth_requests").await, 0);
}

#[tokio::test]
async fn four_parallel_invocations_with_an_empty_cache_make_one_request_and_print_one_token() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let children: Vec<Child> = (0..4)
        .map(|_| token_command(&app, cache.path(), &[]).spawn().unwrap())
        .collect();

    operator_approves(&app, 3).await;
    let mut outputs = Vec::new();
    for child in children {
        outputs.push(finish(child).await);
    }

    for o in &outputs {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
        assert_eq!(stdout(o), stdout(&outputs[0]));
    }
    assert_eq!(app.count("auth_requests").await, 1);
}

#[tokio::test]
async fn a_router_restart_while_waiting_is_ridden_out_with_backoff() {
    let mut app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let child = token_command(&app, cache.path(), &[]).spawn().unwrap();
    let id = pending_requests(&app, 1).await.remove(0);

    app.stop().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.restart().await;
    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    assert_eq!(app.select(&id, 6).await.status(), StatusCode::OK);
    let output = finish(child).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("fake-at-6-"));
    assert!(
        stderr(&output).contains("retrying in"),
        "{}",
        stderr(&output)
    );
    assert_eq!(app.count("auth_requests").await, 1);
}

#[tokio::test]
async fn exec_runs_the_command_with_the_token_in_its_environment_and_passes_its_exit_code() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let first = first_token(&app, cache.path(), &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let token = stdout(&first).trim().to_owned();
    let script = [
        "sh",
        "-c",
        "printf '%s' \"$CLAUDE_CODE_OAUTH_TOKEN\"; exit 7",
    ];

    let output = finish(
        exec_command(&app, cache.path(), &[], &script)
            .spawn()
            .unwrap(),
    )
    .await;
    let renamed = finish(
        exec_command(
            &app,
            cache.path(),
            &["--env", "MY_TOKEN"],
            &["sh", "-c", "printf '%s' \"$MY_TOKEN\""],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    let missing = finish(
        exec_command(&app, cache.path(), &[], &["no-such-command-anywhere"])
            .spawn()
            .unwrap(),
    )
    .await;

    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(stdout(&output), token, "the cached token, in the variable");
    assert_eq!(renamed.status.code(), Some(0), "{}", stderr(&renamed));
    assert_eq!(stdout(&renamed), token);
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).contains("no-such-command-anywhere"));
}

#[tokio::test]
async fn exec_without_a_token_exits_as_token_would_and_runs_nothing() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let marker = cache.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let child = exec_command(&app, cache.path(), &[], &["sh", "-c", &touch])
        .spawn()
        .unwrap();
    let id = pending_requests(&app, 1).await.remove(0);
    assert_eq!(app.deny(&id).await.status(), StatusCode::OK);

    let output = finish(child).await;

    assert_eq!(output.status.code(), Some(3), "denied: {}", stderr(&output));
    assert!(!marker.exists(), "the command never ran");
}

#[tokio::test]
async fn token_prints_json_or_an_env_line_on_request() {
    let app = fast_app(Options::default()).await;
    let cache = TempDir::new().unwrap();
    let first = first_token(&app, cache.path(), &["--format", "json"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let json: Value = serde_json::from_str(stdout(&first).trim()).expect("one JSON object");
    let env = finish(
        token_command(&app, cache.path(), &["--format", "env"])
            .spawn()
            .unwrap(),
    )
    .await;

    let token = app.fake.secrets().access_tokens[0].clone();
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["account_id"], 7);
    assert!(json["expires_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());
    assert_eq!(
        json.as_object().unwrap().len(),
        3,
        "access_token, expires_at, account_id: {json}"
    );
    assert_eq!(stdout(&env), format!("CLAUDE_CODE_OAUTH_TOKEN={token}\n"));
}

#[tokio::test]
async fn token_long_polls_so_an_approval_reaches_it_at_once_not_at_the_next_interval() {
    let app = spawn_app_with(|c| c.requests.poll_interval_secs = 5).await;
    let cache = TempDir::new().unwrap();
    let child = token_command(&app, cache.path(), &[]).spawn().unwrap();
    let id = pending_requests(&app, 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(500)).await; // the CLI is in its long poll

    app.fake.set_browser_mode(BrowserMode::AutoApprove);
    assert_eq!(app.select(&id, 2).await.status(), StatusCode::OK);
    let approved_at = Instant::now();
    let output = finish(child).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        approved_at.elapsed() < Duration::from_secs(2),
        "printed {:?} after the approval; interval polling would take up to 5 s",
        approved_at.elapsed()
    );
}

/// A router from before long polls: it refuses `?wait=` with 400 and answers plain polls.
async fn router_without_long_poll() -> String {
    use axum::extract::Query;
    use axum::routing::{get, post};
    use std::collections::HashMap;
    let app = axum::Router::new()
        .route(
            "/v1/token-requests",
            post(|| async {
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(serde_json::json!({
                        "request_id": "0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69",
                        "status": "pending",
                        "poll_token": "old-router-poll-token",
                        "expires_at": chrono::Utc::now() + chrono::Duration::minutes(10),
                        "poll_interval_secs": 1,
                    })),
                )
            }),
        )
        .route(
            "/v1/token-requests/{id}/status",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                if q.contains_key("wait") {
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({
                            "error": "invalid_request", "message": "unknown parameter"
                        })),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    axum::Json(serde_json::json!({
                        "request_id": "0b8f1f4e-7c1d-4e8b-9a53-2f2d3c4b5a69",
                        "status": "approved",
                        "account_id": 1,
                        "token": {"access_token": "old-router-token", "refresh_token": null,
                                  "expires_at": null, "token_type": "bearer", "scope": ""},
                        "error": null,
                        "expires_at": chrono::Utc::now() + chrono::Duration::minutes(10),
                        "poll_interval_secs": 1,
                    })),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn token_falls_back_to_interval_polling_when_the_router_refuses_wait() {
    let router = router_without_long_poll().await;
    let cache = TempDir::new().unwrap();

    let output = finish(
        command_for(&router, Some(cache.path()), &[])
            .spawn()
            .unwrap(),
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "old-router-token\n");
}

#[tokio::test]
async fn token_sends_the_client_key_from_a_file_so_the_request_is_verified() {
    let app = fast_app(Options::default()).await;
    let enrolled = app
        .admin_post("/v1/clients", serde_json::json!({"name": "alice-enrolled"}))
        .await;
    let key = enrolled.json::<Value>().await.unwrap()["client_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let cache = TempDir::new().unwrap();
    let key_file = cache.path().join("client.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();

    let output = first_token(
        &app,
        &cache.path().join("tokens"),
        &["--client-key-file", key_file.to_str().unwrap()],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let listed: Value = app.list("").await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["verified"], true);
    assert_eq!(listed["requests"][0]["client_name"], "alice-enrolled");
    let missing = finish(
        token_command(
            &app,
            cache.path(),
            &["--client-key-file", "/nonexistent/key"],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "a usage error");
    assert!(stderr(&missing).contains("--client-key-file"));
}
