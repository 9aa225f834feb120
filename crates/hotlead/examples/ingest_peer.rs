//! The peers of the local ingest benchmark (`scripts/bench-ingest`).
//!
//! - `ingest_peer ADDR`: the least an HTTP service can do with a Segment call. One axum
//!   route, `POST /v1/page`, on the same runtime as `hotlead serve` (tokio multi-thread):
//!   it reads the body, parses it as JSON into a `serde_json::Value` (as `hotlead serve`
//!   does first), checks it is an object and answers 200 with a small JSON body. No
//!   store, no validation beyond that.
//! - `ingest_peer ADDR --durable FILE`: the least a service can do that keeps every call
//!   it answered: the same route, then the call stored once per message id in a SQLite
//!   file (WAL, tuned as `hotlead serve` tunes its own) by one writer thread that commits
//!   every call waiting in one transaction, its log synced beside it as `hotlead serve`
//!   syncs its own ([`hotlead_embedded::LogSync`]): each call is answered once its commit
//!   is on disk. No identity, no lead, no score: the floor under any durable, idempotent
//!   ingest on this machine.
//!
//! `cargo run --release -p hotlead --example ingest_peer -- 127.0.0.1:18081 [--durable FILE]`

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use hotlead_embedded::LogSync;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// A call for the writer: its message id and body, and where to answer whether it was a
/// repeat (`None`: it could not be stored).
type Write = (String, Bytes, oneshot::Sender<Option<bool>>);

/// Calls committed in one transaction at most.
const GROUP: usize = 256;

async fn page(body: Bytes) -> (StatusCode, Json<Value>) {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(call)) => (
            StatusCode::OK,
            Json(json!({"success": true, "duplicate": false, "fields": call.len()})),
        ),
        Ok(_) | Err(_) => malformed(),
    }
}

fn malformed() -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({"error": "malformed"})))
}

async fn durable_page(
    State(writer): State<mpsc::Sender<Write>>,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let id = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(call)) => match call.get("messageId").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => return malformed(),
        },
        Ok(_) | Err(_) => return malformed(),
    };
    let (answer, answered) = oneshot::channel();
    if writer.send((id, body, answer)).await.is_err() {
        return unavailable();
    }
    match answered.await {
        Ok(Some(duplicate)) => (
            StatusCode::OK,
            Json(json!({"success": true, "duplicate": duplicate})),
        ),
        Ok(None) | Err(_) => unavailable(),
    }
}

fn unavailable() -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "not stored"})),
    )
}

/// The writer thread: every call waiting, in one transaction, answered once the commit is
/// on disk.
fn write_loop(connection: rusqlite::Connection, sync: LogSync, mut calls: mpsc::Receiver<Write>) {
    while let Some(first) = calls.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match calls.try_recv() {
                Ok(call) => group.push(call),
                Err(_) => break,
            }
        }
        let stored = (|| -> rusqlite::Result<Vec<bool>> {
            let tx = connection.unchecked_transaction()?;
            let mut repeats = Vec::with_capacity(group.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO calls (message_id, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )?;
                for (id, body, _) in &group {
                    repeats.push(insert.execute((id, &body[..]))? == 0);
                }
            }
            tx.commit()?;
            Ok(repeats)
        })();
        match stored {
            Ok(repeats) => sync.after_sync(Box::new(move |failed| {
                if let Some(error) = failed {
                    eprintln!("not synced: {error}");
                }
                for ((_, _, answer), repeat) in group.into_iter().zip(repeats) {
                    let _ = answer.send(failed.is_none().then_some(repeat));
                }
            })),
            Err(error) => {
                eprintln!("not stored: {error}");
                for (_, _, answer) in group {
                    let _ = answer.send(None);
                }
            }
        }
    }
}

/// The file as `hotlead serve` opens it for its writer (a write-ahead log, then
/// [`hotlead_embedded::WRITER_TUNING`]: its page cache, memory mapping and checkpoint
/// interval), with one table, and the sync of its log.
fn open(path: &str) -> anyhow::Result<(rusqlite::Connection, LogSync)> {
    let connection = rusqlite::Connection::open(path)?;
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode == "wal",
        "{path}: the file cannot use a write-ahead log ({mode})"
    );
    connection.execute_batch(hotlead_embedded::WRITER_TUNING)?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS calls (message_id TEXT PRIMARY KEY, body BLOB NOT NULL)",
    )?;
    let sync = LogSync::start(&connection)?
        .ok_or_else(|| anyhow::anyhow!("{path}: its write-ahead log cannot be opened"))?;
    Ok((connection, sync))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let durable = match args.get(1).map(String::as_str) {
        Some("--durable") => Some(
            args.get(2)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("--durable needs a file"))?,
        ),
        Some(other) => anyhow::bail!("unknown argument {other}"),
        None => None,
    };
    let app = match durable {
        None => Router::new().route("/v1/page", post(page)),
        Some(path) => {
            let (connection, sync) = open(&path)?;
            let (writer, calls) = mpsc::channel(1_024);
            std::thread::Builder::new()
                .name("peer-writer".into())
                .spawn(move || write_loop(connection, sync, calls))?;
            Router::new()
                .route("/v1/page", post(durable_page))
                .with_state(writer)
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            println!("ingest peer listening on http://{}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(())
        })
}
