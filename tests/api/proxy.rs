//! A small forwarding HTTP proxy on loopback that counts what goes through it, to prove the
//! router's egress settings are really used.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Clone)]
pub struct CountingProxy {
    pub addr: SocketAddr,
    forwarded: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = CountingProxy {
            addr: listener.local_addr().unwrap(),
            forwarded: Arc::default(),
        };
        let app = Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        proxy
    }

    /// `http://127.0.0.1:PORT`, the proxy's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it forwarded.
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

/// A proxy receives the absolute URL as the request target (`POST http://host/token`);
/// this sends the same request there and relays the answer.
async fn forward(State(proxy): State<CountingProxy>, request: Request) -> Response {
    proxy.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut headers = parts.headers.clone();
    headers.remove("proxy-connection");
    let answer = client
        .request(parts.method, parts.uri.to_string())
        .headers(headers)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            for (name, value) in headers.iter() {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => (
            axum::http::StatusCode::BAD_GATEWAY,
            "proxy: upstream failed",
        )
            .into_response(),
    }
}
