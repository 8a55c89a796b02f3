//! The `darkroom` binary: parses arguments, sets up tracing, and calls the library.

fn main() {}
