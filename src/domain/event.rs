//! Events: what a committed change means for the people watching, as webhooks tell it.

use serde::Serialize;
use uuid::Uuid;

use super::Status;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Created, and waiting for an operator.
    RequestPending,
    RequestApproved,
    RequestDenied,
    RequestCancelled,
    RequestExpired,
    RequestError,
    RequestRevoked,
    /// The provider refused a refresh token: someone must log that account in again.
    RefreshRejected,
    /// The control browser did not open a login an operator (or the policy) started.
    ControlBrowserFailed,
    /// A bundle's refresh token dies soon (`notify.relogin_warning_secs`): once per bundle.
    ReloginDue,
    /// An account's usage window reached `notify.quota_warning_percent`: once per window
    /// per reset.
    QuotaHigh,
    /// Queued by `POST /v1/webhooks/test`, to every webhook.
    Test,
}

impl EventType {
    /// Every event a webhook can subscribe to (`test` goes to every webhook).
    pub const CONFIGURABLE: [&'static str; 11] = [
        "request.pending",
        "request.approved",
        "request.denied",
        "request.cancelled",
        "request.expired",
        "request.error",
        "request.revoked",
        "refresh.rejected",
        "control_browser.failed",
        "token.relogin_due",
        "account.quota_high",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RequestPending => "request.pending",
            EventType::RequestApproved => "request.approved",
            EventType::RequestDenied => "request.denied",
            EventType::RequestCancelled => "request.cancelled",
            EventType::RequestExpired => "request.expired",
            EventType::RequestError => "request.error",
            EventType::RequestRevoked => "request.revoked",
            EventType::RefreshRejected => "refresh.rejected",
            EventType::ControlBrowserFailed => "control_browser.failed",
            EventType::ReloginDue => "token.relogin_due",
            EventType::QuotaHigh => "account.quota_high",
            EventType::Test => "test",
        }
    }

    pub fn is_configurable(name: &str) -> bool {
        Self::CONFIGURABLE.contains(&name)
    }

    /// The event a committed change raises, from its audit action and statuses.
    pub fn of_change(action: &str, from: Option<Status>, to: Status) -> Option<EventType> {
        match (action, to) {
            ("create", Status::Pending) => Some(EventType::RequestPending),
            ("restore", _) => Some(EventType::ControlBrowserFailed),
            ("refresh_rejected", _) => Some(EventType::RefreshRejected),
            (_, Status::Approved) if from != Some(Status::Approved) => {
                Some(EventType::RequestApproved)
            }
            (_, Status::Denied) => Some(EventType::RequestDenied),
            (_, Status::Cancelled) => Some(EventType::RequestCancelled),
            (_, Status::Expired) => Some(EventType::RequestExpired),
            (_, Status::Error) => Some(EventType::RequestError),
            (_, Status::Revoked) => Some(EventType::RequestRevoked),
            _ => None,
        }
    }
}

/// A request's public fields, as an event tells them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequestSnapshot {
    pub request_id: Uuid,
    pub client_name: String,
    pub hostname: String,
    pub scopes: Vec<String>,
    pub status: Status,
    pub account_id: Option<u32>,
    pub error: Option<String>,
}
