fn main() -> std::process::ExitCode {
    hotlead::cli::main()
}
