//! Who did what: the actor and action written to `audit_events` with every status change.

use std::fmt;

/// Who caused a change, as the audit trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The employee's client, named by the hostname it gave.
    Client(String),
    Admin,
    /// The OAuth provider, through the callback or the token endpoint.
    Provider,
    Reaper,
    /// The control browser, submitting a code its provider page showed (with the submit
    /// token).
    ControlBrowser,
    /// The approval policy, for an enrolled client with `auto_approve`.
    Policy,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Client(hostname) => write!(f, "client:{hostname}"),
            Actor::Admin => f.write_str("admin"),
            Actor::Provider => f.write_str("provider"),
            Actor::Reaper => f.write_str("reaper"),
            Actor::ControlBrowser => f.write_str("control_browser"),
            Actor::Policy => f.write_str("policy"),
        }
    }
}

/// One audit row's worth of context, minus what the change itself supplies (request,
/// time, statuses). Never put a secret in `detail`.
#[derive(Debug, Clone)]
pub struct Audit {
    pub actor: Actor,
    pub action: &'static str,
    pub detail: Option<String>,
    /// Raise no webhook event for this change (an auto-approved create is not news).
    pub quiet: bool,
}

impl Audit {
    pub fn new(actor: Actor, action: &'static str) -> Self {
        Self {
            actor,
            action,
            detail: None,
            quiet: false,
        }
    }

    /// The same change, raising no webhook event.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_as_the_audit_trail_names_them() {
        assert_eq!(
            Actor::Client("alice-laptop".into()).to_string(),
            "client:alice-laptop"
        );
        assert_eq!(Actor::Admin.to_string(), "admin");
        assert_eq!(Actor::Provider.to_string(), "provider");
        assert_eq!(Actor::Reaper.to_string(), "reaper");
    }
}
