//! The peer of the local ingest benchmark (`scripts/bench-ingest`): the least an HTTP
//! service can do with a Segment call. One axum route, `POST /v1/page`, on the same
//! runtime as `hotlead serve` (tokio multi-thread): it reads the body, parses it as JSON
//! into a `serde_json::Value` (as `hotlead serve` does first), checks it is an object and
//! answers 200 with a small JSON body. No store, no validation beyond that.
//!
//! `cargo run --release -p hotlead --example ingest_peer -- 127.0.0.1:18081`

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn page(body: Bytes) -> (StatusCode, Json<Value>) {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(call)) => (
            StatusCode::OK,
            Json(json!({"success": true, "duplicate": false, "fields": call.len()})),
        ),
        Ok(_) | Err(_) => (StatusCode::BAD_REQUEST, Json(json!({"error": "malformed"}))),
    }
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("ingest peer listening on http://{}", listener.local_addr()?);
            let app = Router::new().route("/v1/page", post(page));
            axum::serve(listener, app).await?;
            Ok(())
        })
}
