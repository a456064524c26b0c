//! Load generator for mcpod.

fn main() {}
