//! Placeholder until the portmap plugin lands.
fn main() {}
