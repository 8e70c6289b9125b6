#![forbid(unsafe_code)]

/// mimalloc instead of the system allocator: every request allocates (headers,
/// extensions, JSON), and glibc's malloc/free were a seventh of the server's
/// time under load (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
