//! `GET /api/oauth/usage`, as Anthropic's usage endpoint answers Claude Code (claude
//! provider only): the account's 5-hour and weekly windows, for a live access token the fake
//! issued, with the `anthropic-beta` header and a `claude-cli/` User-Agent.

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::{FakeUpstream, Provider};

/// The beta header value the endpoint wants.
pub const USAGE_BETA: &str = "oauth-2025-04-20";

/// What the usage endpoint answers for one account.
#[derive(Debug, Clone)]
pub enum UsageAnswer {
    /// This JSON body, with 200.
    Body(Value),
    /// This status, with an error body (a 429, a 500).
    Status(u16),
    /// 200 with a body that is not a usage reading.
    Garbage,
}

/// One call the usage endpoint received.
#[derive(Debug, Clone)]
pub struct UsageCall {
    /// The account of the token it carried, when the token was one the fake issued.
    pub account: Option<u32>,
    pub status: u16,
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": "error", "message": message}});
    (status, Json(body)).into_response()
}

pub async fn usage(AxumState(fake): AxumState<FakeUpstream>, headers: HeaderMap) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let bearer = text(header::AUTHORIZATION.as_str())
        .strip_prefix("Bearer ")
        .map(str::to_owned);
    let mut s = fake.lock();
    if s.options.provider != Provider::Claude {
        return StatusCode::NOT_FOUND.into_response();
    }
    let account = bearer.and_then(|t| s.access.get(&t).copied());
    let (status, response) = if !text(header::USER_AGENT.as_str()).starts_with("claude-cli/") {
        (429, error(StatusCode::TOO_MANY_REQUESTS, "Rate limited"))
    } else if text("anthropic-beta") != USAGE_BETA {
        (
            400,
            error(
                StatusCode::BAD_REQUEST,
                "the anthropic-beta header is required",
            ),
        )
    } else if let Some(account) = account {
        match s.usage.get(&account).cloned() {
            Some(UsageAnswer::Status(code)) => {
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (code.as_u16(), error(code, "injected"))
            }
            Some(UsageAnswer::Garbage) => (200, "<html>usage</html>".into_response()),
            Some(UsageAnswer::Body(body)) => (200, Json(body).into_response()),
            None => (200, Json(s.reading(0.0, 0.0)).into_response()),
        }
    } else {
        (401, error(StatusCode::UNAUTHORIZED, "Invalid bearer token"))
    };
    s.usage_calls.push(UsageCall { account, status });
    response
}

impl crate::State {
    /// A usage body with these utilizations, and resets fixed for the fake's life: five
    /// hours and seven days after it started.
    pub(crate) fn reading(&self, five_hour: f64, seven_day: f64) -> Value {
        let at = |hours| {
            (self.started + chrono::Duration::hours(hours))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        json!({
            "five_hour": {"utilization": five_hour, "resets_at": at(5)},
            "seven_day": {"utilization": seven_day, "resets_at": at(7 * 24)},
            "seven_day_opus": null,
        })
    }
}
