//! OAuth scopes: validated one by one, stored space-separated as in OAuth's `scope` parameter.

use std::fmt;

/// The most scopes one request may ask for.
pub const MAX_SCOPES: usize = 32;
/// The longest scope accepted.
pub const MAX_SCOPE_LEN: usize = 128;

/// A validated, de-duplicated list of scopes in the order first given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

/// Checks one scope: 1 to 128 characters, no whitespace or control characters.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    let len = scope.chars().count();
    if len == 0 || len > MAX_SCOPE_LEN {
        return Err(format!(
            "scope {scope:?} must be 1 to {MAX_SCOPE_LEN} characters"
        ));
    }
    if scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("scope {scope:?} must not contain whitespace"));
    }
    Ok(())
}

impl Scopes {
    /// Validates what a client asked for, falling back to `default` when it asked for none,
    /// and refusing anything outside `allowed` when that list is non-empty.
    pub fn parse(
        requested: Option<Vec<String>>,
        default: &[String],
        allowed: &[String],
    ) -> Result<Self, String> {
        let requested = requested.unwrap_or_default();
        if requested.len() > MAX_SCOPES {
            return Err(format!("at most {MAX_SCOPES} scopes may be requested"));
        }
        let list = if requested.is_empty() {
            default.to_vec()
        } else {
            requested
        };
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for scope in list {
            validate_scope(&scope)?;
            if !allowed.is_empty() && !allowed.contains(&scope) {
                return Err(format!("scope {scope:?} is not allowed on this router"));
            }
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        Ok(Scopes(out))
    }

    /// Reads the stored, space-separated form.
    pub fn from_db(s: &str) -> Self {
        Scopes(s.split_whitespace().map(str::to_owned).collect())
    }

    pub fn to_db(&self) -> String {
        self.0.join(" ")
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn missing_or_empty_scopes_fall_back_to_the_defaults() {
        let default = s(&["user:inference"]);
        assert_eq!(
            Scopes::parse(None, &default, &[]).unwrap().as_slice(),
            default
        );
        assert_eq!(
            Scopes::parse(Some(vec![]), &default, &[])
                .unwrap()
                .as_slice(),
            default
        );
    }

    #[test]
    fn scopes_outside_a_non_empty_allow_list_are_refused() {
        let allowed = s(&["a", "b"]);
        assert!(Scopes::parse(Some(s(&["a"])), &[], &allowed).is_ok());
        assert!(Scopes::parse(Some(s(&["c"])), &[], &allowed).is_err());
    }

    #[test]
    fn scopes_with_whitespace_or_bad_length_are_refused() {
        for bad in ["a b", "", "tab\there", &"x".repeat(129)] {
            assert!(Scopes::parse(Some(s(&[bad])), &[], &[]).is_err(), "{bad:?}");
        }
        assert!(Scopes::parse(Some(vec!["x".into(); 33]), &[], &[]).is_err());
    }

    #[test]
    fn duplicates_are_dropped_and_order_kept() {
        let got = Scopes::parse(Some(s(&["b", "a", "b"])), &[], &[]).unwrap();
        assert_eq!(got.to_db(), "b a");
        assert_eq!(Scopes::from_db(&got.to_db()), got);
    }
}
