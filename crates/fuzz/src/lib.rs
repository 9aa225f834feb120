//! The checks of the fuzz targets. They live in the integration-test crate
//! (`tests/fuzz_checks.rs`), which replays the corpus with them on the stable toolchain;
//! this crate compiles the same file, without the test crate's other dependencies.

#[path = "../../../tests/fuzz_checks.rs"]
pub mod checks;
