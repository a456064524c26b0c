//! The `mcpod` binary.

// jemalloc, with its background thread purging freed pages after a decay
// time, gives the memory of closed connections back to the system even
// when the gateway is idle (glibc's arenas keep most of it): see the
// README, "Robustness".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("mcpod: jemalloc's background purging is off: {e}");
    }
    mcpod_server::main()
}
