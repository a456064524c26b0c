//! The `mcpod` binary.

fn main() {
    println!("mcpod {}", env!("CARGO_PKG_VERSION"));
}
