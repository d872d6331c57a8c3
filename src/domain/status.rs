//! Request statuses and the one table of allowed transitions.
//!
//! The database layer writes every change as `UPDATE … WHERE status IN (from)` with the
//! `from` list taken from [`Transition::from`], so this file is the single place that says
//! which move is legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, waiting for an operator to choose an account.
    Pending,
    /// An account was chosen and the login is open in the control browser.
    InProgress,
    Approved,
    Denied,
    Cancelled,
    Expired,
    Error,
    /// Approved, then an admin withdrew the tokens.
    Revoked,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::InProgress,
        Status::Approved,
        Status::Denied,
        Status::Cancelled,
        Status::Expired,
        Status::Error,
        Status::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Error => "error",
            Status::Revoked => "revoked",
        }
    }

    /// Terminal statuses end the flow; only `approved` may still become `revoked`.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::InProgress)
    }

    /// The status a client should see at `now`: an open request past its deadline is
    /// expired, whether or not the reaper has written that down yet.
    pub fn at(
        self,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Status {
        if !self.is_terminal() && now >= expires_at {
            Status::Expired
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// Every way a request's status can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The operator chose (or re-chose) an account.
    SelectAccount,
    /// The control browser failed: put the request back as it was.
    Restore,
    /// The callback's code was exchanged for tokens.
    Approve,
    /// The provider answered `access_denied`, or an admin denied.
    Deny,
    /// The provider answered another error, or the exchange failed.
    Fail,
    /// The client or an admin gave up on the request.
    Cancel,
    /// The request outlived its `expires_at`.
    Expire,
    /// An admin withdrew an approved request's tokens.
    Revoke,
}

impl Transition {
    /// The statuses this transition may start from.
    pub fn from(self) -> &'static [Status] {
        use Status::*;
        match self {
            Transition::SelectAccount | Transition::Deny | Transition::Cancel => {
                &[Pending, InProgress]
            }
            Transition::Expire => &[Pending, InProgress],
            Transition::Restore | Transition::Approve | Transition::Fail => &[InProgress],
            Transition::Revoke => &[Approved],
        }
    }

    /// The status it ends in (`Restore` ends in whatever the request had before).
    pub fn to(self) -> Option<Status> {
        match self {
            Transition::SelectAccount => Some(Status::InProgress),
            Transition::Restore => None,
            Transition::Approve => Some(Status::Approved),
            Transition::Deny => Some(Status::Denied),
            Transition::Fail => Some(Status::Error),
            Transition::Cancel => Some(Status::Cancelled),
            Transition::Expire => Some(Status::Expired),
            Transition::Revoke => Some(Status::Revoked),
        }
    }

    /// Whether a request in `status` may take this transition.
    pub fn allowed_from(self, status: Status) -> bool {
        self.from().contains(&status)
    }

    /// The `from` list as a JSON array, the form the SQL binds it in (`json_each(?)`).
    pub fn from_json(self) -> String {
        let names: Vec<&str> = self.from().iter().map(|s| s.as_str()).collect();
        serde_json::to_string(&names).expect("a list of strings serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_transition_leaves_a_terminal_status() {
        let all = [
            Transition::SelectAccount,
            Transition::Restore,
            Transition::Approve,
            Transition::Deny,
            Transition::Fail,
            Transition::Cancel,
            Transition::Expire,
            Transition::Revoke,
        ];
        for t in all {
            for s in Status::ALL.iter().filter(|s| s.is_terminal()) {
                // Revoke is the one move out of a terminal status: approved to revoked.
                let allowed = t == Transition::Revoke && *s == Status::Approved;
                assert_eq!(t.allowed_from(*s), allowed, "{t:?} from {s}");
            }
            if let Some(to) = t.to() {
                assert!(
                    to == Status::InProgress || to.is_terminal(),
                    "{t:?} ends in {to}"
                );
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert!("approve".parse::<Status>().is_err());
    }

    #[test]
    fn the_from_list_binds_as_a_json_array() {
        assert_eq!(
            Transition::Cancel.from_json(),
            r#"["pending","in_progress"]"#
        );
    }
}
