//! The status poll's answer, written by hand: the poll is the hot path, and this small object
//! was its largest cost of our own.
//!
//! Through serde_json's derive, writing it took 13% of a poll's instructions (callgrind,
//! `BENCHMARKS.md`, "Issue 13, fourth pass"): every key and every value went through the
//! escaping writer, and the ids and the timestamp went through `Display` one character at a
//! time. Here the keys are literals, and the values that cannot need escaping (ids, the
//! status, numbers, booleans, the timestamp) are written as they are. Only free text (the
//! error) and the token object still go through serde_json.
//!
//! The derive stays as the reference: `the_hand_written_body_is_byte_for_byte_the_derived_one`
//! checks that both write the same bytes, for every status and every optional field.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::token_requests::TokenView;
use crate::domain::Status;
use crate::error::Error;

#[derive(Serialize)]
pub struct StatusBody {
    pub request_id: Uuid,
    pub status: Status,
    pub client_id: Option<Uuid>,
    /// Whether an enrolled client's key made the request.
    pub verified: bool,
    pub account_id: Option<u32>,
    pub token: Option<TokenView>,
    pub error: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub poll_interval_secs: u64,
}

impl StatusBody {
    /// The body as `#[derive(Serialize)]` would write it, field for field.
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"request_id\":");
        uuid(&mut out, self.request_id);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"client_id\":");
        match self.client_id {
            Some(id) => uuid(&mut out, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"verified\":");
        out.extend_from_slice(if self.verified { b"true" } else { b"false" });
        out.extend_from_slice(b",\"account_id\":");
        match self.account_id {
            Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"token\":");
        serde_json::to_writer(&mut out, &self.token)?;
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut out, &self.error)?;
        // chrono's own `Serialize` writes this same RFC 3339 form (`AutoSi`, with a `Z`),
        // which holds only digits and `-:.TZ`.
        out.extend_from_slice(b",\"expires_at\":\"");
        out.extend_from_slice(
            self.expires_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"poll_interval_secs\":");
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(self.poll_interval_secs)
                .as_bytes(),
        );
        out.push(b'}');
        Ok(out)
    }
}

/// A quoted, hyphenated, lower-case UUID, as uuid's `Serialize` writes it.
fn uuid(out: &mut Vec<u8>, id: Uuid) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

impl IntoResponse for StatusBody {
    fn into_response(self) -> Response {
        match self.to_json() {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => Error::Internal(anyhow::Error::new(e).context("writing a status body"))
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenBundle;
    use secrecy::SecretString;

    fn bodies() -> Vec<StatusBody> {
        let times = [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.9Z",
            "2026-01-02T03:04:05.123Z",
            "2026-01-02T03:04:05.123456Z",
            "1999-12-31T23:59:59.123456789Z",
        ];
        let mut out = Vec::new();
        for (i, status) in Status::ALL.into_iter().enumerate() {
            let expires_at = DateTime::parse_from_rfc3339(times[i % times.len()])
                .unwrap()
                .to_utc();
            let full = i % 2 == 0;
            let token = (status == Status::Approved).then(|| {
                let bundle = TokenBundle {
                    access_token: SecretString::from("at-\"quoted\"\\ünï"),
                    refresh_token: Some(SecretString::from("rt")),
                    expires_at: Some(expires_at),
                    token_type: "Bearer".into(),
                    scope: "user:inference".into(),
                    obtained_at: expires_at,
                    identity: Default::default(),
                };
                TokenView::new(bundle, &crate::config::Config::default())
            });
            out.push(StatusBody {
                request_id: Uuid::now_v7(),
                status,
                client_id: full.then(Uuid::new_v4),
                verified: full,
                account_id: full.then_some(u32::MAX - i as u32),
                token,
                error: full.then(|| "the provider said \"no\"\n\u{1}\u{2028} ✓".to_owned()),
                expires_at,
                poll_interval_secs: 5 + i as u64,
            });
        }
        out
    }

    #[test]
    fn the_hand_written_body_is_byte_for_byte_the_derived_one() {
        for body in bodies() {
            let derived = serde_json::to_vec(&body).unwrap();
            let written = body.to_json().unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(derived).unwrap()
            );
        }
    }
}
