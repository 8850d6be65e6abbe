//! The physical-limit baseline for bench/run: a plain hyper HTTP/1.1 server
//! (keep-alive, multi-threaded tokio) answering what the `rust-echo` fixture
//! answers behind its function URL: `{"runtime", "echo": <the request as an
//! API Gateway payload 2.0 event>, "request_id", "function_name", "memory_mb"}`.
//! Same work in the handler (build the event, serialise it), none of the
//! platform around it.
//!
//!     hyper-baseline 127.0.0.1:9000

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 32) as u32,
        (t >> 16) as u16,
        (t & 0xfff) as u16,
        (n & 0xfff) as u16,
        n
    )
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut headers = Map::new();
    for (k, v) in &parts.headers {
        headers.insert(
            k.as_str().to_string(),
            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        );
    }
    let id = request_id();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let path = parts.uri.path().to_string();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "rust-echo",
            "domainName": "127.0.0.1",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now,
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false,
    });
    let answer = json!({
        "runtime": "lambda_runtime",
        "echo": event,
        "request_id": id,
        "function_name": "rust-echo",
        "memory_mb": 128,
    });
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec(&answer).unwrap())));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(resp)
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("hyper-baseline listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
