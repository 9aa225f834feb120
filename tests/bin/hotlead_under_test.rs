//! The `hotlead` command line, built with the test crate so that the CLI tests run the
//! very code under test without a nested cargo build.
fn main() -> std::process::ExitCode {
    hotlead::cli::main()
}
