//! The `hotlead` command line. `main.rs` only calls [`cli::main`]; the commands live
//! here so that tests can run them in-process.

pub mod cli;
pub mod demo;
pub mod input;
pub mod learn;
pub mod ops_cli;
pub mod output;
pub mod review_cli;
pub mod serve;
