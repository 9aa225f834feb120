//! The integration tests of the hotlead workspace, one binary.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

/// Runs each named `async fn(backend)` of the calling module twice: on SQLite
/// (`super::sqlite()`) and on DynamoDB in the emulator (`super::dynamo()`).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::dynamo().await).await;
                }
            )*
        }
    };
}

mod abuse;
mod access;
mod api_contract;
mod aws;
mod browser;
mod cli;
mod contract;
mod erase;
mod examples;
mod fuzz_corpus;
mod http;
mod learning;
mod learning_contract;
mod openapi;
mod properties;
mod reliability;
mod schema;
mod secrets;
mod service;
mod template;
mod tidy;
