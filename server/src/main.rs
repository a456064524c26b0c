//! The `mcpod` binary.

fn main() -> std::process::ExitCode {
    mcpod_server::main()
}
