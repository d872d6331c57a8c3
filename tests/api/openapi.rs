//! The OpenAPI document: served as committed, covering the endpoints `docs/api.md` lists,
//! and good enough for a client written from it alone.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, two_accounts};

const REGENERATE: &str = "regenerate it with `claude-auth-router openapi > docs/openapi.json`";

fn committed() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("docs/openapi.json is committed");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = spawn_app().await;

    let response = app.get(&app.url("/v1/openapi.json")).await;

    assert_eq!(response.status(), StatusCode::OK, "no credential needed");
    let served: Value = response.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert!(
        served == committed(),
        "docs/openapi.json differs from what the code generates: {REGENERATE}"
    );
}

/// Every `METHOD /path` the API reference's table names, as the document spells the path.
fn endpoints_in_api_md() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let mut found: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap();
        for (i, part) in cell.split('`').enumerate().filter(|(i, _)| i % 2 == 1) {
            // `/enable`, `/resume`: the same method on a sibling path.
            if i > 1 && part.starts_with('/') {
                let (method, first) = found.last().cloned().unwrap();
                let parent = first.rsplit_once('/').unwrap().0.to_owned();
                found.push((method, format!("{parent}{part}")));
                continue;
            }
            let mut words = part.split_whitespace();
            let (Some(method), Some(path)) = (words.next(), words.next()) else {
                continue;
            };
            if !["GET", "POST", "PATCH", "DELETE"].contains(&method) {
                continue;
            }
            let path = path.split(['?', '[']).next().unwrap();
            let path = if path == "<redirect_uri" {
                "/oauth/callback"
            } else {
                path
            };
            found.push((method.to_lowercase(), path.to_owned()));
        }
    }
    found
}

#[test]
fn the_document_covers_every_endpoint_in_the_api_reference() {
    let document = committed();
    let endpoints = endpoints_in_api_md();
    assert!(endpoints.len() >= 30, "{endpoints:?}");
    for (method, path) in endpoints {
        let operation = &document["paths"][&path][&method];
        assert!(
            operation.is_object(),
            "{method} {path} is not in docs/openapi.json"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path} documents no success"
        );
        for (status, response) in responses.iter().filter(|(s, _)| s.starts_with(['4', '5'])) {
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status} is not the error shape"
            );
        }
    }
    let codes = &document["components"]["schemas"]["ErrorCode"]["enum"];
    for code in [
        "invalid_request",
        "lifetime_not_allowed",
        "not_refreshable",
        "slow_down",
    ] {
        assert!(
            codes.as_array().unwrap().iter().any(|c| c == code),
            "{code}"
        );
    }
    let status = &document["paths"]["/v1/token-requests/{id}/status"]["get"];
    let wait = status["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wait")
        .expect("the wait parameter is described");
    assert_eq!(wait["in"], "query");
    assert!(status["responses"]["200"]["headers"]["X-Auth-Router-Wait"].is_object());
    assert!(status["responses"]["429"]["headers"]["Retry-After"].is_object());
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for scheme in [
        "admin_token",
        "poll_token",
        "client_key",
        "submit_token",
        "console_session",
    ] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
}

/// A client written from the document alone (`examples/openapi_client.py`, standard library
/// only) creates a request and polls it to `approved` while the operator approves.
#[tokio::test]
async fn a_client_written_from_the_document_alone_gets_its_request_approved() {
    let app = spawn_app_with(|c| c.accounts = two_accounts()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/openapi_client.py");
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&app.base)
        .args(["example", "example-host"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (the tests need it)");

    let id = loop {
        let listed: Value = app.list("?status=pending").await.json().await.unwrap();
        if let Some(id) = listed["requests"][0]["request_id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    app.fake
        .set_browser_mode(fake_upstream::BrowserMode::AutoApprove);
    assert_eq!(app.select(&id, 2).await.status(), StatusCode::OK);

    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the script finished")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "approved");
    assert_eq!(last["request_id"], id.as_str());
    assert_eq!(last["account_id"], 2);
    assert!(last["token"]["access_token"].is_string());
}
