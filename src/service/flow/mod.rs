//! The use cases, once each: routes, the policy and the reaper call them, and never each
//! other. Their errors are domain errors; `routes` maps them to HTTP.

pub mod create;
pub mod finish;
pub mod login;
pub mod refresh;
