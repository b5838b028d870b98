//! Placeholder until the host-local plugin lands.
fn main() {}
