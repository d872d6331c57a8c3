use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// How many clients create and poll at once.
const CLIENTS: usize = 64;
const POLLS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_create_and_poll_without_an_error() {
    let app = spawn_app().await;

    let outcomes = join_all((0..CLIENTS).map(|i| {
        let app = &app;
        async move {
            let body = json!({"client_name": format!("client-{i}"), "hostname": "host"});
            let created = app.create(body).await;
            if created.status() != StatusCode::CREATED {
                return Err(format!("create answered {}", created.status()));
            }
            let created: Value = created.json().await.unwrap();
            let (id, token) = (
                created["request_id"].as_str().unwrap(),
                created["poll_token"].as_str().unwrap(),
            );
            for _ in 0..POLLS {
                let polled = app.status(id, token).await;
                if polled.status() != StatusCode::OK {
                    return Err(format!("poll answered {}", polled.status()));
                }
            }
            Ok(())
        }
    }))
    .await;

    let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(app.count("auth_requests").await, CLIENTS as i64);
}
