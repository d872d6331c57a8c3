//! How getting a token can fail, each with the exit code of the `token` command and a
//! message that says what happened and what to do.

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the router at {router}: {detail}. Check --router (or AUTH_ROUTER_URL) and that the service is running")]
    Unreachable { router: String, detail: String },
    #[error("the router answered {status} {code}: {message}")]
    Router {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot use the token cache at {}: {detail}. Pass --cache-dir DIR or --no-cache", path.display())]
    Cache { path: PathBuf, detail: String },
    #[error("an operator denied request {request_id}{}. Ask an operator why before trying again", reason(.error))]
    Denied {
        request_id: Uuid,
        error: Option<String>,
    },
    #[error("request {request_id} expired before an operator approved it. Ask an operator to watch for it, then run the command again")]
    Expired { request_id: Uuid },
    #[error("gave up after --timeout {}s; request {request_id} was cancelled. Run again with a longer --timeout", .waited.as_secs())]
    TimedOut { request_id: Uuid, waited: Duration },
    #[error(
        "request {request_id} was cancelled on the router. Run the command again for a new one"
    )]
    Cancelled { request_id: Uuid },
    #[error("the router could not get a token for request {request_id}{}. Tell an operator; running again makes a new request", reason(.error))]
    Failed {
        request_id: Uuid,
        error: Option<String>,
    },
    #[error("interrupted; the pending request was cancelled on the router")]
    Interrupted,
}

fn reason(error: &Option<String>) -> String {
    error
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

impl ClientError {
    /// The `token` command's exit code: 1 network or unexpected, 2 usage, 3 denied,
    /// 4 expired, 5 cancelled or error on the router, 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. }
            | ClientError::Router { .. }
            | ClientError::Cache { .. } => 1,
            ClientError::Usage(_) => 2,
            ClientError::Denied { .. } => 3,
            ClientError::Expired { .. } | ClientError::TimedOut { .. } => 4,
            ClientError::Cancelled { .. } | ClientError::Failed { .. } => 5,
            ClientError::Interrupted => 130,
        }
    }

    /// Whether trying again later may succeed: the router was unreachable or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Router { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
