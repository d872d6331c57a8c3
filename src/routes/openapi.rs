//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and
//! their request and answer types as the router registers them ([`api`]): a route cannot be
//! served without being described, and a field cannot change without the document changing.
//!
//! What every operation shares is added once, in [`common_answers`], from what each one
//! declares: an operation with a body can answer 400, 413 and 415; one that needs a credential
//! 401; an admin one also 403 (a console change without its CSRF token) and 429 (the sign-in
//! budget); one with a request id 400 and 404; and every one 503 (`busy`, `unavailable`, `overloaded`,
//! `timeout`), because the database, the concurrency cap and the request timeout stand before
//! every handler.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    accounts, admin_actions, admin_events, clients, console, health, refresh, select_account,
    token_requests, webhooks, AppState,
};
use crate::error::{ErrorBody, ErrorCode};
use crate::notify::webhook_schema::{SlackBody, WebhookEvent};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "claude-auth-router",
        description = "Brokers OAuth logins for a team: an employee's CLI asks for a token, an \
            operator chooses which of the team's accounts approves it, and the router keeps the \
            tokens. Every error answer is `{\"error\", \"message\"}` (`ErrorBody`). Webhook \
            bodies are described by `WebhookEvent` and `SlackBody`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(super::callback::callback),
    components(schemas(ErrorBody, ErrorCode, WebhookEvent, SlackBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "token requests", description = "Asking for a token, polling it, and the operator's answers"),
        (name = "codes", description = "Finishing a login with the code a provider page showed"),
        (name = "login", description = "The provider's redirect"),
        (name = "clients", description = "Enrolled clients"),
        (name = "accounts", description = "The team's provider accounts"),
        (name = "audit", description = "Who did what"),
        (name = "webhooks", description = "The webhook outbox"),
        (name = "console", description = "The operator console"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// The credentials, as `security` names them.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        let schemes = [
            ("admin_token", bearer("The router's admin token (`admin.token`)")),
            (
                "poll_token",
                bearer("The request's poll token, from its create answer"),
            ),
            (
                "client_key",
                bearer("An enrolled client's key: the request is then verified"),
            ),
            (
                "submit_token",
                bearer("The control browser's submit token (`control_browser.submit_token`), for the code endpoints only"),
            ),
            (
                "console_session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    super::extract::SESSION_COOKIE,
                    "A console session (`POST /admin/session`); every change also sends its CSRF token in `X-CSRF-Token`",
                ))),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
    }
}

/// The documented routes. The status poll is kept apart: it is outside the concurrency cap.
pub(super) fn api() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let capped = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(token_requests::create, token_requests::list))
        .routes(routes!(select_account::select_account))
        .routes(routes!(token_requests::deny))
        .routes(routes!(token_requests::cancel))
        .routes(routes!(refresh::refresh))
        .routes(routes!(admin_actions::revoke))
        .routes(routes!(admin_actions::submit_code))
        .routes(routes!(admin_actions::submit_code_by_state))
        .routes(routes!(clients::add, clients::list))
        .routes(routes!(clients::update, clients::remove))
        .routes(routes!(clients::rotate_key))
        .routes(routes!(clients::disable))
        .routes(routes!(clients::enable))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::pause))
        .routes(routes!(accounts::resume))
        .routes(routes!(admin_actions::audit))
        .routes(routes!(admin_events::list))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::test))
        .routes(routes!(console::index))
        .routes(routes!(console::script))
        .routes(routes!(console::style))
        .routes(routes!(
            console::session,
            console::sign_in,
            console::sign_out
        ))
        .routes(routes!(console::overview))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi_json));
    let waits = OpenApiRouter::new().routes(routes!(token_requests::status));
    (capped, waits)
}

/// The document, as `GET /v1/openapi.json` serves it and `claude-auth-router openapi`
/// prints it. It does not depend on the configuration: the callback is described at its
/// default path.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (capped, waits) = api();
        let mut doc = capped.into_openapi();
        doc.merge(waits.into_openapi());
        let mut value = serde_json::to_value(doc).expect("the document serializes");
        common_answers(&mut value);
        value
    })
}

/// `GET /v1/openapi.json`: this document. No authentication: it holds no secret.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}

/// Adds the answers every operation shares (see the module's documentation), where the
/// operation does not describe them itself.
fn common_answers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut().filter_map(Value::as_object_mut) {
            let answers = shared_answers(path, operation);
            let responses = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            for (status, description) in answers {
                responses
                    .entry(status)
                    .or_insert_with(|| error_response(status, description));
            }
        }
    }
}

/// The shared answers `operation` (at `path`) can give, by status.
fn shared_answers(path: &str, operation: &Map<String, Value>) -> Vec<(&'static str, &'static str)> {
    let schemes: Vec<&str> = operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect();
    let optional = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(Map::is_empty)));
    let mut answers = vec![(
        "503",
        "`busy` (the database), `unavailable` (PostgreSQL cannot be reached), `overloaded` (too many requests at once) or `timeout`",
    )];
    let queried = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
    if queried {
        answers.push((
            "400",
            "`invalid_request`: a query parameter out of range, or one the operation does not take",
        ));
    }
    if operation.contains_key("requestBody") {
        answers.extend([
            (
                "400",
                "`invalid_request`: the body is not what this operation takes",
            ),
            ("413", "`payload_too_large`: the body is over 64 KiB"),
            ("415", "`unsupported_media_type`: the body must be JSON"),
        ]);
    }
    if !schemes.is_empty() && !optional {
        answers.push(("401", "`unauthorized`: a missing or wrong credential"));
    }
    if schemes.contains(&"admin_token") || schemes.contains(&"submit_token") {
        answers.extend([
            (
                "403",
                "`forbidden`: a console change without its CSRF token",
            ),
            (
                "429",
                "`rate_limited`: too many wrong secrets from this address; wait",
            ),
        ]);
    }
    if path.contains("{id}") {
        answers.extend([
            (
                "400",
                "`invalid_request_id` or `invalid_request`: a malformed id",
            ),
            ("404", "`request_not_found` or `client_not_found`"),
        ]);
    }
    answers
}

/// An error answer with `ErrorBody`, and `Retry-After` where the status carries it.
fn error_response(status: &str, description: &str) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    if status == "429" || status == "503" {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 0},
            }
        });
    }
    response
}
