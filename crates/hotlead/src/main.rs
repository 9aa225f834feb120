/// mimalloc instead of the C library's allocator: a server under load allocates and frees
/// small buffers on every request from several threads at once, where glibc's allocator
/// spent about a fifth of the process's CPU (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hotlead::cli::main()
}
