//! The integration tests of the hotlead workspace, one binary.

mod cli;
mod examples;
mod properties;
mod schema;
