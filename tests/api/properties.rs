//! Property tests: the request state machine against a model, and input validation against
//! arbitrary input.

use chrono::Duration as ChronoDuration;
use fake_upstream::BrowserMode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, Created, TestApp};

/// What can happen to one request.
#[derive(Debug, Clone)]
enum Op {
    /// The operator selects an account (again, when already in progress).
    Select(u32),
    /// The provider redirects back for login `n` counted from the newest (0 = current).
    Callback {
        age: usize,
    },
    /// The person clicked "deny" in login `n` counted from the newest.
    ProviderDeny {
        age: usize,
    },
    Deny,
    Cancel,
    /// The request's deadline passes and the reaper runs.
    Expire,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Weighted so that most cases get as far as a login, and many past an approval.
        4 => (1u32..4).prop_map(Op::Select),
        5 => (0usize..2).prop_map(|age| Op::Callback { age }),
        1 => (0usize..2).prop_map(|age| Op::ProviderDeny { age }),
        1 => Just(Op::Deny),
        1 => Just(Op::Cancel),
        1 => Just(Op::Expire),
        1 => Just(Op::Restart),
    ]
}

/// The model: what the router must say after each step.
#[derive(Debug)]
struct Model {
    status: &'static str,
    account: Option<u32>,
    /// Callback URLs (approve, deny) of every login opened, oldest first; `current` marks
    /// whether the newest may still be used.
    logins: Vec<(String, String)>,
    current_usable: bool,
}

impl Model {
    fn open(&self) -> bool {
        matches!(self.status, "pending" | "in_progress")
    }
}

async fn step(
    app: &mut TestApp,
    created: &Created,
    model: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Select(account) => {
            let response = app.select(&created.id, *account).await;
            if model.open() {
                prop_assert_eq!(response.status(), StatusCode::OK);
                let auth = app.fake.opened().last().unwrap().auth_url.clone();
                let approve = app.fake.authorize(&auth, *account, false).await;
                let deny = app.fake.authorize(&auth, *account, true).await;
                model.logins.push((approve, deny));
                model.current_usable = true;
                model.status = "in_progress";
                model.account = Some(*account);
            } else {
                prop_assert_eq!(response.status(), StatusCode::CONFLICT);
            }
        }
        Op::Callback { age } | Op::ProviderDeny { age } => {
            let Some(index) = model.logins.len().checked_sub(age + 1) else {
                return Ok(());
            };
            let deny = matches!(op, Op::ProviderDeny { .. });
            let url = if deny {
                &model.logins[index].1
            } else {
                &model.logins[index].0
            };
            let response = app.get(url).await;
            let valid = *age == 0 && model.current_usable && model.status == "in_progress";
            if valid {
                prop_assert_eq!(response.status(), StatusCode::OK);
                model.status = if deny { "denied" } else { "approved" };
                model.current_usable = false;
            } else {
                prop_assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            }
        }
        Op::Deny | Op::Cancel => {
            let response = match op {
                Op::Deny => app.deny(&created.id).await,
                _ => app.cancel(&created.id, &created.poll_token).await,
            };
            if model.open() {
                prop_assert_eq!(response.status(), StatusCode::OK);
                model.status = if matches!(op, Op::Deny) {
                    "denied"
                } else {
                    "cancelled"
                };
                model.current_usable = false;
            } else {
                prop_assert_eq!(response.status(), StatusCode::CONFLICT);
            }
        }
        Op::Expire => {
            // The app's own handle, as its reaper uses; the clock jumps past the deadline.
            let later = chrono::Utc::now() + ChronoDuration::seconds(601);
            let expired = claude_auth_router::reaper::reap_once(&app.app_db(), later)
                .await
                .unwrap();
            prop_assert_eq!(expired, u64::from(model.open()));
            if model.open() {
                model.status = "expired";
                model.current_usable = false;
            }
        }
        Op::Restart => app.restart().await,
    }
    Ok(())
}

#[test]
fn any_interleaving_of_actions_leaves_the_router_agreeing_with_the_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 80,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..14), |ops| {
            rt.block_on(async {
                let mut app = spawn_app().await;
                app.fake.set_browser_mode(BrowserMode::Record);
                let created = app.create_ok().await;
                let mut model = Model {
                    status: "pending",
                    account: None,
                    logins: Vec::new(),
                    current_usable: false,
                };
                for op in &ops {
                    step(&mut app, &created, &mut model, op).await?;
                    let seen = app.status_ok(&created).await;
                    prop_assert_eq!(
                        seen["status"].as_str(),
                        Some(model.status),
                        "after {:?}",
                        op
                    );
                    prop_assert_eq!(seen["account_id"].as_u64(), model.account.map(u64::from));
                    prop_assert_eq!(seen["token"].is_object(), model.status == "approved");
                    prop_assert_eq!(app.db_status(&created.id).await, model.status);
                }
                let approvals = u64::from(model.status == "approved");
                prop_assert_eq!(app.count("token_bundles").await as u64, approvals);
                prop_assert!(
                    app.fake.token_calls() as u64 <= 1,
                    "never a second exchange"
                );
                app.stop().await;
                Ok(())
            })
        })
        .unwrap();
}

/// Arbitrary JSON, biased towards the create body's own fields.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,300}".prop_map(Value::String),
        "[a-z:._-]{1,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 40, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..40).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof!["client_name", "hostname", "scopes", ".{0,12}"].prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn any_create_body_gets_201_or_a_4xx_with_the_error_body_never_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let bodies = prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..200),
    ];
    runner
        .run(&bodies, |body| {
            rt.block_on(async {
                let response = app
                    .http
                    .post(app.url("/v1/token-requests"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                prop_assert!(
                    status == StatusCode::CREATED || status.is_client_error(),
                    "{} {}",
                    status,
                    answer
                );
                if status != StatusCode::CREATED {
                    prop_assert!(
                        answer["error"].is_string() && answer["message"].is_string(),
                        "{}",
                        answer
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn any_callback_query_gets_a_page_or_a_4xx_and_never_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let query = proptest::collection::vec(
        (
            prop_oneof!["code", "state", "error", "error_description", "[a-z]{1,6}"],
            ".{0,80}",
        ),
        0..6,
    );
    runner
        .run(&query, |pairs| {
            rt.block_on(async {
                let mut url = url::Url::parse(&app.url("/oauth/callback")).unwrap();
                for (k, v) in &pairs {
                    url.query_pairs_mut().append_pair(k, v);
                }
                let response = app.get(url.as_str()).await;
                prop_assert!(
                    response.status().is_client_error(),
                    "{} for {:?}",
                    response.status(),
                    pairs
                );
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(rt.block_on(app.count("auth_requests")), 0);
}
