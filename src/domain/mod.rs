//! What a token request is, independent of HTTP and SQL: its statuses and the transitions
//! between them, the validation of what clients send, token bundles, and secrets.

pub mod audit;
pub mod event;
pub mod peer;
pub mod request;
pub mod scopes;
pub mod secret;
pub mod status;
pub mod text;
pub mod time;
pub mod token;
pub mod usage;

pub use audit::{Actor, Audit};
pub use request::{NewTokenRequest, TokenRequest};
pub use scopes::Scopes;
pub use status::{Status, Transition};
pub use token::{Identity, TokenBundle};
