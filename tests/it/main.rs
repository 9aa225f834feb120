//! The integration tests of the hotlead workspace, one binary.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod abuse;
mod access;
mod aws;
mod browser;
mod cli;
mod contract;
mod examples;
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
