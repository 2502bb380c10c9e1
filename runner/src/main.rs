//! The `bpfconf` command line. PLACEHOLDER.
fn main() {}
