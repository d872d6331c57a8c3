//! Any bytes as the body of `POST /v1/token-requests`: 201 or a 4xx, never a 5xx or a panic.
#![no_main]

use axum::body::Body;
use claude_auth_router_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = http::Request::post("/v1/token-requests")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .unwrap();
    harness().send(request);
});
