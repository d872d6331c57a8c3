//! The paths the router serves itself, so that the configuration can refuse a callback path
//! that would clash with one of them (axum would panic at startup on the clash).

/// Paths the router serves besides the callback, and the prefixes under which it serves
/// more. A callback at one of them would make axum panic at startup on the clash, so the
/// configuration refuses it first (see [`is_reserved_path`]). `routes` serves these; keep the lists in step.
const FIXED_PATHS: &[&str] = &["/", "/v1", "/admin", "/healthz", "/readyz", "/metrics"];
const RESERVED_PREFIXES: &[&str] = &["/v1/", "/admin/"];

/// Whether `path` is (or is under) a route the router serves itself.
pub fn is_reserved_path(path: &str) -> bool {
    FIXED_PATHS.contains(&path) || RESERVED_PREFIXES.iter().any(|p| path.starts_with(p))
}
