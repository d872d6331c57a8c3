//! The webhook bodies as the OpenAPI document describes them (`components.schemas`).
//! [`super::Outbox::render`] writes them; a test renders every event type and checks each
//! body against these fields, so the description cannot drift from what receivers get.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::event::RequestSnapshot;

/// An event type, as `type` and the `X-Auth-Router-Event` header name it.
#[derive(utoipa::ToSchema)]
#[schema(as = EventName)]
#[allow(dead_code)]
pub enum EventName {
    #[schema(rename = "request.pending")]
    RequestPending,
    #[schema(rename = "request.approved")]
    RequestApproved,
    #[schema(rename = "request.denied")]
    RequestDenied,
    #[schema(rename = "request.cancelled")]
    RequestCancelled,
    #[schema(rename = "request.expired")]
    RequestExpired,
    #[schema(rename = "request.error")]
    RequestError,
    #[schema(rename = "request.revoked")]
    RequestRevoked,
    #[schema(rename = "refresh.rejected")]
    RefreshRejected,
    #[schema(rename = "control_browser.failed")]
    ControlBrowserFailed,
    #[schema(rename = "token.relogin_due")]
    ReloginDue,
    #[schema(rename = "account.quota_high")]
    QuotaHigh,
    #[schema(rename = "test")]
    Test,
}

/// The body of a `json` webhook: `POST`ed with `X-Auth-Router-Event`,
/// `X-Auth-Router-Delivery` and, with a secret, `X-Auth-Router-Signature`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WebhookEvent {
    /// The event's id, the same on every retry (`X-Auth-Router-Delivery`).
    id: Uuid,
    #[schema(rename = "type", inline)]
    kind: EventName,
    at: DateTime<Utc>,
    /// The request it is about; null for `account.quota_high` and `test`.
    request: Option<RequestSnapshot>,
    /// The console's address, with `admin.public_url`.
    console_url: Option<String>,
    /// `token.relogin_due`: the request whose login must be renewed.
    #[schema(nullable = false)]
    request_id: Option<Uuid>,
    /// `token.relogin_due`: its enrolled client (null for an unverified request).
    client_id: Option<Uuid>,
    /// `token.relogin_due` and `account.quota_high`: the account.
    #[schema(nullable = false)]
    account_id: Option<u32>,
    /// `token.relogin_due`: when the refresh token dies for good.
    #[schema(nullable = false)]
    refresh_expires_at: Option<DateTime<Utc>>,
    /// `account.quota_high`: the account's label.
    account_label: Option<String>,
    /// `account.quota_high`: `five_hour` or `seven_day`.
    #[schema(nullable = false)]
    window: Option<String>,
    /// `account.quota_high`: percent used.
    #[schema(nullable = false)]
    utilization: Option<f64>,
    /// `account.quota_high`: when the window resets.
    resets_at: Option<DateTime<Utc>>,
}

/// The body of a `slack` webhook.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SlackBody {
    /// One line naming the event, the client, the host and the console link; every value a
    /// client chose is escaped for Slack.
    text: String,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::config::{Config, WebhookConfig, WebhookFormat};
    use crate::domain::event::{EventType, RequestSnapshot};
    use crate::domain::Status;
    use crate::notify::Outbox;

    const EVERY_EVENT: [EventType; 12] = [
        EventType::RequestPending,
        EventType::RequestApproved,
        EventType::RequestDenied,
        EventType::RequestCancelled,
        EventType::RequestExpired,
        EventType::RequestError,
        EventType::RequestRevoked,
        EventType::RefreshRejected,
        EventType::ControlBrowserFailed,
        EventType::ReloginDue,
        EventType::QuotaHigh,
        EventType::Test,
    ];

    /// What a receiver gets for each event type, in each format, has only the fields the
    /// document describes, of the types it says.
    #[test]
    fn every_webhook_body_the_outbox_renders_is_described_by_the_document() {
        let document = crate::routes::openapi::document();
        let schemas = &document["components"]["schemas"];
        let event = &schemas["WebhookEvent"];
        let properties = event["properties"].as_object().unwrap();
        let names = event["properties"]["type"]["enum"].as_array().unwrap();
        let mut config = Config::default();
        config.notify.webhooks = vec![WebhookConfig {
            url: secrecy::SecretString::from("http://127.0.0.1:9/hook"),
            events: Vec::new(),
            format: WebhookFormat::Json,
            secret: secrecy::SecretString::from(""),
        }];
        let outbox = Outbox::from_config(&config);
        let hook = outbox.hook(0).unwrap();
        let request = RequestSnapshot {
            request_id: uuid::Uuid::nil(),
            client_name: "ci".into(),
            hostname: "runner".into(),
            scopes: vec!["user:inference".into()],
            status: Status::Approved,
            account_id: Some(1),
            error: None,
        };
        let detail = |event: EventType| match event {
            EventType::ReloginDue => Some(json!({
                "request_id": uuid::Uuid::nil(), "client_id": null, "account_id": 1,
                "refresh_expires_at": "2027-01-01T00:00:00Z",
            })),
            EventType::QuotaHigh => Some(json!({
                "account_id": 1, "account_label": "one", "window": "five_hour",
                "utilization": 92.0, "resets_at": "2027-01-01T00:00:00Z",
            })),
            _ => None,
        };
        assert_eq!(names.len(), EVERY_EVENT.len());
        for kind in EVERY_EVENT {
            let body = outbox.render(
                hook,
                uuid::Uuid::nil(),
                kind,
                chrono::Utc::now(),
                Some(&request),
                detail(kind).as_ref(),
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            assert!(
                names.contains(&body["type"]),
                "{} is not described",
                body["type"]
            );
            for (key, value) in body.as_object().unwrap() {
                let described = properties
                    .get(key)
                    .unwrap_or_else(|| panic!("{key} of {kind:?} is not described"));
                let types = &described["type"];
                let fits = match value {
                    Value::Null => {
                        types.as_array().is_some_and(|t| t.contains(&json!("null")))
                            || described["oneOf"].is_array()
                    }
                    Value::String(_) => {
                        types == "string"
                            || types
                                .as_array()
                                .is_some_and(|t| t.contains(&json!("string")))
                            || described["$ref"].is_string()
                            || described["enum"].is_array()
                    }
                    Value::Number(_) => ["integer", "number"].iter().any(|t| {
                        types == t || types.as_array().is_some_and(|a| a.contains(&json!(t)))
                    }),
                    Value::Object(_) => {
                        described["oneOf"].is_array() || described["$ref"].is_string()
                    }
                    _ => false,
                };
                assert!(fits, "{key} = {value} of {kind:?} does not fit {described}");
            }
        }
        let slack = &schemas["SlackBody"]["properties"];
        assert!(slack["text"].is_object());
    }
}
