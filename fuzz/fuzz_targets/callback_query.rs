//! Any query string on the OAuth callback: a page or a 4xx, never a 5xx or a panic.
#![no_main]

use axum::body::Body;
use claude_auth_router_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query: String = String::from_utf8_lossy(data)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '#' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let Ok(request) = http::Request::get(format!("/oauth/callback?{query}")).body(Body::empty())
    else {
        return;
    };
    harness().send(request);
});
